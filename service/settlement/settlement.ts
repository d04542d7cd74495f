// The settlement worker, run inside the service: one leased log reader per deployment, which also
// releases what can no longer land, and a stream consumer in every instance. start() runs both
// loops; the steps are exposed too, so tests and tools can drive them one at a time.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

import type { Redis } from "ioredis";
import type { Address, PublicClient } from "viem";

import type { EntryPointVersion } from "../chain/entryPoints.ts";
import type { IndexEntry, Ledger, ReleaseReason, SettledOp } from "../ledger/ledger.ts";
import { type Anomalies, createAnomalies } from "./anomalies.ts";
import type { SettlementConfig } from "./config.ts";
import { type ConsumeOutcome, type EventOutcome, createEventConsumer, ensureConsumerGroup } from "./consumer.ts";
import type { PaymasterEvent } from "./events.ts";
import { type SettlementKeys, settlementKeys } from "./keys.ts";
import { type ReadOutcome, createLogReader } from "./reader.ts";
import { type ReleaseOutcome, createReleaser, groupProgress } from "./releaser.ts";

export type SettlementLogger = { info(fields: object, message: string): void; warn(fields: object, message: string): void };

/** Where settlement stands, for metrics and status. */
export type SettlementProgress = {
  /** The last block read, if any. */
  cursorBlock: bigint | null;
  /** The newest block whose events are all settled, and its timestamp. */
  settledBlock: bigint | null;
  settledTimestamp: number | null;
  /** Events read but not yet settled: delivered and unacknowledged, plus not yet delivered. */
  backlog: number;
};

export type CreateSettlementParameters = {
  /** A connection of the worker's own: its batches never queue ahead of the request path's commands. */
  redis: Redis;
  /** The ledger, over the same connection. */
  ledger: Ledger;
  publicClient: Pick<PublicClient, "getBlockNumber" | "getBlock" | "getLogs" | "readContract">;
  prefix: string;
  paymasters: Partial<Record<EntryPointVersion, Address>>;
  config: Pick<
    SettlementConfig,
    "SETTLEMENT_CONFIRMATIONS" | "SETTLEMENT_POLL_MS" | "SETTLEMENT_BATCH" | "SETTLEMENT_LOG_BLOCK_RANGE" | "SETTLEMENT_START_BLOCK" | "SETTLEMENT_NONCE_CHECK_SECONDS" | "SETTLEMENT_CLAIM_IDLE_MS"
  >;
  logger?: SettlementLogger;
  /** Called for every event handled and every reservation released (metrics). */
  onEvent?: (outcome: EventOutcome, event: PaymasterEvent | null, settled?: SettledOp) => void;
  onRelease?: (reason: ReleaseReason, entry: IndexEntry) => void;
  /** This worker's name, as lease owner and stream consumer; unique per process by default. */
  name?: string;
};

/** The settlement worker. */
export function createSettlement({ redis, ledger, publicClient, prefix, paymasters, config, logger, onEvent, onRelease, name }: CreateSettlementParameters) {
  const keys: SettlementKeys = settlementKeys(prefix);
  const worker = name ?? `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
  const pollMs = config.SETTLEMENT_POLL_MS;
  // Long enough to survive a slow RPC call or two; short enough that a crashed reader is replaced soon.
  const leaseMs = Math.max(10_000, 5 * pollMs);
  const anomalies: Anomalies = createAnomalies({ redis, keys, logger });
  const reader = createLogReader({
    redis,
    keys,
    publicClient,
    paymasters,
    anomalies,
    owner: worker,
    leaseMs,
    confirmations: config.SETTLEMENT_CONFIRMATIONS,
    blockRange: config.SETTLEMENT_LOG_BLOCK_RANGE,
    startBlock: config.SETTLEMENT_START_BLOCK,
    logger,
  });
  const consumer = createEventConsumer({ redis, keys, ledger, anomalies, consumer: worker, batch: config.SETTLEMENT_BATCH, claimIdleMs: config.SETTLEMENT_CLAIM_IDLE_MS, onOutcome: onEvent, logger });
  const releaser = createReleaser({ redis, keys, ledger, publicClient, batch: config.SETTLEMENT_BATCH, nonceCheckSeconds: config.SETTLEMENT_NONCE_CHECK_SECONDS, onRelease });

  let running = false;
  const loops: Promise<void>[] = [];
  const wakers = new Set<() => void>();
  const failing = new Set<string>();

  /** Sleeps `ms`, or less if stop() is called. */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      wakers.add(wake);
    });

  /** Runs one step, logging when it starts failing and when it recovers, not on every poll. */
  async function attempt<T>(what: string, step: () => Promise<T>): Promise<T | undefined> {
    try {
      const result = await step();
      if (failing.delete(what)) logger?.info({ what }, "settlement step recovered");
      return result;
    } catch (error) {
      if (!failing.has(what)) logger?.warn({ what, error: error instanceof Error ? `${error.name}: ${error.message.split("\n")[0]}` : String(error) }, "settlement step failed; retrying");
      failing.add(what);
      return undefined;
    }
  }

  async function leaderLoop(): Promise<void> {
    while (running) {
      // Catch up range by range while behind, yielding to requests between ranges.
      let read: ReadOutcome | undefined;
      for (let ranges = 0; running && ranges < 100; ranges++) {
        read = await attempt("read logs", () => reader.readOnce());
        const more = read?.kind === "rewound" || (read?.kind === "read" && read.behind);
        if (!more) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      // Only the reader releases: the scans need doing once, not once per instance.
      if (running && read && read.kind !== "not_leader") await attempt("release", () => releaser.releaseOnce());
      if (running) await pause(pollMs);
    }
  }

  async function consumerLoop(): Promise<void> {
    while (running) {
      const outcome = await attempt("settle events", () => consumer.consumeOnce());
      // A full batch means more is waiting: go on at once, after letting requests in between.
      if (outcome && outcome.entries >= config.SETTLEMENT_BATCH) await new Promise((resolve) => setImmediate(resolve));
      else if (running) await pause(pollMs);
    }
  }

  return {
    keys,
    anomalies,
    /** This worker's name. */
    name: worker,

    /** Creates the consumer group if needed, then runs the reader (when it holds the lease) and the consumer. */
    async start(): Promise<void> {
      if (running) return;
      await ensureConsumerGroup(redis, keys);
      running = true;
      loops.push(leaderLoop(), consumerLoop());
    },

    /** Stops both loops after their current step and gives the lease up. */
    async stop(): Promise<void> {
      if (!running) return;
      running = false;
      for (const wake of [...wakers]) wake();
      await Promise.all(loops.splice(0));
      await reader.dropLease().catch(() => {});
    },

    /** Creates the consumer group if needed (the steps below need it). */
    prepare: () => ensureConsumerGroup(redis, keys),
    /** One read of the next confirmed range (needs the lease; takes it if free). */
    readOnce: (): Promise<ReadOutcome> => reader.readOnce(),
    /** One batch of events settled. */
    consumeOnce: (): Promise<ConsumeOutcome> => consumer.consumeOnce(),
    /** One release step. */
    releaseOnce: (): Promise<ReleaseOutcome> => releaser.releaseOnce(),
    /** Gives the reader's lease up. */
    dropLease: () => reader.dropLease(),

    /** Where settlement stands. */
    async progress(): Promise<SettlementProgress> {
      const [cursor, through, group] = await Promise.all([reader.cursor(), redis.hgetall(keys.through), groupProgress(redis, keys)]);
      const undelivered = group?.undelivered ?? (group ? await redis.xlen(keys.events) - group.pending : 0);
      return {
        cursorBlock: cursor?.block ?? null,
        settledBlock: through.block ? BigInt(through.block) : null,
        settledTimestamp: through.timestamp ? Number(through.timestamp) : null,
        backlog: (group?.pending ?? 0) + Math.max(0, undelivered),
      };
    },
  };
}

export type Settlement = ReturnType<typeof createSettlement>;
