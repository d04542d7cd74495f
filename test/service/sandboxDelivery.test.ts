// The sandbox's notification delivery against a real merchant endpoint on 127.0.0.1: the gateways'
// retry schedules (sped up), acknowledgement, fresh signing per attempt, concurrent duplicates,
// SIGNTEST probes, timeouts and a clean stop.
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { after, afterEach, describe, it } from "node:test";

import Fastify, { type FastifyInstance } from "fastify";

import type { Channel } from "../../service/gateways/gateway.ts";
import { type DeliveryLogger, type SandboxDelivery, RETRY_SCHEDULES, createNotificationDelivery } from "../../scripts/sandbox/delivery.ts";
import type { OutgoingNotification } from "../../scripts/sandbox/simulator.ts";
import { within } from "../support/wait.ts";

type Received = { at: number; headers: Record<string, string | string[] | undefined>; body: string };
type Answer = { status: number; body?: string; delayMs?: number };

/** A merchant notify endpoint that answers each request as `answer` says and keeps what it got. */
async function startReceiver(answer: (request: Received, index: number) => Answer | Promise<Answer>) {
  const received: Received[] = [];
  // Aborted deliveries can leave a held request behind; closing must not wait for it.
  const app: FastifyInstance = Fastify({ forceCloseConnections: true });
  app.addContentTypeParser("*", { parseAs: "string" }, (_request, body, done) => done(null, body));
  app.post("/notify", async (request, reply) => {
    const entry = { at: performance.now(), headers: request.headers, body: String(request.body ?? "") };
    received.push(entry);
    const { status, body = "", delayMs = 0 } = await answer(entry, received.length - 1);
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    return reply.code(status).type("text/plain").send(body);
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as { port: number };
  receivers.push(app);
  return { url: `http://127.0.0.1:${port}/notify`, received };
}

const receivers: FastifyInstance[] = [];
const deliveries: SandboxDelivery[] = [];
afterEach(async () => {
  await Promise.all(deliveries.splice(0).map((delivery) => delivery.stop()));
});
after(async () => {
  await Promise.all(receivers.map((app) => app.close()));
});

/** A delivery stopped after each test, logging into `logged`. */
function delivery(options: Parameters<typeof createNotificationDelivery>[0] = {}) {
  const logged: { level: string; message: string; details: object }[] = [];
  const logger: DeliveryLogger = {
    info: (details, message) => logged.push({ level: "info", message, details }),
    warn: (details, message) => logged.push({ level: "warn", message, details }),
  };
  const created = createNotificationDelivery({ logger, ...options });
  deliveries.push(created);
  return { delivery: created, logged };
}

let ids = 0;
/** An Alipay-style notification: each build numbers itself, acknowledged by a bare `success`. */
function notification(url: string, { channel = "alipay" as Channel, probe = false } = {}): OutgoingNotification & { builds: () => number } {
  let builds = 0;
  return {
    channel,
    id: `N${++ids}`,
    url,
    build: () => ({ headers: { "content-type": "text/plain", "x-build": String(++builds) }, body: `build ${builds}` }),
    ...(probe ? { buildProbe: () => ({ headers: { "content-type": "text/plain", "x-signature": "WECHATPAY/SIGNTEST/abc" }, body: "probe" }) } : {}),
    acknowledged: (status, body) => status === 200 && body === "success",
    builds: () => builds,
  };
}

const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);

describe("the gateways' retry schedules", () => {
  it("are the documented ones: Alipay 8 attempts over 4m..15h, WeChat 16 over 15s..6h", () => {
    const inSeconds = (channel: Channel) => RETRY_SCHEDULES[channel].map((ms) => ms / 1000);
    assert.deepEqual(inSeconds("alipay"), [240, 600, 600, 3600, 7200, 21600, 54000]);
    assert.deepEqual(inSeconds("wechatpay"), [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600]);
    // Spec totals: Alipay 24 h 24 m of waits; WeChat 24 h 4 m.
    assert.equal(sum(RETRY_SCHEDULES.alipay), (24 * 60 + 24) * 60_000);
    assert.equal(sum(RETRY_SCHEDULES.wechatpay), (24 * 60 + 4) * 60_000);
  });

  for (const channel of ["alipay", "wechatpay"] as const) {
    it(`${channel}: runs the whole schedule, sped up, then gives up`, async () => {
      const waits = RETRY_SCHEDULES[channel];
      // The whole schedule in about 1.5 s of real time.
      const timeScale = sum(waits) / 1500;
      const receiver = await startReceiver(() => ({ status: 500, body: "fail" }));
      const { delivery: sender, logged } = delivery({ timeScale });
      const sent = notification(receiver.url, { channel });
      const started = performance.now();
      sender.send(sent);
      await sender.idle();
      const elapsed = performance.now() - started;

      assert.equal(receiver.received.length, waits.length + 1);
      // Each attempt waited exactly its place in the schedule (unscaled)...
      assert.deepEqual(
        sender.attempts(sent.id).map(({ attempt, afterMs, status, acknowledged }) => ({ attempt, afterMs, status, acknowledged })),
        [0, ...waits].map((afterMs, index) => ({ attempt: index + 1, afterMs, status: 500, acknowledged: false })),
      );
      assert.deepEqual(sender.deliveries().find((summary) => summary.id === sent.id), { id: sent.id, channel, url: receiver.url, state: "gaveUp", attempts: waits.length + 1 });
      assert.ok(logged.some(({ level, message }) => level === "warn" && /gave up/.test(message)));
      // ...and really waited it: timers never fire early, so every gap is at least its scaled
      // wait, and any other order would put a short gap where a long one belongs. 1 ms covers rounding.
      const gaps = receiver.received.slice(1).map((entry, index) => entry.at - receiver.received[index].at);
      gaps.forEach((gap, index) => assert.ok(gap >= waits[index] / timeScale - 1, `gap ${index + 1}: ${gap.toFixed(2)} ms < ${(waits[index] / timeScale).toFixed(2)} ms`));
      // And nothing waits much longer than the schedule (generous bound for a busy machine).
      assert.ok(elapsed < 1500 + 3000, `took ${elapsed.toFixed(0)} ms`);
    });
  }
});

describe("acknowledgement", () => {
  it("stops at the first acknowledged attempt, building every attempt afresh", async () => {
    const receiver = await startReceiver((_request, index) => (index < 2 ? { status: 200, body: "fail" } : { status: 200, body: "success" }));
    const { delivery: sender } = delivery({ timeScale: 1e6 });
    const sent = notification(receiver.url);
    sender.send(sent);
    await sender.idle();
    // Nothing more comes later: the next wait would have been ~0.6 ms.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(receiver.received.length, 3);
    assert.deepEqual(receiver.received.map(({ headers, body }) => [headers["x-build"], body]), [["1", "build 1"], ["2", "build 2"], ["3", "build 3"]]);
    assert.equal(sent.builds(), 3);
    assert.deepEqual(sender.attempts(sent.id).map(({ acknowledged }) => acknowledged), [false, false, true]);
    assert.equal(sender.deliveries().find((summary) => summary.id === sent.id)?.state, "acknowledged");
  });

  it("takes nothing but the gateway's acknowledgement: a quoted body, another status or a redirect is a failure", async () => {
    const answers: Answer[] = [{ status: 200, body: '"success"' }, { status: 204, body: "" }, { status: 302, body: "success" }, { status: 200, body: "success" }];
    const receiver = await startReceiver((_request, index) => answers[index]);
    const { delivery: sender } = delivery({ timeScale: 1e6 });
    const sent = notification(receiver.url);
    sender.send(sent);
    await sender.idle();
    assert.deepEqual(sender.attempts(sent.id).map(({ status, acknowledged }) => [status, acknowledged]), [[200, false], [204, false], [302, false], [200, true]]);
  });

  it("redelivers an acknowledged notification when asked to, as a gateway that lost the answer does", async () => {
    const receiver = await startReceiver(() => ({ status: 200, body: "success" }));
    const { delivery: sender } = delivery({ timeScale: 1e6, redeliverAfterAck: 2 });
    const sent = notification(receiver.url);
    sender.send(sent);
    await sender.idle();
    assert.equal(receiver.received.length, 3);
    assert.deepEqual(sender.attempts(sent.id).map(({ attempt, redelivery }) => [attempt, redelivery ?? false]), [[1, false], [2, true], [3, true]]);
    assert.equal(sender.deliveries().find((summary) => summary.id === sent.id)?.attempts, 1);
  });
});

describe("duplicates", () => {
  it("sends each attempt as N concurrent copies, each built afresh", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let release: () => void = () => {};
    const allArrived = new Promise<void>((resolve) => (release = resolve));
    const receiver = await startReceiver(async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      if (inFlight === 3) release();
      // Sequential copies would never get here together: the first waits for the others.
      await Promise.race([allArrived, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      inFlight--;
      return { status: 200, body: "success" };
    });
    const { delivery: sender } = delivery({ duplicates: 3 });
    const sent = notification(receiver.url);
    sender.send(sent);
    await sender.idle();
    assert.equal(maxInFlight, 3);
    assert.deepEqual(receiver.received.map(({ headers }) => headers["x-build"]).sort(), ["1", "2", "3"]);
    assert.deepEqual(sender.attempts(sent.id).map(({ attempt, copy }) => [attempt, copy]).sort(), [[1, 1], [1, 2], [1, 3]]);
  });
});

describe("probes", () => {
  it("sends the probe first and records a merchant that wrongly acknowledges it", async () => {
    const receiver = await startReceiver(() => ({ status: 200, body: "success" }));
    const { delivery: sender, logged } = delivery({ probes: true });
    const sent = notification(receiver.url, { channel: "wechatpay", probe: true });
    sender.send(sent);
    await sender.idle();
    assert.deepEqual(receiver.received.map(({ body }) => body), ["probe", "build 1"]);
    assert.equal(receiver.received[0].headers["x-signature"], "WECHATPAY/SIGNTEST/abc");
    const [probe, first] = sender.attempts(sent.id);
    assert.deepEqual([probe.probe, probe.attempt, probe.acknowledged], [true, 0, true]);
    assert.deepEqual([first.probe, first.attempt, first.acknowledged], [undefined, 1, true]);
    assert.equal(sender.deliveries().find((summary) => summary.id === sent.id)?.probeAcknowledged, true);
    assert.ok(logged.some(({ level, message }) => level === "warn" && /probe/.test(message)));
  });

  it("records a refused probe as not acknowledged and warns about nothing", async () => {
    const receiver = await startReceiver(({ body }) => (body === "probe" ? { status: 401, body: '{"code":"FAIL"}' } : { status: 200, body: "success" }));
    const { delivery: sender, logged } = delivery({ probes: true });
    const sent = notification(receiver.url, { channel: "wechatpay", probe: true });
    sender.send(sent);
    await sender.idle();
    assert.deepEqual(sender.attempts(sent.id).map(({ probe, status, acknowledged }) => [probe ?? false, status, acknowledged]), [[true, 401, false], [false, 200, true]]);
    assert.equal(sender.deliveries().find((summary) => summary.id === sent.id)?.probeAcknowledged, false);
    assert.equal(logged.filter(({ level }) => level === "warn").length, 0);
  });

  it("sends no probe unless asked", async () => {
    const receiver = await startReceiver(() => ({ status: 200, body: "success" }));
    const { delivery: sender } = delivery();
    sender.send(notification(receiver.url, { channel: "wechatpay", probe: true }));
    await sender.idle();
    assert.deepEqual(receiver.received.map(({ body }) => body), ["build 1"]);
  });
});

describe("failures", () => {
  it("counts a timeout as a failed attempt and retries", async () => {
    const receiver = await startReceiver((_request, index) => (index === 0 ? { status: 200, body: "success", delayMs: 400 } : { status: 200, body: "success" }));
    const { delivery: sender } = delivery({ timeScale: 1e6, timeoutMs: 100 });
    const sent = notification(receiver.url);
    sender.send(sent);
    await sender.idle();
    const [timedOut, second] = sender.attempts(sent.id);
    assert.deepEqual([timedOut.status, timedOut.acknowledged, timedOut.error], [null, false, "timed out after 100 ms"]);
    assert.deepEqual([second.attempt, second.acknowledged], [2, true]);
  });

  it("counts a refused connection as a failed attempt, through to giving up", async () => {
    const receiver = await startReceiver(() => ({ status: 200, body: "success" }));
    const closed = Fastify();
    await closed.listen({ host: "127.0.0.1", port: 0 });
    const { port } = closed.server.address() as { port: number };
    await closed.close();
    const { delivery: sender } = delivery({ schedules: { alipay: [1, 1] } });
    const sent = notification(`http://127.0.0.1:${port}/notify`);
    sender.send(sent);
    await sender.idle();
    const attempts = sender.attempts(sent.id);
    assert.equal(attempts.length, 3);
    for (const entry of attempts) {
      assert.equal(entry.status, null);
      assert.match(entry.error ?? "", /ECONNREFUSED/);
    }
    assert.equal(sender.deliveries().find((summary) => summary.id === sent.id)?.state, "gaveUp");
    assert.equal(receiver.received.length, 0);
  });
});

describe("options", () => {
  it("refuses a time scale below 1, no copies, a negative redelivery count and a zero timeout", () => {
    for (const options of [{ timeScale: 0.5 }, { timeScale: Number.NaN }, { duplicates: 0 }, { duplicates: 1.5 }, { redeliverAfterAck: -1 }, { timeoutMs: 0 }]) {
      assert.throws(() => createNotificationDelivery(options), RangeError, JSON.stringify(options));
    }
  });
});

describe("stop", () => {
  const timeouts = () => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;

  it("cancels scheduled retries and aborts requests in flight, leaving no timers behind", async () => {
    const baseline = timeouts();
    // Held until the end without a timer of its own, so the count above stays comparable.
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const slow = await startReceiver(async () => {
      await held;
      return { status: 200, body: "success" };
    });
    const failing = await startReceiver(() => ({ status: 500, body: "fail" }));
    // The first retry is due 1 s after the failed attempt.
    const { delivery: sender } = delivery({ timeScale: 240 });
    const waiting = notification(failing.url);
    const inFlight = notification(slow.url);
    sender.send(waiting);
    sender.send(inFlight);
    assert.ok(await within(2000, () => sender.attempts(waiting.id).length === 1 && slow.received.length === 1));
    const failedAt = performance.now();
    assert.equal(sender.pending(), 2);
    assert.ok(timeouts() > baseline, "a retry is scheduled");

    const stopping = performance.now();
    await sender.stop();
    assert.ok(performance.now() - stopping < 1000, "stop does not wait for the merchant");
    assert.equal(sender.pending(), 0);
    await sender.idle();
    assert.equal(timeouts(), baseline);
    assert.deepEqual(sender.deliveries().map(({ state }) => state), ["stopped", "stopped"]);
    assert.equal(sender.attempts(inFlight.id)[0].error, "delivery stopped");

    // Past the retry's time nothing arrives, and a send after stop is dropped.
    sender.send(notification(failing.url));
    await new Promise((resolve) => setTimeout(resolve, failedAt + 1100 - performance.now()));
    assert.equal(failing.received.length, 1);
    assert.equal(sender.pending(), 0);
    release();
  });
});
