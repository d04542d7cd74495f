// Releases reservations that can no longer land, judged only by blocks whose events are all
// settled: a reservation whose op landed is settled first and never released by mistake.
// - Expired: its validUntil is before the timestamp of that block (later blocks are no earlier).
// - Nonce moved: the account's nonce for its key, read at that block, is past the reserved one.
import type { Redis } from "ioredis";
import { type PublicClient, parseAbi } from "viem";

import { ENTRYPOINT_ADDRESS } from "../chain/entryPoints.ts";
import type { IndexEntry, Ledger, ReleaseReason } from "../ledger/ledger.ts";
import { compareStreamIds } from "./events.ts";
import { CONSUMER_GROUP, type SettlementKeys } from "./keys.ts";
import { type Position, parsePosition } from "./reader.ts";

const getNonceAbi = parseAbi(["function getNonce(address sender, uint192 key) view returns (uint256 nonce)"]);

/** How many scans of `batch` reservations one release step may run. */
const MAX_ROUNDS = 20;
/** Concurrent nonce reads. */
const NONCE_READS = 16;

/** Where the consumer group stands in the stream. */
export type GroupProgress = { lastDelivered: string; pending: number; oldestPending: string | null; undelivered: number | null };

/** What one release step did. */
export type ReleaseOutcome = { through: Position | null; expired: number; nonceMoved: number };

/** Waits for every task; then throws the first failure, if any: one bad entry must not hold the others back. */
async function settleEach<T>(tasks: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(tasks);
  const failed = results.find((result) => result.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((result) => (result as PromiseFulfilledResult<T>).value);
}

/** The group's progress, or null before the group exists. */
export async function groupProgress(redis: Redis, keys: SettlementKeys): Promise<GroupProgress | null> {
  let groups: unknown[][];
  try {
    groups = (await redis.xinfo("GROUPS", keys.events)) as unknown[][];
  } catch (error) {
    if (error instanceof Error && /no such key/i.test(error.message)) return null;
    throw error;
  }
  for (const flat of groups) {
    const info: Record<string, unknown> = {};
    for (let i = 0; i < flat.length; i += 2) info[String(flat[i])] = flat[i + 1];
    if (info.name !== CONSUMER_GROUP) continue;
    const pending = Number(info.pending);
    const oldestPending = pending > 0 ? ((await redis.xpending(keys.events, CONSUMER_GROUP)) as [number, string, string, unknown])[1] : null;
    return { lastDelivered: String(info["last-delivered-id"]), pending, oldestPending, undelivered: info.lag === null || info.lag === undefined ? null : Number(info.lag) };
  }
  return null;
}

/** The newest position whose events are all settled (delivered and acknowledged), or null. */
export async function settledThrough(redis: Redis, keys: SettlementKeys, progress: GroupProgress | null): Promise<Position | null> {
  if (!progress) return null;
  for (const json of await redis.zrevrange(keys.positions, 0, -1)) {
    const position = parsePosition(json);
    const delivered = compareStreamIds(position.lastId, progress.lastDelivered) <= 0;
    const acknowledged = progress.oldestPending === null || compareStreamIds(position.lastId, progress.oldestPending) < 0;
    if (delivered && acknowledged) return position;
  }
  return null;
}

export type ReleaserParameters = {
  redis: Redis;
  keys: SettlementKeys;
  ledger: Ledger;
  publicClient: Pick<PublicClient, "readContract">;
  batch: number;
  nonceCheckSeconds: number;
  onRelease?: (reason: ReleaseReason, entry: IndexEntry) => void;
  /** Unix seconds. */
  now?: () => number;
};

/** The releaser; run by the lease holder after each read. */
export function createReleaser({ redis, keys, ledger, publicClient, batch, nonceCheckSeconds, onRelease, now = () => Math.floor(Date.now() / 1000) }: ReleaserParameters) {
  async function releaseExpired(through: Position): Promise<number> {
    let released = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const due = await ledger.dueForExpiry(through.timestamp, batch);
      const results = await settleEach(
        due.map(async (entry) => {
          const result = await ledger.releaseIfDue({ account: entry.account, entryPointVersion: entry.entryPointVersion, nonce: entry.nonce, before: through.timestamp, reason: "expired" });
          if (result.outcome === "none") await ledger.dropStale("live", entry);
          // Signed again with a later expiry: the index just lags behind the reservation.
          if (result.outcome === "not_due") await ledger.reindex(entry, result.validUntil);
          if (result.outcome === "released") onRelease?.("expired", entry);
          return result.outcome === "released";
        }),
      );
      released += results.filter(Boolean).length;
      if (due.length < batch) break;
    }
    return released;
  }

  async function releaseNonceMoved(through: Position): Promise<number> {
    const due = await ledger.dueForNonceCheck(now(), batch);
    let released = 0;
    for (let start = 0; start < due.length; start += NONCE_READS) {
      await settleEach(
        due.slice(start, start + NONCE_READS).map(async (entry) => {
          const reservation = await ledger.reservation(entry.account, entry.entryPointVersion, entry.nonce);
          if (!reservation) return ledger.dropStale("nonceDue", entry);
          const onChain = await publicClient.readContract({
            address: ENTRYPOINT_ADDRESS[entry.entryPointVersion],
            abi: getNonceAbi,
            functionName: "getNonce",
            args: [entry.account, entry.nonce >> 64n],
            blockNumber: through.block,
          });
          // Same key in the high bits, so this compares the sequence numbers.
          if (onChain <= entry.nonce) return ledger.deferNonceCheck(entry, now() + nonceCheckSeconds);
          const result = await ledger.releaseIfDue({ account: entry.account, entryPointVersion: entry.entryPointVersion, nonce: entry.nonce, reason: "nonce" });
          if (result.outcome === "released") {
            released++;
            onRelease?.("nonce", entry);
          }
        }),
      );
    }
    return released;
  }

  return {
    /**
     * One step: finds the newest block whose events are all settled, records it, releases what
     * expired by its timestamp and what its nonces show cannot land, and trims settled events.
     */
    async releaseOnce(): Promise<ReleaseOutcome> {
      const progress = await groupProgress(redis, keys);
      const through = await settledThrough(redis, keys, progress);
      if (!through || !progress) return { through: null, expired: 0, nonceMoved: 0 };
      await redis.hset(keys.through, { block: through.block.toString(), timestamp: String(through.timestamp) });
      const expired = await releaseExpired(through);
      const nonceMoved = await releaseNonceMoved(through);
      // Acknowledged entries are not needed again: keep the stream to what is still to be done.
      const [ms, seq] = progress.lastDelivered.split("-");
      const minId = progress.oldestPending ?? `${ms}-${BigInt(seq) + 1n}`;
      await redis.xtrim(keys.events, "MINID", minId);
      return { through, expired, nonceMoved };
    },
  };
}

export type Releaser = ReturnType<typeof createReleaser>;
