// The server under test for `npm run bench:rpc`, run by scripts/bench/rpc.ts as a child process
// pinned to one core. Settings come from the environment, as for service/main.ts.
//   node scripts/bench/rpcServer.ts service   the real service (createService, start, listen)
//   node scripts/bench/rpcServer.ts floor     the sign-only floor: a bare fastify route that signs
// It listens on 127.0.0.1 (a free port), tells its parent { type: "ready", url } over IPC, answers
// { type: "stats" } with its GC pauses and event-loop delay since the last such question, and
// closes and exits on { type: "stop" } or SIGTERM, so a --cpu-prof profile gets written.
import { PerformanceObserver, constants, monitorEventLoopDelay, performance } from "node:perf_hooks";

import Fastify, { type FastifyInstance } from "fastify";
import type { Address, Hex } from "viem";

import { loadConfig } from "../../service/config.ts";
import { DEFAULT_POLICY } from "../../service/risk/policy.ts";
import { createService } from "../../service/service.ts";
import { createSponsorshipSigner } from "../../service/sponsorship/signer.ts";

/** The JSON-RPC request the floor reads: the fields of an ERC-7677 v0.7 UserOperation it signs. */
type FloorRequest = {
  id?: number | string | null;
  params: [
    {
      sender: Address;
      nonce: Hex;
      factory?: Address;
      factoryData?: Hex;
      callData: Hex;
      callGasLimit: Hex;
      verificationGasLimit: Hex;
      preVerificationGas: Hex;
      maxFeePerGas: Hex;
      maxPriorityFeePerGas: Hex;
    },
    Address,
    Hex,
    unknown,
  ];
};

/**
 * The sign-only floor: the service's signer (same key, same signTypedData over the same typed data)
 * behind a bare fastify route. No schema, session, pricing, ledger or hooks: hex fields become
 * bigints and the op is signed, so its throughput bounds what the service could reach.
 */
function signOnlyApp(): { app: FastifyInstance; close: () => Promise<void> } {
  const config = loadConfig();
  const paymaster = config.PAYMASTER_V07_ADDRESS;
  if (!paymaster) throw new Error("the floor signs for the v0.7 paymaster: set PAYMASTER_V07_ADDRESS");
  const signer = createSponsorshipSigner({ privateKey: config.SIGNER_PRIVATE_KEY, chainId: config.CHAIN_ID });
  const paymasterVerificationGasLimit = BigInt(config.PAYMASTER_VERIFICATION_GAS_LIMIT);
  const app = Fastify({ logger: false });
  app.post("/rpc", async (request) => {
    const { id = null, params } = request.body as FloorRequest;
    const [op] = params;
    const validUntil = Math.floor(Date.now() / 1000) + DEFAULT_POLICY.time.signatureValiditySeconds;
    const paymasterData = await signer.paymasterData({
      userOperation: {
        sender: op.sender,
        nonce: BigInt(op.nonce),
        factory: op.factory,
        factoryData: op.factoryData,
        callData: op.callData,
        callGasLimit: BigInt(op.callGasLimit),
        verificationGasLimit: BigInt(op.verificationGasLimit),
        preVerificationGas: BigInt(op.preVerificationGas),
        maxFeePerGas: BigInt(op.maxFeePerGas),
        maxPriorityFeePerGas: BigInt(op.maxPriorityFeePerGas),
        paymasterVerificationGasLimit,
        paymasterPostOpGasLimit: 0n,
      },
      entryPointVersion: "0.7",
      paymaster,
      validUntil,
      validAfter: 0,
    });
    return {
      jsonrpc: "2.0",
      id,
      result: { paymaster, paymasterData, paymasterVerificationGasLimit: `0x${paymasterVerificationGasLimit.toString(16)}`, paymasterPostOpGasLimit: "0x0" },
    };
  });
  return { app, close: () => app.close() };
}

/** The real service, built and started exactly as service/main.ts does, with logging off. */
async function serviceApp(): Promise<{ app: FastifyInstance; close: () => Promise<void> }> {
  const service = await createService(loadConfig(), { logger: false });
  await service.start();
  return { app: service.app, close: () => service.stop() };
}

const mode = process.argv[2];
if (mode !== "service" && mode !== "floor") {
  console.error("usage: node scripts/bench/rpcServer.ts service|floor (run by scripts/bench/rpc.ts)");
  process.exit(2);
}
if (!process.send) {
  console.error("rpcServer.ts reports to its parent over IPC: run it through `npm run bench:rpc`");
  process.exit(2);
}

const { app, close } = mode === "floor" ? signOnlyApp() : await serviceApp();
const url = await app.listen({ host: "127.0.0.1", port: 0 });

/** What @fastify/under-pressure (registered by the service's app) last measured, or null for the floor. */
function underPressure(): number | null {
  const read = (app as unknown as { memoryUsage?: () => { eventLoopUtilized: number } }).memoryUsage;
  return read ? Math.round(read.call(app).eventLoopUtilized * 1000) / 1000 : null;
}

/** What blocked the event loop: GC pauses and timer delays, since the last stats question. */
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
const gc = { count: 0, major: 0, totalMs: 0, maxMs: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gc.count++;
    gc.totalMs += entry.duration;
    gc.maxMs = Math.max(gc.maxMs, entry.duration);
    if ((entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.major++;
  }
}).observe({ entryTypes: ["gc"] });
let utilization = performance.eventLoopUtilization();

function stats() {
  const ms = (ns: number) => Math.round(ns / 1e3) / 1e3;
  const result = {
    gcCount: gc.count,
    gcMajor: gc.major,
    gcMs: Math.round(gc.totalMs * 10) / 10,
    gcMaxMs: Math.round(gc.maxMs * 100) / 100,
    loopDelayP99Ms: loopDelay.count > 0 ? ms(loopDelay.percentile(99)) : 0,
    loopDelayMaxMs: loopDelay.count > 0 ? ms(loopDelay.max) : 0,
    eventLoopUtilization: Math.round(performance.eventLoopUtilization(utilization).utilization * 1000) / 1000,
    /** Since the process started: what @fastify/under-pressure's default (cumulative) mode compares with its limit. */
    eventLoopUtilizationSinceStart: Math.round(performance.eventLoopUtilization().utilization * 1000) / 1000,
    /** The service only: the utilisation @fastify/under-pressure last sampled, which it sheds load above. */
    underPressureUtilization: underPressure(),
  };
  Object.assign(gc, { count: 0, major: 0, totalMs: 0, maxMs: 0 });
  loopDelay.reset();
  utilization = performance.eventLoopUtilization();
  return result;
}

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await close();
  // process.exit, not a natural end: it flushes a --cpu-prof profile and leaves no timer behind.
  process.exit(0);
}
process.on("message", (message: { type?: string }) => {
  if (message?.type === "stop") void stop();
  if (message?.type === "stats") process.send!({ type: "stats", ...stats() });
});
process.once("SIGTERM", () => void stop());
// The parent died: nothing will stop us otherwise.
process.once("disconnect", () => void stop());

process.send({ type: "ready", url, pid: process.pid });
