// A small, bounded HTTP load generator on node:http with keep-alive: a closed loop (N connections,
// each sending its next request when the last answers) to find peak throughput, and an open loop
// (requests started on a fixed schedule, whatever the server does) to measure latency at a rate.
// Every response is checked; a phase with any failure reports it. Loopback targets only.
import http from "node:http";
import { type RecordableHistogram, createHistogram, performance } from "node:perf_hooks";

/** Where requests go: an address on this machine (127.0.0.0/8). */
export type Target = { host: string; port: number; path: string };

/** Says what is wrong with an answer (a short stable label), or undefined when it is a success. */
export type Check = (status: number, body: string) => string | undefined;

/** The next request body; `index` counts requests across the phase. */
export type NextBody = () => string;

export type Percentiles = { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };

export type PhaseResult = {
  kind: "closed" | "open";
  /** Requests answered (successes and failures). */
  requests: number;
  ok: number;
  failed: number;
  /** Failures by label, e.g. `rpc INSUFFICIENT_BALANCE`, `http 503`, `socket ECONNRESET`. */
  errors: Record<string, number>;
  /** The first few failing answers, verbatim (truncated). */
  errorSamples: string[];
  /** Wall time from the first request to the last answer. */
  seconds: number;
  /** Successful answers per second. */
  throughput: number;
  /** Successful answers in each whole second of the phase: shows warm-up and stalls. */
  perSecond: number[];
  /** Time from writing the request to the whole answer, in ms. */
  latencyMs: Percentiles;
  /** Open loop only: time from when the request was due to the whole answer, in ms (no coordinated omission). */
  scheduledLatencyMs?: Percentiles;
  /** Open loop only: the rate asked for, and how late the generator started requests (ms). */
  rate?: number;
  startLagMs?: Percentiles;
};

/** A request that has not answered in this long counts as a failure. */
const REQUEST_TIMEOUT_MS = 10_000;

function target127(target: Target) {
  if (!/^127\.\d+\.\d+\.\d+$/.test(target.host)) throw new Error(`load target must be on loopback (127.0.0.0/8), not ${target.host}`);
}

/** One POST on `agent`: the status and body, or a socket error label. */
function post(agent: http.Agent, target: Target, body: string): Promise<{ status: number; text: string } | { error: string }> {
  return new Promise((resolve) => {
    const request = http.request(
      {
        agent,
        host: target.host,
        port: target.port,
        path: target.path,
        method: "POST",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        response.on("error", (error: NodeJS.ErrnoException) => resolve({ error: `socket ${error.code ?? error.message}` }));
      },
    );
    request.setTimeout(REQUEST_TIMEOUT_MS, () => request.destroy(Object.assign(new Error("timeout"), { code: "TIMEOUT" })));
    request.on("error", (error: NodeJS.ErrnoException) => resolve({ error: `socket ${error.code ?? error.message}` }));
    request.end(body);
  });
}

/** Failure counts and samples, shared by both loops. */
function tally() {
  const errors: Record<string, number> = {};
  const errorSamples: string[] = [];
  let ok = 0;
  let failed = 0;
  return {
    errors,
    errorSamples,
    get ok() {
      return ok;
    },
    get failed() {
      return failed;
    },
    /** Records an answer; true when it is a success. */
    record(answer: { status: number; text: string } | { error: string }, check: Check): boolean {
      const label = "error" in answer ? answer.error : check(answer.status, answer.text);
      if (label === undefined) {
        ok++;
        return true;
      }
      failed++;
      errors[label] = (errors[label] ?? 0) + 1;
      if (errorSamples.length < 5) errorSamples.push("error" in answer ? answer.error : `${answer.status} ${answer.text.slice(0, 400)}`);
      return false;
    },
  };
}

const msHistogram = () => createHistogram({ lowest: 1, highest: 60_000_000_000, figures: 3 });
/** Records a duration given in ms into a nanosecond histogram. */
const recordMs = (histogram: RecordableHistogram, ms: number) => histogram.record(Math.max(1, Math.round(ms * 1e6)));

/** What both load shapes report: counts, throughput of good answers, and latency. */
function summary(counts: ReturnType<typeof tally>, elapsed: number, perSecond: number[], latency: RecordableHistogram) {
  return {
    requests: counts.ok + counts.failed,
    ok: counts.ok,
    failed: counts.failed,
    errors: counts.errors,
    errorSamples: counts.errorSamples,
    seconds: elapsed,
    throughput: counts.ok / elapsed,
    perSecond,
    latencyMs: percentiles(latency),
  };
}

function percentiles(histogram: RecordableHistogram): Percentiles {
  const ms = (ns: number) => Math.round(ns / 1e3) / 1e3;
  if (histogram.count === 0) return { p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN };
  return {
    p50: ms(histogram.percentile(50)),
    p90: ms(histogram.percentile(90)),
    p99: ms(histogram.percentile(99)),
    p999: ms(histogram.percentile(99.9)),
    max: ms(histogram.max),
    mean: ms(histogram.mean),
  };
}

/**
 * Closed loop: `connections` keep-alive connections, each sending its next request as soon as the
 * last one answers, for `seconds`. Its throughput is the server's peak at that concurrency.
 */
export async function closedLoop({
  target,
  connections,
  seconds,
  nextBody,
  check,
}: {
  target: Target;
  connections: number;
  seconds: number;
  nextBody: NextBody;
  check: Check;
}): Promise<PhaseResult> {
  target127(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const latency = msHistogram();
  const counts = tally();
  const started = performance.now();
  const end = started + seconds * 1000;
  const perSecond = new Array<number>(Math.ceil(seconds)).fill(0);
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const sent = performance.now();
        const answer = await post(agent, target, nextBody());
        const done = performance.now();
        if (counts.record(answer, check)) {
          recordMs(latency, done - sent);
          const second = Math.floor((done - started) / 1000);
          if (second < perSecond.length) perSecond[second]++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  return {
    kind: "closed",
    ...summary(counts, elapsed, perSecond, latency),
  };
}

/**
 * Open loop: request k is due at start + k/rate, and is started then (or as soon after as the
 * generator's timer allows) whether or not earlier ones have answered, up to `maxInFlight` sockets.
 * Latency is reported both from the write and from the due time; the latter charges any stall of
 * the server (or of the generator) to the requests that waited for it.
 */
export async function openLoop({
  target,
  rate,
  seconds,
  maxInFlight,
  nextBody,
  check,
}: {
  target: Target;
  rate: number;
  seconds: number;
  maxInFlight: number;
  nextBody: NextBody;
  check: Check;
}): Promise<PhaseResult> {
  target127(target);
  if (!(rate > 0)) throw new RangeError(`rate must be positive, got ${rate}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
  const latency = msHistogram();
  const scheduled = msHistogram();
  const lag = msHistogram();
  const counts = tally();
  const total = Math.max(1, Math.round(rate * seconds));
  const interval = 1000 / rate;
  const started = performance.now();
  const perSecond = new Array<number>(Math.ceil(seconds)).fill(0);
  const pending: Promise<void>[] = [];
  let issued = 0;

  const fire = (due: number) => {
    const sent = performance.now();
    recordMs(lag, sent - due);
    pending.push(
      post(agent, target, nextBody()).then((answer) => {
        const done = performance.now();
        if (counts.record(answer, check)) {
          recordMs(latency, done - sent);
          recordMs(scheduled, done - due);
          const second = Math.floor((done - started) / 1000);
          if (second < perSecond.length) perSecond[second]++;
        }
      }),
    );
  };

  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (issued < total && started + issued * interval <= now) fire(started + issued++ * interval);
      if (issued < total) setTimeout(tick, Math.max(0, started + issued * interval - performance.now()));
      else resolve();
    };
    tick();
  });
  await Promise.all(pending);
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  return {
    kind: "open",
    ...summary(counts, elapsed, perSecond, latency),
    scheduledLatencyMs: percentiles(scheduled),
    rate,
    startLagMs: percentiles(lag),
  };
}

/** One rate tried while searching for the peak, and why it was refused (undefined when it passed). */
export type Step = { rate: number; result: PhaseResult; failure: string | undefined };

/**
 * The highest open-loop rate that `accept` passes, searched from `guess`: up by 15% while steps
 * pass, down by 25% while they fail, then bisection between the best pass and the lowest failure,
 * for at most `steps` steps or until the two are within 2%. `run` measures one rate; `rest` runs
 * after a failed step, so its backlog or load shedding does not spill into the next one.
 */
export async function findPeakRate({
  guess,
  steps,
  run,
  accept,
  rest,
}: {
  guess: number;
  steps: number;
  run: (rate: number) => Promise<PhaseResult>;
  accept: (result: PhaseResult) => string | undefined;
  rest: () => Promise<void>;
}): Promise<{ best: Step | undefined; steps: Step[] }> {
  const tried: Step[] = [];
  let best: Step | undefined;
  let lowestFailure: number | undefined;
  let rate = Math.max(1, Math.round(guess));
  for (let index = 0; index < steps; index++) {
    const result = await run(rate);
    const step = { rate, result, failure: accept(result) };
    tried.push(step);
    if (step.failure === undefined) {
      if (!best || rate > best.rate) best = step;
    } else {
      lowestFailure = Math.min(lowestFailure ?? Infinity, rate);
      await rest();
    }
    if (best && lowestFailure !== undefined && (lowestFailure - best.rate) / best.rate < 0.02) break;
    const next = lowestFailure === undefined ? rate * 1.15 : best ? (best.rate + lowestFailure) / 2 : rate * 0.75;
    rate = Math.max(1, Math.round(next));
  }
  return { best, steps: tried };
}
