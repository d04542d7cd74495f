// `npm run bench:settlement`: how fast the settlement consumer works off a backlog, e.g. 100,000
// UserOperationEvents after downtime, with the real ledger scripts on a real redis-server.
//
// What it does: synthesises N live reservations (real ledger.reserve and attachOp, each op with a
// locked rate) across A accounts, appends one UserOperationEvent per reservation to the settlement
// stream, then times C consumers (the service's own consumer code, each on its own connection)
// settling the whole backlog: the charge at the locked rate, the settled record, the release of the
// rest and the in-flight give-back, then the acknowledgement. Meanwhile a probe on another
// connection reads a balance every 5 ms, as the request path would, and the event loop's delay is
// sampled: both show what the backlog costs requests in the same process.
// What it does not measure: reading logs from a node (eth_getLogs is paged by
// SETTLEMENT_LOG_BLOCK_RANGE and depends on the provider), reorg handling, or releases.
// It checks the result: every reservation settled once, the fen charged equal to the sum of the
// charges computed independently, and nothing left reserved or in flight.
//
// Options (npm run bench:settlement -- --name value):
//   --events N      reservations and events (default 100000)
//   --accounts N    accounts they are spread over (default 10000)
//   --consumers N   consumers working the stream at once (default 1)
//   --batch N       events per consumer read, as SETTLEMENT_BATCH (default 500)
//   --durable       run redis-server with appendonly yes and appendfsync always, as in production
import { randomBytes } from "node:crypto";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { parseArgs } from "node:util";

import { Redis } from "ioredis";
import { type Address, type Hex, getAddress } from "viem";

import { type Ledger, createLedger } from "../../service/ledger/ledger.ts";
import { ledgerKeys } from "../../service/ledger/keys.ts";
import { type LockedRate, chargeFen, lockedRateToJson } from "../../service/pricing/index.ts";
import { createKeys } from "../../service/redis.ts";
import { createAnomalies } from "../../service/settlement/anomalies.ts";
import { createEventConsumer, ensureConsumerGroup } from "../../service/settlement/consumer.ts";
import { encodeEvent } from "../../service/settlement/events.ts";
import { settlementKeys } from "../../service/settlement/keys.ts";
import { startRedis } from "../../test/support/redis.ts";

const { values: options } = parseArgs({
  options: {
    events: { type: "string", default: "100000" },
    accounts: { type: "string", default: "10000" },
    consumers: { type: "string", default: "1" },
    batch: { type: "string", default: "500" },
    durable: { type: "boolean", default: false },
  },
});

function whole(name: string, value: string, max: number): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) throw new Error(`--${name} must be a whole number from 1 to ${max}, got ${value}`);
  return Number(value);
}
const settings = {
  events: whole("events", options.events, 10_000_000),
  accounts: whole("accounts", options.accounts, 1_000_000),
  consumers: whole("consumers", options.consumers, 64),
  batch: whole("batch", options.batch, 10_000),
  durable: options.durable,
};
if (settings.accounts > settings.events) settings.accounts = settings.events;

const PREFIX = "bench";
const MAX_WEI = 2_070_000_000_000_000n;
/** ¥25,000.00/ETH, 10% markup, 1 fen fee: the terms of the service tests. */
const RATE: LockedRate = {
  answer: 2_500_000_000_000n,
  decimals: 8,
  currency: "CNY",
  fiatDecimals: 2,
  markupBps: 1_000,
  fixedFeeFen: 1n,
  source: "static",
  updatedAt: 1_900_000_000,
  lockedAt: 1_900_000_000,
};
const hex = (bytes: number) => `0x${randomBytes(bytes).toString("hex")}` as Hex;

/** Runs `work` over `items` with `width` at a time. */
async function inParallel<T>(items: T[], width: number, work: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await work(items[next++]);
  }));
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;

async function main() {
  const [major] = process.versions.node.split(".").map(Number);
  if (major < 22) throw new Error(`Node ${process.version}: run through \`npm run bench:settlement\`, which uses the project's Node 22`);
  const redisServer = await startRedis({ durable: settings.durable });
  const connections: Redis[] = [];
  try {
    const keys = createKeys(PREFIX);
    const setupRedis = redisServer.client();
    const ledger: Ledger = createLedger({ redis: setupRedis, keys, maxLiveReservations: 1_000_000 });
    const stream = settlementKeys(PREFIX);
    await ensureConsumerGroup(setupRedis, stream);

    // Setup, not measured: accounts, reservations with their signed ops, and one event each.
    const setupStarted = performance.now();
    const accounts: Address[] = Array.from({ length: settings.accounts }, () => getAddress(hex(20)));
    await inParallel(accounts, 64, (account) => ledger.credit(account, 10n ** 12n));
    const now = Math.floor(Date.now() / 1000);
    const rate = lockedRateToJson(RATE);
    let expectedFen = 0n;
    const indexes = Array.from({ length: settings.events }, (_, index) => index);
    const events: string[] = new Array(settings.events);
    await inParallel(indexes, 64, async (index) => {
      const account = accounts[index % settings.accounts];
      const nonce = BigInt(Math.floor(index / settings.accounts));
      const userOpHash = hex(32);
      const chargeFenMax = chargeFen({ wei: MAX_WEI, rate: RATE });
      await ledger.reserve({ account, entryPointVersion: "0.7", nonce, paymaster: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0", chargeFen: chargeFenMax, maxWei: MAX_WEI, validUntil: now + 3_600, now });
      await ledger.attachOp(account, "0.7", nonce, { userOpHash, chargeFen: chargeFenMax, maxWei: MAX_WEI, validUntil: now + 3_600, rate });
      const actualGasCost = MAX_WEI / 4n + BigInt(index % 100_000) * 10_000_000n;
      expectedFen += chargeFen({ wei: actualGasCost, rate: RATE });
      events[index] = encodeEvent({
        entryPointVersion: "0.7",
        userOpHash,
        sender: account,
        paymaster: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
        nonce,
        success: index % 10 !== 0,
        actualGasCost,
        actualGasUsed: 150_000n,
        blockNumber: BigInt(1_000 + Math.floor(index / 50)),
        blockHash: hex(32),
        transactionHash: hex(32),
        logIndex: index % 50,
      });
    });
    for (let start = 0; start < events.length; start += 1_000) {
      const pipeline = setupRedis.pipeline();
      for (const event of events.slice(start, start + 1_000)) pipeline.xadd(stream.events, "*", "event", event, "epoch", "0");
      await pipeline.exec();
    }
    const setupSeconds = (performance.now() - setupStarted) / 1000;
    const totalsBefore = await ledger.totals();
    console.log(`setup: ${settings.events} reservations over ${settings.accounts} accounts and ${settings.events} events in the stream, in ${setupSeconds.toFixed(1)} s (not measured)`);

    // The request path's view while the backlog is worked off: a balance read every 5 ms, and the event loop's delay.
    const probeRedis = redisServer.client();
    const probeLatencies: number[] = [];
    let probing = true;
    const probe = (async () => {
      while (probing) {
        const started = performance.now();
        await probeRedis.hmget(keys.balance(accounts[0]), "balance", "reserved");
        probeLatencies.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();

    const consumers = Array.from({ length: settings.consumers }, (_, index) => {
      // As the service's settlement connection: auto-pipelined.
      const redis = new Redis({ host: "127.0.0.1", port: redisServer.port, enableAutoPipelining: true });
      connections.push(redis);
      const consumerLedger = createLedger({ redis, keys, maxLiveReservations: 1_000_000 });
      return createEventConsumer({ redis, keys: stream, ledger: consumerLedger, anomalies: createAnomalies({ redis, keys: stream }), consumer: `bench-${index}`, batch: settings.batch, claimIdleMs: 60_000 });
    });
    const outcomes: Record<string, number> = {};
    const started = performance.now();
    await Promise.all(
      consumers.map(async (consumer) => {
        for (;;) {
          const result = await consumer.consumeOnce();
          if (result.entries === 0) return;
          for (const [outcome, count] of Object.entries(result.outcomes)) outcomes[outcome] = (outcomes[outcome] ?? 0) + (count ?? 0);
          if (result.failed > 0) throw new Error(`${result.failed} events failed to settle`);
          // As the service's loop does: let other work in between batches.
          await new Promise((resolve) => setImmediate(resolve));
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    probing = false;
    await probe;
    loopDelay.disable();

    // Check the result before reporting it.
    const totals = await ledger.totals();
    const more = ledgerKeys(keys);
    let chargedFen = 0n;
    let settled = 0;
    let reserved = 0n;
    for (let start = 0; start < accounts.length; start += 1_000) {
      const pipeline = setupRedis.pipeline();
      for (const account of accounts.slice(start, start + 1_000)) pipeline.hmget(keys.balance(account), "balance", "reserved").hlen(more.settled(account));
      const replies = (await pipeline.exec()) ?? [];
      for (let i = 0; i < replies.length; i += 2) {
        const [balance, held] = replies[i][1] as [string, string];
        chargedFen += 10n ** 12n - BigInt(balance);
        reserved += BigInt(held ?? "0");
        settled += Number(replies[i + 1][1]);
      }
    }
    const problems = [
      ...(outcomes.settled === settings.events ? [] : [`${outcomes.settled ?? 0} settled of ${settings.events} (${JSON.stringify(outcomes)})`]),
      ...(settled === settings.events ? [] : [`${settled} settled records for ${settings.events} events`]),
      ...(chargedFen === expectedFen ? [] : [`charged ${chargedFen} fen, expected ${expectedFen}`]),
      ...(reserved === 0n && totals.reservedFen === 0n && totals.inFlightWei["0.7"] === 0n && totals.liveReservations === 0 ? [] : [`left reserved: ${reserved} fen, totals ${JSON.stringify(totals, (_, v) => (typeof v === "bigint" ? v.toString() : v))}`]),
    ];
    const sortedProbe = probeLatencies.sort((a, b) => a - b);
    console.log(
      [
        "",
        `settled ${settings.events} events in ${seconds.toFixed(2)} s: ${Math.round(settings.events / seconds).toLocaleString("en-US")} events/s`,
        `  consumers ${settings.consumers}, batch ${settings.batch}, redis ${settings.durable ? "durable (appendfsync always)" : "in memory (no AOF)"}; before: ${totalsBefore.liveReservations} live reservations, ${totalsBefore.reservedFen} fen reserved`,
        `  charged ${chargedFen} fen in total, equal to the independently computed sum: ${chargedFen === expectedFen ? "yes" : "NO"}`,
        `  request-path probe (HMGET on another connection, every 5 ms): p50 ${percentile(sortedProbe, 50).toFixed(2)} ms, p99 ${percentile(sortedProbe, 99).toFixed(2)} ms, max ${sortedProbe.at(-1)?.toFixed(2)} ms over ${sortedProbe.length} reads`,
        `  event-loop delay in this process (sampled every 1 ms): p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms, max ${(loopDelay.max / 1e6).toFixed(1)} ms`,
        `reproduce: npm run bench:settlement -- --events ${settings.events} --accounts ${settings.accounts} --consumers ${settings.consumers} --batch ${settings.batch}${settings.durable ? " --durable" : ""}`,
      ].join("\n"),
    );
    if (problems.length > 0) {
      console.error(`INVALID: ${problems.join("; ")}`);
      process.exitCode = 1;
    }
  } finally {
    for (const connection of connections) connection.disconnect();
    await redisServer.stop();
  }
}

await main();
