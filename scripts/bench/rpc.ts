// `npm run bench:rpc`: throughput and latency of pm_getPaymasterData against the real service
// (real Redis, real signing, distinct senders with real sessions and balances), next to a
// sign-only floor: the same signer behind a bare fastify route, measured in the same run.
//
// Both servers run as child processes pinned to one core (taskset); this process, the load
// generator, pins itself and its helpers (anvil, redis-server) to another. Traffic goes to
// 127.0.0.1 only and every phase is bounded in time. Results: a table on stdout and
// test-output/bench-rpc.json.
//
// Peak throughput is the highest rate a server keeps up with, found by trying open-loop rates
// (bisection): a step passes when every request succeeds, at least 97% of the rate is served and
// p90 (from when each request was due) stays under 50 ms: a server that falls behind builds a
// queue that lifts most latencies, while a rare stall lifts only the tail. A closed loop would
// not do for the service: it sheds load (503 OVERLOADED) whenever its event loop is saturated, so
// saturating it measures the shedding. Both servers are measured the same way; the floor's
// closed-loop warm-up shows its raw ceiling too. Then, as a cross-check that drift in the
// machine's speed cannot bias, floor and service alternate at 60% of their peaks and compare CPU
// cost per request. Last, the service's latency at half its peak, in an open loop.
//
// Targets are judged only on phases with no interference: other processes on the servers' core
// (steal included) or a saturated generator core make a verdict "not judged".
//
// A run is INVALID if any request failed, except OVERLOADED answers in steps that offered more
// than the service could take (those steps fail, which is how the peak is found).
//
// Options (npm run bench:rpc -- --name value):
//   --senders N          accounts signed in and credited up front (default 2000)
//   --warmup S           warm-up of each server, seconds (default 6; the service gets 2 more)
//   --steps N            rates tried per server in the peak search (default 6)
//   --step S             seconds per rate tried (default 2.5)
//   --fixed-duration S   the fixed-rate latency measurement, seconds (default 8)
//   --connections N      closed-loop connections for the floor's warm-up (default 32; the service's uses 1)
//   --trace              also print successes per second of each phase
//   --profile            run the servers under --cpu-prof and print where their time went
//                        (figures from such a run carry the profiler's overhead)
//   --server-core C, --client-core C   the cores to pin to (defaults 0 and 1)
//   --nice=N             run the bench and everything it starts at this priority (-20..19, default 0;
//                        below 0 needs root): on a shared machine, makes other work yield to it
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

import type { Redis } from "ioredis";
import { type Address, type Hex, parseEther } from "viem";
import { type PrivateKeyAccount, generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { createSiweMessage } from "viem/siwe";

import { ENTRYPOINT_ADDRESS } from "../../service/chain/entryPoints.ts";
import { loadConfig } from "../../service/config.ts";
import { createKeys } from "../../service/redis.ts";
import { createService } from "../../service/service.ts";
import { executeCall, simpleAccount } from "../../test/support/aa.ts";
import { depositTo, deployPaymasters, startAnvil } from "../../test/support/anvil.ts";
import { startRedis } from "../../test/support/redis.ts";
import { SIWE_DOMAIN, localServiceEnv } from "../../test/support/serviceFixture.ts";
import { type Check, type PhaseResult, type Step, type Target, closedLoop, findPeakRate, openLoop } from "./load.ts";
import { formatProfile, summariseProfile } from "./profile.ts";

const root = path.resolve(import.meta.dirname, "../..");
const SERVER_ENTRY = path.join(root, "scripts/bench/rpcServer.ts");
const OUTPUT = path.join(root, "test-output/bench-rpc.json");
const PROFILE_DIR = path.join(root, "test-output/bench-profiles");

/** What the bench aims for (the lead's targets). */
const TARGET = { throughputRatio: 0.8, p99Ms: 10 };
/** A rate is kept up with when this share of it is served with p90 under this bound (from the due time). */
const KEEPS_UP = { served: 0.97, p90Ms: 50 };
/** Alternating floor/service pairs for the drift-proof CPU-cost cross-check. */
const PAIRS = 3;
/** Each sender gets this many fen: enough for MAX_LIVE_RESERVATIONS worst-case ops (~5,700 fen each). */
const CREDIT_FEN = 10_000_000n;
const MAX_LIVE_RESERVATIONS = 1_000;
/** The op every request sponsors: a SimpleAccount's first call, gas limits as in test/service/erc7677.test.ts. */
const GAS_LIMITS = { callGasLimit: "0x186a0", verificationGasLimit: "0x7a120", preVerificationGas: "0xea60" };
/** Fees as a client sends them: hex quantities, from the service's GET /v1/gas-prices. */
type Fees = { maxFeePerGas: Hex; maxPriorityFeePerGas: Hex };
const CALL_DATA = executeCall("0x00000000000000000000000000000000000000cc", 0n, "0x");

const { values: options } = parseArgs({
  options: {
    senders: { type: "string", default: "2000" },
    connections: { type: "string", default: "32" },
    warmup: { type: "string", default: "6" },
    steps: { type: "string", default: "6" },
    step: { type: "string", default: "2.5" },
    "fixed-duration": { type: "string", default: "8" },
    trace: { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    "server-core": { type: "string", default: "0" },
    "client-core": { type: "string", default: "1" },
    nice: { type: "string", default: "0" },
  },
});

function positive(name: string, value: string, max: number): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0 || number > max) throw new Error(`--${name} must be a number in (0, ${max}], got ${value}`);
  return number;
}
function core(name: string, value: string): number {
  if (!/^\d{1,4}$/.test(value)) throw new Error(`--${name} must be a core number, got ${value}`);
  return Number(value);
}
function niceness(value: string): number {
  if (!/^-?\d{1,2}$/.test(value) || Number(value) < -20 || Number(value) > 19) throw new Error(`--nice must be from -20 to 19, got ${value}`);
  return Number(value);
}
const settings = {
  senders: Math.round(positive("senders", options.senders, 20_000)),
  connections: Math.round(positive("connections", options.connections, 512)),
  warmupSeconds: positive("warmup", options.warmup, 30),
  steps: Math.round(positive("steps", options.steps, 12)),
  stepSeconds: positive("step", options.step, 10),
  fixedSeconds: positive("fixed-duration", options["fixed-duration"], 30),
  trace: options.trace,
  profile: options.profile,
  serverCore: core("server-core", options["server-core"]),
  clientCore: core("client-core", options["client-core"]),
  nice: niceness(options.nice),
};

// ---------------------------------------------------------------------------------------------
// The machine: two cores, taskset, Node 22; CPU accounting from /proc.

function preconditions() {
  const [major] = process.versions.node.split(".").map(Number);
  if (major < 22) throw new Error(`Node ${process.version}: run through \`npm run bench:rpc\`, which uses the project's Node 22`);
  if (spawnSync("taskset", ["--version"]).status !== 0) throw new Error("taskset (util-linux) is missing: apt-get install -y util-linux");
  const cores = os.availableParallelism();
  if (cores < 2 || settings.serverCore === settings.clientCore || Math.max(settings.serverCore, settings.clientCore) >= cores) {
    throw new Error(`need two distinct cores below ${cores} for the servers (${settings.serverCore}) and the load (${settings.clientCore})`);
  }
  if (!existsSync(path.join(root, "artifacts/contracts"))) throw new Error("contracts are not built: run `npx hardhat build` first");
}

/** Pins every thread of this process (and so every child it starts from then on) to `cores`, e.g. "1" or "0-1". */
function pinSelf(cores: string) {
  const pinned = spawnSync("taskset", ["-a", "-p", "-c", cores, String(process.pid)], { encoding: "utf8" });
  if (pinned.status !== 0) throw new Error(`taskset could not pin the load generator to cores ${cores}: ${pinned.stderr}`);
}

/** The cores a process may run on, as /proc says. */
const allowedCores = (pid: number) => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? "?";

const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** CPU seconds (user + system) a process has used, from /proc. */
function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** One core's time since boot in seconds, from /proc/stat: processes (user, nice, system), interrupts, steal, all. */
function coreSeconds(index: number): { processes: number; interrupts: number; steal: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n").find((entry) => entry.startsWith(`cpu${index} `));
  if (!line) throw new Error(`/proc/stat has no cpu${index}`);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const seconds = (ticks: number) => ticks / CLOCK_TICKS;
  return {
    processes: seconds(user + nice + system),
    interrupts: seconds(irq + softirq),
    steal: seconds(steal),
    total: seconds(user + nice + system + idle + iowait + irq + softirq + steal),
  };
}

/** How busy each core is over `ms`, before the bench starts anything: other work disturbs the figures. */
async function idleCheck(ms = 1000): Promise<number[]> {
  const cores = os.cpus().length;
  const before = Array.from({ length: cores }, (_, index) => coreSeconds(index));
  await new Promise((resolve) => setTimeout(resolve, ms));
  return before.map((start, index) => {
    const end = coreSeconds(index);
    return (end.processes + end.interrupts + end.steal - start.processes - start.interrupts - start.steal) / (end.total - start.total);
  });
}

function machine() {
  const git = (args: string[]) => spawnSync("git", args, { cwd: root, encoding: "utf8" }).stdout?.trim() ?? "";
  return {
    // Not availableParallelism(): once pinned, that counts only the cores this process may use.
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    commit: git(["rev-parse", "--short", "HEAD"]),
    uncommittedChanges: git(["status", "--porcelain"]).split("\n").filter(Boolean).length,
  };
}

// ---------------------------------------------------------------------------------------------
// The servers under test, in pinned child processes.

/** What the server saw during a phase (see rpcServer.ts). */
type ServerStats = {
  gcCount: number;
  gcMajor: number;
  gcMs: number;
  gcMaxMs: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  eventLoopUtilization: number;
  eventLoopUtilizationSinceStart: number;
  underPressureUtilization: number | null;
};

type Server = { mode: "floor" | "service"; pid: number; target: Target; stats(): Promise<ServerStats>; stop(): Promise<void> };

async function startServer(mode: "floor" | "service", env: Record<string, string>): Promise<Server> {
  const profiling = settings.profile ? ["--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=${mode}.cpuprofile`] : [];
  const child: ChildProcess = spawn("taskset", ["-c", String(settings.serverCore), process.execPath, ...profiling, SERVER_ENTRY, mode], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, ...env },
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ready = await new Promise<{ url: string; pid: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the ${mode} server did not start within 60 s`)), 60_000);
    child.once("message", (message: { type: string; url: string; pid: number }) => {
      clearTimeout(timer);
      resolve(message);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the ${mode} server exited with ${code} before it was ready`));
    });
  });
  const cores = allowedCores(ready.pid);
  if (cores !== String(settings.serverCore)) throw new Error(`the ${mode} server runs on cores ${cores}, not ${settings.serverCore}`);
  const { hostname, port } = new URL(ready.url);
  return {
    mode,
    pid: ready.pid,
    target: { host: hostname, port: Number(port), path: "/rpc" },
    stats: () =>
      new Promise((resolve) => {
        child.once("message", (message: ServerStats) => resolve(message));
        child.send({ type: "stats" });
      }),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ type: "stop" });
      const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Senders: real counterfactual SimpleAccounts, each signed in through the sessions module and credited.

type Sender = { address: Address; factoryData: Hex; token: string };

async function prepareSenders(env: Record<string, string>, factory: Address, publicClient: Parameters<typeof simpleAccount>[0], count: number) {
  // A second instance of the service, never listening: its sessions and ledger write to the same Redis.
  const prep = await createService(loadConfig(env), { logger: false });
  await prep.start();
  const chainId = Number(env.CHAIN_ID);
  const senders: Sender[] = new Array(count);
  let next = 0;
  const one = async (owner: PrivateKeyAccount): Promise<Sender> => {
    const { sender, factoryData } = await simpleAccount(publicClient, factory, owner.address);
    const nonce = await prep.sessions.issueNonce();
    const message = createSiweMessage({ address: sender, chainId, domain: SIWE_DOMAIN, nonce, uri: `https://${SIWE_DOMAIN}/login`, version: "1", issuedAt: new Date() });
    const signature = await owner.signMessage({ message });
    const { token } = await prep.sessions.signIn({ message, signature, owner: owner.address, factory, factoryData });
    await prep.ledger.credit(sender, CREDIT_FEN);
    return { address: sender, factoryData, token };
  };
  try {
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < count) {
          const index = next++;
          senders[index] = await one(privateKeyToAccount(generatePrivateKey()));
        }
      }),
    );
  } finally {
    await prep.stop();
  }
  return senders;
}

// ---------------------------------------------------------------------------------------------
// Requests and their checks.

/**
 * ERC-7677 pm_getPaymasterData bodies. Request i goes to sender i mod N with nonce key ⌊i/N⌋, so
 * every request is a fresh (sender, nonce) reservation and N consecutive requests have N senders.
 */
const toHex = (value: bigint) => `0x${value.toString(16)}` as Hex;

function bodies(senders: Sender[], { factory, entryPoint, chainId, fees }: { factory: Address; entryPoint: Address; chainId: number; fees: Fees }) {
  let issued = 0;
  const chain = `0x${chainId.toString(16)}`;
  return () => {
    const index = issued++;
    const sender = senders[index % senders.length];
    const nonce = `0x${(BigInt(Math.floor(index / senders.length)) << 64n).toString(16)}`;
    const op = { sender: sender.address, nonce, factory, factoryData: sender.factoryData, callData: CALL_DATA, ...GAS_LIMITS, ...fees };
    return JSON.stringify({ jsonrpc: "2.0", id: index, method: "pm_getPaymasterData", params: [op, entryPoint, chain, { session: sender.token }] });
  };
}

const PAYMASTER_DATA = /^0x[0-9a-f]{154}$/;

/** A success is HTTP 200 with a result for our paymaster and 77 bytes of paymasterData. */
function checkFor(paymaster: Address): Check {
  return (status, text) => {
    let body: { result?: { paymaster?: string; paymasterData?: string }; error?: { code?: number; data?: { code?: string } } };
    try {
      body = JSON.parse(text);
    } catch {
      return `http ${status} (not JSON)`;
    }
    if (body.error) return `rpc ${body.error.data?.code ?? body.error.code}`;
    if (status !== 200) return `http ${status}`;
    if (body.result?.paymaster !== paymaster || !PAYMASTER_DATA.test(body.result.paymasterData ?? "")) return "bad result";
    return undefined;
  };
}

// ---------------------------------------------------------------------------------------------
// Phases, with what each process used during them.

/**
 * Shares of one core over a phase. `other` is whatever ran on the servers' core besides the two
 * servers (other processes, and steal by the hypervisor): above a few percent, the phase's figures
 * understate the server. Interrupts (loopback networking) are reported apart: they are the servers' own.
 */
type Cpu = {
  server: number;
  /** Server CPU ms per successful answer: what a request costs, whatever the load or the interference. */
  serverMsPerRequest: number;
  other: number;
  interrupts: number;
  redis: number;
  loadGenerator: number;
  clientCore: number;
};
type Measured = { name: string; load: string; result: PhaseResult; cpu: Cpu; server: ServerStats };

async function redisCpuSeconds(client: Redis): Promise<number> {
  const info = await client.info("cpu");
  const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return field("used_cpu_user") + field("used_cpu_sys");
}

function createMeasure(servers: Server[], redis: Redis, log: (measured: Measured) => void) {
  const serversCpu = () => servers.reduce((sum, server) => sum + processCpuSeconds(server.pid), 0);
  return async function measure(name: string, load: string, server: Server, run: () => Promise<PhaseResult>): Promise<Measured> {
    await server.stats();
    const before = {
      server: processCpuSeconds(server.pid),
      servers: serversCpu(),
      redis: await redisCpuSeconds(redis),
      self: process.cpuUsage(),
      serverCore: coreSeconds(settings.serverCore),
      clientCore: coreSeconds(settings.clientCore),
    };
    const result = await run();
    const stats = await server.stats();
    const self = process.cpuUsage(before.self);
    const serverCore = coreSeconds(settings.serverCore);
    const clientCore = coreSeconds(settings.clientCore);
    const coreTime = serverCore.total - before.serverCore.total;
    const clientTime = clientCore.total - before.clientCore.total;
    const serverSeconds = processCpuSeconds(server.pid) - before.server;
    const cpu: Cpu = {
      server: serverSeconds / coreTime,
      serverMsPerRequest: (serverSeconds * 1000) / Math.max(1, result.ok),
      other: Math.max(0, serverCore.processes - before.serverCore.processes - (serversCpu() - before.servers) + serverCore.steal - before.serverCore.steal) / coreTime,
      interrupts: (serverCore.interrupts - before.serverCore.interrupts) / coreTime,
      redis: ((await redisCpuSeconds(redis)) - before.redis) / result.seconds,
      loadGenerator: (self.user + self.system) / 1e6 / result.seconds,
      clientCore: (clientCore.processes + clientCore.interrupts - before.clientCore.processes - before.clientCore.interrupts) / clientTime,
    };
    const measured = { name, load, result, cpu, server: stats };
    log(measured);
    return measured;
  };
}

/** Why `result` does not count as keeping up with its rate, or undefined if it does. */
function keepsUp(result: PhaseResult): string | undefined {
  if (result.failed > 0) return `${result.failed} failed (${Object.entries(result.errors).map(([label, count]) => `${count} ${label}`).join(", ")})`;
  if (result.throughput < KEEPS_UP.served * result.rate!) return `served ${result.throughput.toFixed(0)}/s of ${result.rate}/s`;
  if (result.scheduledLatencyMs!.p90 > KEEPS_UP.p90Ms) return `p90 ${result.scheduledLatencyMs!.p90.toFixed(1)} ms > ${KEEPS_UP.p90Ms} ms`;
  return undefined;
}

const OVERLOADED = "rpc OVERLOADED";

// ---------------------------------------------------------------------------------------------
// Output.

const COLUMNS = [
  ["phase", 24],
  ["load", 9],
  ["requests", 8],
  ["errors", 6],
  ["req/s", 6],
  ["p50 ms", 7],
  ["p90 ms", 7],
  ["p99 ms", 7],
  ["max ms", 7],
  ["p99 due", 7],
  ["srv", 5],
  ["ms/req", 6],
  ["other", 5],
  ["redis", 5],
  ["core1", 5],
  ["gc ms", 6],
  ["gc max", 6],
  ["UP", 5],
] as const;

const fixed = (value: number | undefined, digits = 2) => (value === undefined || Number.isNaN(value) ? "-" : value.toFixed(digits));
const percent = (share: number) => `${Math.round(share * 100)}%`;

function row({ name, load, result, cpu, server }: Measured): string {
  const cells = [
    name,
    load,
    String(result.requests),
    String(result.failed),
    fixed(result.throughput, 0),
    fixed(result.latencyMs.p50),
    fixed(result.latencyMs.p90),
    fixed(result.latencyMs.p99),
    fixed(result.latencyMs.max),
    fixed(result.scheduledLatencyMs?.p99),
    percent(cpu.server),
    fixed(cpu.serverMsPerRequest),
    percent(cpu.other),
    percent(cpu.redis),
    percent(cpu.clientCore),
    fixed(server.gcMs, 0),
    fixed(server.gcMaxMs, 1),
    fixed(server.underPressureUtilization ?? undefined),
  ];
  return cells.map((cell, index) => (index < 2 ? cell.padEnd(COLUMNS[index][1]) : cell.padStart(COLUMNS[index][1]))).join(" ");
}

const header = () => COLUMNS.map(([title, width], index) => (index < 2 ? title.padEnd(width) : title.padStart(width))).join(" ");

// ---------------------------------------------------------------------------------------------

async function main() {
  preconditions();
  const facts = machine();
  // Every process started from here on inherits the priority and the pinning.
  if (settings.nice !== 0) os.setPriority(settings.nice);
  pinSelf(String(settings.clientCore));
  const command = `npm run bench:rpc${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;
  const started = Date.now();
  console.log(`bench:rpc  ${command}`);
  console.log(
    `machine: ${facts.cores} cores (${facts.cpu}), ${facts.memoryGiB} GiB, ${facts.kernel}, Node ${facts.node}, commit ${facts.commit}` +
      (facts.uncommittedChanges ? ` + ${facts.uncommittedChanges} uncommitted changes` : ""),
  );
  console.log(
    `pinning: servers on core ${settings.serverCore}; load generator, redis-server and anvil on core ${settings.clientCore}` +
      (settings.nice !== 0 ? `; all at nice ${settings.nice}` : ""),
  );
  const busyBefore = await idleCheck();
  console.log(`before the bench: cores ${busyBefore.map(percent).join(", ")} busy${busyBefore.some((share) => share > 0.1) ? "  (warning: the machine is not idle; figures will be disturbed)" : ""}`);
  if (settings.profile) rmSync(PROFILE_DIR, { recursive: true, force: true });

  const anvil = await startAnvil();
  const redisServer = await startRedis({ durable: true });
  const cleanups: (() => Promise<void>)[] = [() => anvil.stop(), () => redisServer.stop()];
  try {
    const signerKey = generatePrivateKey();
    const { deployments } = await deployPaymasters(anvil, { signer: privateKeyToAccount(signerKey) });
    // Every request reserves a fresh worst case and nothing lands: the deposit guard's in-flight cap must not be what is measured.
    await depositTo(anvil, deployments["0.7"].paymaster, parseEther("5000"));
    const env: Record<string, string> = {
      ...localServiceEnv({ anvil, redis: redisServer, deployments, signerKey }),
      // One client (the bench) sends everything: the per-client limit must not be what is measured.
      RATE_LIMIT_PER_MINUTE: "1000000",
      // Senders are reused with fresh nonce keys once all have been used.
      MAX_LIVE_RESERVATIONS_PER_SENDER: String(MAX_LIVE_RESERVATIONS),
    };
    const redis = redisServer.client();
    const factory = deployments["0.7"].factory;
    const paymaster = deployments["0.7"].paymaster;
    const entryPoint = ENTRYPOINT_ADDRESS["0.7"];

    // Nothing is measured yet: preparing the senders may use every core. Then back to ours.
    const prepStarted = Date.now();
    pinSelf(`0-${facts.cores - 1}`);
    const senders = await prepareSenders(env, factory, anvil.publicClient, settings.senders);
    pinSelf(String(settings.clientCore));
    const prepSeconds = (Date.now() - prepStarted) / 1000;
    console.log(`senders: ${senders.length} SimpleAccounts signed in (SIWE via sessions.signIn) and credited (ledger.credit) in ${prepSeconds.toFixed(1)} s`);

    const floor = await startServer("floor", env);
    cleanups.unshift(() => floor.stop());
    const service = await startServer("service", env);
    cleanups.unshift(() => service.stop());

    console.log(
      [
        "",
        "columns: latency ms from write to whole answer; 'p99 due' from when an open-loop request was due (includes the generator's own lag);",
        `  shares of one core: srv = the server measured, other = anything else on core ${settings.serverCore} (other processes, steal),`,
        `  redis = redis-server, core1 = all of core ${settings.clientCore} (generator, redis, anvil, anything else); ms/req = server CPU ms`,
        "  per successful answer; gc ms / gc max = the server's GC pauses",
        "  in the phase (total, longest); UP = the event-loop utilisation @fastify/under-pressure last sampled (the service sheds above 0.98)",
        "",
        `  ${header()}`,
      ].join("\n"),
    );
    const measure = createMeasure([floor, service], redis, (measured) => {
      console.log(`  ${row(measured)}`);
      if (settings.trace) console.log(`      successes per second: ${measured.result.perSecond.join(" ")}`);
      if (measured.result.failed > 0 && !Object.keys(measured.result.errors).every((label) => label === OVERLOADED)) {
        console.log(`      failed: ${JSON.stringify(measured.result.errors)}, e.g. ${measured.result.errorSamples[0]}`);
      }
    });

    const check = checkFor(paymaster);
    const { connections, warmupSeconds, stepSeconds, fixedSeconds } = settings;
    // The service refuses fees far above the base fee (its risk policy, 3× by default): send what
    // it suggests, held to twice the base fee.
    const suggested = (await (await fetch(`http://${service.target.host}:${service.target.port}/v1/gas-prices`)).json()) as {
      baseFee: string;
      standard: { maxFeePerGas: string; maxPriorityFeePerGas: string };
    };
    const min = (a: bigint, b: bigint) => (a < b ? a : b);
    const maxFee = min(BigInt(suggested.standard.maxFeePerGas), 2n * BigInt(suggested.baseFee));
    const fees = { maxFeePerGas: toHex(maxFee), maxPriorityFeePerGas: toHex(min(BigInt(suggested.standard.maxPriorityFeePerGas), maxFee)) };
    if (maxFee < BigInt(suggested.standard.maxFeePerGas)) {
      console.log(
        `note: GET /v1/gas-prices suggests maxFeePerGas ${suggested.standard.maxFeePerGas} wei ("standard") at base fee ${suggested.baseFee}; ` +
          `the bench sends ${maxFee} (2× the base fee), since the service's policy refuses more than 3×`,
      );
    }
    const ops = { factory, entryPoint, chainId: anvil.chainId, fees };
    const nextBody = { floor: bodies(senders, ops), service: bodies(senders, ops) };
    const open = (server: Server, rate: number, seconds: number) => () =>
      openLoop({ target: server.target, rate, seconds, maxInFlight: 256, nextBody: nextBody[server.mode], check });
    const phases: Measured[] = [];
    /** Phases whose OVERLOADED answers are expected: steps that offered more than the server could take. */
    const overOffered = new Set<Measured>();

    /** (1) and (2): the highest rate `server` keeps up with, searched from `guess`. */
    const unbounded = new Set<Server>();
    async function peakOf(server: Server, guess: number): Promise<Step | undefined> {
      let index = 0;
      const { best, steps } = await findPeakRate({
        guess,
        steps: settings.steps,
        run: async (rate) => {
          const measured = await measure(`${server.mode} step ${++index}`, `${rate}/s`, server, open(server, rate, stepSeconds));
          phases.push(measured);
          const failure = keepsUp(measured.result);
          console.log(`      ${failure === undefined ? "keeps up" : `over: ${failure}`}`);
          if (failure !== undefined) overOffered.add(measured);
          return measured.result;
        },
        accept: keepsUp,
        // Long enough for a whole quiet sample of the service's 1 s load-shedding window.
        rest: () => new Promise((resolve) => setTimeout(resolve, 2_000)),
      });
      if (steps.every((step) => step.failure === undefined)) unbounded.add(server);
      return best;
    }

    // The floor: a closed-loop warm-up (V8 needs several thousand requests to optimise the signing
    // path), which also shows its raw ceiling; then its peak, starting from that ceiling.
    const floorWarmup = await measure("floor warm-up (closed)", `${connections} conns`, floor, () =>
      closedLoop({ target: floor.target, connections, seconds: warmupSeconds, nextBody: nextBody.floor, check }),
    );
    phases.push(floorWarmup);
    const floorPeak = await peakOf(floor, floorWarmup.result.throughput * 0.85);
    // The service: warmed first by a closed loop of one connection, which never queues and leaves
    // the event loop idle during each Redis round trip, so it cannot trip the load shedding. Then
    // one-second open-loop chunks, each at 75% of the rate the last one's CPU cost per request
    // allows: the cost falls by half or more as V8 optimises, and the rate follows it up. The last
    // chunk's cost estimates the ceiling; the search starts just below it.
    const serviceWarmup = await measure("service warm-up (1 conn)", "1 conn", service, () =>
      closedLoop({ target: service.target, connections: 1, seconds: 2, nextBody: nextBody.service, check }),
    );
    phases.push(serviceWarmup);
    if (serviceWarmup.result.ok === 0) throw new Error(`the service answered no request successfully: ${serviceWarmup.result.errorSamples[0]}`);
    let msPerRequest = serviceWarmup.cpu.serverMsPerRequest;
    const rampedWarmup = await measure("service warm-up (ramp)", "ramp", service, async () => {
      const totals = { requests: 0, ok: 0, failed: 0, seconds: 0, errors: {} as Record<string, number>, errorSamples: [] as string[] };
      let last: PhaseResult | undefined;
      for (let second = 0; second < warmupSeconds; second++) {
        const warmupRate = Math.max(1, Math.round((0.75 * 1000) / msPerRequest));
        const cpuBefore = processCpuSeconds(service.pid);
        last = await openLoop({ target: service.target, rate: warmupRate, seconds: 1, maxInFlight: 256, nextBody: nextBody.service, check });
        msPerRequest = ((processCpuSeconds(service.pid) - cpuBefore) * 1000) / Math.max(1, last.ok);
        totals.requests += last.requests;
        totals.ok += last.ok;
        totals.failed += last.failed;
        totals.seconds += last.seconds;
        for (const [label, count] of Object.entries(last.errors)) totals.errors[label] = (totals.errors[label] ?? 0) + count;
        totals.errorSamples.push(...last.errorSamples.slice(0, 5 - totals.errorSamples.length));
      }
      // Counts and time over the whole warm-up; rate and latencies of its last second.
      return { ...last!, ...totals };
    });
    phases.push(rampedWarmup);
    const estimate = 1000 / msPerRequest;
    // The warm-up's cost still falls for thousands of requests, so it underestimates; never start below 60% of the floor.
    const servicePeak = await peakOf(service, Math.min(Math.max(estimate, (floorPeak?.rate ?? 0) * 0.6), floorPeak?.rate ?? estimate) * 0.9);
    // A cross-check that drift in the machine's speed cannot bias: floor and service alternate, each
    // at 60% of its peak, and each pair gives a ratio of CPU cost per request (floor/service), which
    // is what the throughput ratio would be if both scaled to a full core.
    const pairRatios: number[] = [];
    if (floorPeak && servicePeak) {
      for (let pair = 1; pair <= PAIRS; pair++) {
        const floorRate = Math.round(floorPeak.rate * 0.6);
        const serviceRate = Math.round(servicePeak.rate * 0.6);
        const floorPhase = await measure(`floor pair ${pair}`, `${floorRate}/s`, floor, open(floor, floorRate, 2));
        const servicePhase = await measure(`service pair ${pair}`, `${serviceRate}/s`, service, open(service, serviceRate, 2));
        phases.push(floorPhase, servicePhase);
        pairRatios.push(floorPhase.cpu.serverMsPerRequest / servicePhase.cpu.serverMsPerRequest);
      }
    }
    const pairedCostRatio = pairRatios.length > 0 ? [...pairRatios].sort((a, b) => a - b)[Math.floor(pairRatios.length / 2)] : NaN;
    // (3): latency of the service at half its peak, requests started on schedule.
    const rate = Math.max(1, Math.round((servicePeak?.result.throughput ?? 0) / 2));
    phases.push(await measure("service ½-peak warm-up", `${rate}/s`, service, open(service, rate, 2)));
    const serviceFixed = await measure("service ½ peak", `${rate}/s`, service, open(service, rate, fixedSeconds));
    phases.push(serviceFixed);
    await floor.stop();
    await service.stop();

    // Every success must have left exactly one reservation; nothing else may have.
    const keys = createKeys("fg");
    const pipeline = redis.pipeline();
    for (const sender of senders) pipeline.hlen(keys.reservations(sender.address));
    const reservations = ((await pipeline.exec()) ?? []).reduce((sum, [, count]) => sum + Number(count), 0);
    const serviceOk = phases.filter((phase) => phase.name.startsWith("service")).reduce((sum, phase) => sum + phase.result.ok, 0);

    const unexpected = (phase: Measured) => Object.keys(phase.result.errors).filter((label) => !(overOffered.has(phase) && label === OVERLOADED));
    const failures = phases.filter((phase) => unexpected(phase).length > 0);
    const shed = phases.filter((phase) => overOffered.has(phase) && phase.result.errors[OVERLOADED]);
    const problems = [
      ...failures.map((phase) => `${phase.name}: ${JSON.stringify(phase.result.errors)}`),
      ...(floorPeak ? [] : ["the floor kept up with no rate tried"]),
      ...(servicePeak ? [] : ["the service kept up with no rate tried"]),
      ...(reservations === serviceOk ? [] : [`${reservations} reservations for ${serviceOk} successes`]),
    ];
    const valid = problems.length === 0;
    const noisy = phases.filter((phase) => phase.cpu.other > 0.05 || phase.cpu.clientCore > 0.9);
    const phaseOf = (step: Step | undefined) => phases.find((candidate) => candidate.result === step?.result);
    const floorThroughput = floorPeak?.result.throughput ?? NaN;
    const serviceThroughput = servicePeak?.result.throughput ?? NaN;
    const ratio = serviceThroughput / floorThroughput;
    const p99 = serviceFixed.result.latencyMs.p99;
    const p99Due = serviceFixed.result.scheduledLatencyMs!.p99;
    const throughputMet = ratio >= TARGET.throughputRatio;
    const latencyMet = p99 < TARGET.p99Ms;
    const latencyMetDue = p99Due < TARGET.p99Ms;
    // A target is judged only on phases nothing else disturbed.
    const disturbed = [phaseOf(floorPeak), phaseOf(servicePeak), serviceFixed].some((phase) => phase !== undefined && noisy.includes(phase));
    const verdict = (met: boolean) => (!valid ? "not judged (INVALID run)" : disturbed ? "not judged (interference)" : met ? "MET" : "NOT MET");
    const cpuAt = (step: Step | undefined) => {
      const phase = phaseOf(step);
      return phase ? ` (server CPU ${percent(phase.cpu.server)}, ${fixed(phase.cpu.serverMsPerRequest)} ms CPU per request)` : "";
    };


    const lines = [
      "",
      `floor peak (sign only)  ${fixed(floorThroughput, 0)} req/s kept up with${cpuAt(floorPeak)}   (closed-loop ceiling in its warm-up: ${floorWarmup.result.throughput.toFixed(0)} req/s)` +
        (unbounded.has(floor) ? "\n  every rate tried was kept up with: the floor's peak is at least this (more --steps)" : ""),
      `service peak            ${fixed(serviceThroughput, 0)} req/s kept up with${cpuAt(servicePeak)}` +
        (unbounded.has(service) ? "\n  every rate tried was kept up with: the service's peak is at least this (more --steps)" : ""),
      `ratio service/floor     ${fixed(ratio, 3)}    target ≥ ${TARGET.throughputRatio}: ${verdict(throughputMet)}`,
      `  cross-check, CPU cost per request floor/service in ${pairRatios.length} alternating pairs: ${pairRatios.map((value) => fixed(value, 3)).join(", ")} ` +
        `(median ${fixed(pairedCostRatio, 3)})`,
      `service at ${rate} req/s (½ peak, open loop, ${fixedSeconds} s): p50 ${fixed(serviceFixed.result.latencyMs.p50)} ms, p99 ${fixed(p99)} ms, ` +
        `max ${fixed(serviceFixed.result.latencyMs.max)} ms    target p99 < ${TARGET.p99Ms} ms: ${verdict(latencyMet)}`,
      `  counted from the due time instead: p99 ${fixed(p99Due)} ms (${verdict(latencyMetDue)}); the generator started requests late by ` +
        `p99 ${fixed(serviceFixed.result.startLagMs?.p99)} ms, max ${fixed(serviceFixed.result.startLagMs?.max)} ms`,
      `  server during it: GC ${serviceFixed.server.gcCount} pauses (${serviceFixed.server.gcMajor} major), ${fixed(serviceFixed.server.gcMs, 0)} ms in all, ` +
        `longest ${fixed(serviceFixed.server.gcMaxMs)} ms; event-loop delay p99 ${fixed(serviceFixed.server.loopDelayP99Ms)} ms, max ${fixed(serviceFixed.server.loopDelayMaxMs)} ms`,
      `reservations in Redis: ${reservations} for ${serviceOk} successful service answers${reservations === serviceOk ? " (one each)" : "  MISMATCH"}`,
      ...(shed.length > 0 ? [`load shedding (expected above the peak): ${shed.map((phase) => `${phase.name} ${phase.result.errors[OVERLOADED]} OVERLOADED`).join(", ")}`] : []),
      valid ? "run: VALID (no unexpected failure)" : `run: INVALID: ${problems.join("; ")}`,
    ];
    for (const phase of failures) for (const sample of phase.result.errorSamples.slice(0, 2)) lines.push(`  e.g. ${phase.name}: ${sample}`);
    if (noisy.length > 0) {
      lines.push(
        `warning: interference in ${noisy.map((phase) => phase.name).join(", ")}: other work on core ${settings.serverCore} above 5% ` +
          `or core ${settings.clientCore} above 90% busy; those figures understate the server: rerun on a quiet machine`,
      );
    }
    if (settings.profile) lines.push("note: servers ran under --cpu-prof; throughput and latency carry the profiler's overhead");
    console.log(lines.join("\n"));

    const profiles: Record<string, unknown> = {};
    if (settings.profile) {
      for (const mode of ["floor", "service"] as const) {
        const file = path.join(PROFILE_DIR, `${mode}.cpuprofile`);
        if (!existsSync(file)) continue;
        const summary = summariseProfile(file);
        profiles[mode] = { file: path.relative(root, file), ...summary };
        console.log(`\n${formatProfile(`${mode} server profile (${path.relative(root, file)})`, summary).join("\n")}`);
      }
    }

    const report = {
      command,
      startedAt: new Date(started).toISOString(),
      totalSeconds: (Date.now() - started) / 1000,
      machine: { ...facts, busyBefore },
      pinning: { servers: settings.serverCore, loadGenerator: settings.clientCore, redisAndAnvil: settings.clientCore },
      settings: { ...settings, maxLiveReservationsPerSender: MAX_LIVE_RESERVATIONS, rateLimitPerMinute: 1_000_000 },
      senders: { count: senders.length, prepareSeconds: prepSeconds, how: "SIWE via sessions.signIn (owner-signed SimpleAccount), ledger.credit" },
      phases: phases.map((phase) => ({ ...phase, overOffered: overOffered.has(phase) })),
      summary: {
        valid,
        problems,
        floorThroughput,
        floorClosedLoopCeiling: floorWarmup.result.throughput,
        floorPeakRate: floorPeak?.rate,
        floorPeakIsLowerBound: unbounded.has(floor),
        serviceThroughput,
        servicePeakRate: servicePeak?.rate,
        servicePeakIsLowerBound: unbounded.has(service),
        keepsUp: KEEPS_UP,
        ratio,
        pairedCpuCostRatios: pairRatios,
        pairedCpuCostRatio: pairedCostRatio,
        fixedRate: rate,
        fixedRateLatencyMs: serviceFixed.result.latencyMs,
        fixedRateScheduledLatencyMs: serviceFixed.result.scheduledLatencyMs,
        reservations,
        serviceSuccesses: serviceOk,
        interference: noisy.map((phase) => phase.name),
        targets: {
          throughputRatio: TARGET.throughputRatio,
          judged: valid && !disturbed,
          throughputMet: valid && !disturbed && throughputMet,
          p99Ms: TARGET.p99Ms,
          latencyMet: valid && !disturbed && latencyMet,
          latencyMetFromDueTime: valid && !disturbed && latencyMetDue,
        },
      },
      ...(settings.profile ? { profiles } : {}),
    };
    mkdirSync(path.dirname(OUTPUT), { recursive: true });
    writeFileSync(OUTPUT, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwritten: ${path.relative(root, OUTPUT)}   (whole bench ${report.totalSeconds.toFixed(1)} s)`);
    redis.disconnect();
    if (!valid) process.exitCode = 1;
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
  }
}

await main();
