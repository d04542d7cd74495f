// Anomalies: events and situations settlement cannot resolve on its own, kept for reconciliation.
// Each is recorded once per id (the same event read twice is one anomaly) and counted by kind.
import type { Redis } from "ioredis";

import { defineScript } from "../ledger/ledger.ts";
import type { SettlementKeys } from "./keys.ts";
import { RECORD_ANOMALY } from "./scripts.ts";

/** What went wrong. */
export type AnomalyKind =
  /** An event for our paymaster with no reservation for its (sender, EntryPoint, nonce): the paymaster paid, nobody was charged. */
  | "no_reservation"
  /** The slot is reserved, but none of its signed ops has the event's userOpHash. */
  | "unknown_op"
  /** A stream entry that does not decode. */
  | "unreadable_event"
  /** The op's stored rate does not decode, so its charge cannot be computed. */
  | "unreadable_rate"
  /** The op cost more than the prefund it was reserved for (the EntryPoint should make this impossible). */
  | "cost_above_prefund"
  /** Blocks already read were replaced: anything settled from them may need undoing. */
  | "reorg";

export type Anomaly = { kind: AnomalyKind; id: string; at: number; details: Record<string, unknown> };

export type AnomalyLogger = { warn(fields: object, message: string): void };

/** The anomaly log in Redis. */
export function createAnomalies({ redis, keys, logger, now = () => Math.floor(Date.now() / 1000) }: { redis: Redis; keys: SettlementKeys; logger?: AnomalyLogger; now?: () => number }) {
  const recordScript = defineScript(redis, "fiatgasRecordAnomaly", RECORD_ANOMALY, 2);
  return {
    /** Records an anomaly unless one with this kind and id exists; returns whether it is new. */
    async record(kind: AnomalyKind, id: string, details: Record<string, unknown>): Promise<boolean> {
      const anomaly: Anomaly = { kind, id, at: now(), details };
      const fresh = (await recordScript(keys.anomalies, keys.anomalyCounts, `${kind}:${id}`, kind, JSON.stringify(anomaly))) === 1;
      if (fresh) logger?.warn({ anomaly: kind, id, ...details }, "settlement anomaly recorded for reconciliation");
      return fresh;
    },
    /** Every recorded anomaly. */
    async list(): Promise<Anomaly[]> {
      return (await redis.hvals(keys.anomalies)).map((json) => JSON.parse(json) as Anomaly);
    },
    /** How many of each kind were recorded. */
    async counts(): Promise<Partial<Record<AnomalyKind, number>>> {
      const counts = await redis.hgetall(keys.anomalyCounts);
      return Object.fromEntries(Object.entries(counts).map(([kind, count]) => [kind, Number(count)]));
    },
  };
}

export type Anomalies = ReturnType<typeof createAnomalies>;
