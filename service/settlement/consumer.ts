// The stream consumer: settles each UserOperationEvent against its reservation. Many can run (one
// per instance, in one consumer group); an event is acknowledged only once its effects are written,
// and entries a stopped consumer left unacknowledged are claimed by another after an idle time.
// The ledger's settle script makes every effect idempotent, so at-least-once delivery charges once.
import type { Redis } from "ioredis";

import { type Ledger, type SettledOp } from "../ledger/ledger.ts";
import { chargeFen, lockedRateFromJson } from "../pricing/index.ts";
import type { Anomalies } from "./anomalies.ts";
import { type PaymasterEvent, decodeEvent } from "./events.ts";
import { CONSUMER_GROUP, type SettlementKeys } from "./keys.ts";

/** What became of one event. */
export type EventOutcome = "settled" | "duplicate" | "orphaned" | "no_reservation" | "unknown_op" | "unreadable_event" | "unreadable_rate";

/** What one batch did: outcomes by kind and the entries left for a retry. */
export type ConsumeOutcome = { entries: number; outcomes: Partial<Record<EventOutcome, number>>; failed: number };

type StreamEntry = [id: string, fields: string[]];

/** Events settled concurrently between two yields to the event loop. */
const SLICE = 50;

export type EventConsumerParameters = {
  redis: Redis;
  keys: SettlementKeys;
  ledger: Ledger;
  anomalies: Anomalies;
  /** This consumer's name in the group; unique per running worker. */
  consumer: string;
  batch: number;
  claimIdleMs: number;
  onOutcome?: (outcome: EventOutcome, event: PaymasterEvent | null, settled?: SettledOp) => void;
  logger?: { warn(fields: object, message: string): void };
};

/** Creates the consumer group (and the stream) if they do not exist yet. */
export async function ensureConsumerGroup(redis: Redis, keys: SettlementKeys): Promise<void> {
  try {
    await redis.xgroup("CREATE", keys.events, CONSUMER_GROUP, "0", "MKSTREAM");
  } catch (error) {
    if (!(error instanceof Error && error.message.startsWith("BUSYGROUP"))) throw error;
  }
}

/** Whether a rewind after the entry was read orphaned its block. */
function orphaned(epoch: number, blockNumber: bigint, rewinds: Record<string, string>): boolean {
  return Object.entries(rewinds).some(([laterEpoch, block]) => Number(laterEpoch) > epoch && BigInt(block) < blockNumber);
}

const field = (fields: string[], name: string) => {
  const index = fields.indexOf(name);
  return index >= 0 && index % 2 === 0 ? fields[index + 1] : undefined;
};

/** The settlement stream's consumer. */
export function createEventConsumer({ redis, keys, ledger, anomalies, consumer, batch, claimIdleMs, onOutcome, logger }: EventConsumerParameters) {
  let lastClaim = 0;
  let failing = false;

  async function settleEvent(event: PaymasterEvent): Promise<{ outcome: EventOutcome; settled?: SettledOp }> {
    const { sender, userOpHash, entryPointVersion, nonce } = event;
    const facts = {
      entryPointVersion,
      nonce,
      success: event.success,
      actualGasCost: event.actualGasCost,
      actualGasUsed: event.actualGasUsed,
      blockNumber: event.blockNumber,
      blockHash: event.blockHash,
      transactionHash: event.transactionHash,
      logIndex: event.logIndex,
    };
    const details = () => ({ userOpHash, sender, entryPointVersion, nonce: nonce.toString(), actualGasCost: event.actualGasCost.toString(), transactionHash: event.transactionHash, blockNumber: event.blockNumber.toString() });
    /** Settled before: settling again changes nothing, but completes an in-flight give-back a crash may have cut short. */
    const settledBefore = async (): Promise<{ outcome: EventOutcome; settled?: SettledOp } | null> => {
      const settled = await ledger.settledOp(sender, userOpHash);
      if (!settled) return null;
      const again = await ledger.settle({ account: sender, userOpHash, chargeFen: settled.chargedFen, event: facts });
      return again.outcome === "settled" || again.outcome === "duplicate" ? { outcome: "duplicate", settled: again.settled } : null;
    };
    const reservation = await ledger.reservation(sender, entryPointVersion, nonce);
    const op = reservation?.ops.find((candidate) => candidate.userOpHash === userOpHash);
    if (!op) {
      const duplicate = await settledBefore();
      if (duplicate) return duplicate;
      const kind = reservation ? "unknown_op" : "no_reservation";
      await anomalies.record(kind, userOpHash, details());
      return { outcome: kind };
    }
    let charge: bigint;
    try {
      // The rate locked when the op was signed: the charge is on the terms the user was quoted.
      charge = chargeFen({ wei: event.actualGasCost, rate: lockedRateFromJson(op.rate) });
    } catch {
      await anomalies.record("unreadable_rate", userOpHash, details());
      return { outcome: "unreadable_rate" };
    }
    const result = await ledger.settle({ account: sender, userOpHash, chargeFen: charge, event: facts });
    if (result.outcome === "no_reservation" || result.outcome === "unknown_op") {
      // Settled (or released) by someone else between the read and the script.
      const duplicate = await settledBefore();
      if (duplicate) return duplicate;
      await anomalies.record(result.outcome, userOpHash, details());
      return { outcome: result.outcome };
    }
    if (result.outcome === "settled" && event.actualGasCost > op.maxWei) {
      await anomalies.record("cost_above_prefund", userOpHash, { ...details(), maxWei: op.maxWei.toString() });
    }
    return result;
  }

  async function handle([id, fields]: StreamEntry, rewinds: Record<string, string>): Promise<EventOutcome> {
    let event: PaymasterEvent;
    try {
      event = decodeEvent(field(fields, "event") ?? "");
    } catch {
      await anomalies.record("unreadable_event", id, { entry: id });
      onOutcome?.("unreadable_event", null);
      return "unreadable_event";
    }
    if (orphaned(Number(field(fields, "epoch") ?? "0"), event.blockNumber, rewinds)) {
      onOutcome?.("orphaned", event);
      return "orphaned";
    }
    const { outcome, settled } = await settleEvent(event);
    onOutcome?.(outcome, event, settled);
    return outcome;
  }

  async function nextEntries(): Promise<StreamEntry[]> {
    // Entries a stopped consumer took but never acknowledged, once they have been idle long enough.
    if (Date.now() - lastClaim >= claimIdleMs / 2) {
      lastClaim = Date.now();
      const [, claimed] = (await redis.xautoclaim(keys.events, CONSUMER_GROUP, consumer, claimIdleMs, "0-0", "COUNT", batch).catch((error: unknown) => {
        if (error instanceof Error && error.message.startsWith("NOGROUP")) return ["0-0", []];
        throw error;
      })) as [string, StreamEntry[]];
      const live = claimed.filter((entry) => entry && entry[1]);
      if (live.length > 0) return live;
    }
    try {
      const read = (await redis.xreadgroup("GROUP", CONSUMER_GROUP, consumer, "COUNT", batch, "STREAMS", keys.events, ">")) as [string, StreamEntry[]][] | null;
      return read?.[0]?.[1] ?? [];
    } catch (error) {
      // The stream or group was deleted (by hand, or a flushed Redis): recreate it and carry on.
      if (!(error instanceof Error && error.message.startsWith("NOGROUP"))) throw error;
      await ensureConsumerGroup(redis, keys);
      return [];
    }
  }

  return {
    /** Settles one batch of events; entries whose settlement failed stay pending, to be claimed again. */
    async consumeOnce(): Promise<ConsumeOutcome> {
      const entries = await nextEntries();
      if (entries.length === 0) return { entries: 0, outcomes: {}, failed: 0 };
      const rewinds = await redis.hgetall(keys.rewinds);
      // A slice at a time, yielding in between, so requests served by this process never wait long.
      const settled: PromiseSettledResult<EventOutcome>[] = [];
      for (let start = 0; start < entries.length; start += SLICE) {
        settled.push(...(await Promise.allSettled(entries.slice(start, start + SLICE).map((entry) => handle(entry, rewinds)))));
        await new Promise((resolve) => setImmediate(resolve));
      }
      const done = entries.filter((_, index) => settled[index].status === "fulfilled").map(([id]) => id);
      if (done.length > 0) await redis.xack(keys.events, CONSUMER_GROUP, ...done);
      const outcomes: Partial<Record<EventOutcome, number>> = {};
      for (const result of settled) if (result.status === "fulfilled") outcomes[result.value] = (outcomes[result.value] ?? 0) + 1;
      const failures = settled.filter((result) => result.status === "rejected");
      if (failures.length > 0 && !failing) {
        const reason = (failures[0] as PromiseRejectedResult).reason;
        logger?.warn({ failed: failures.length, error: reason instanceof Error ? `${reason.name}: ${reason.message.split("\n")[0]}` : String(reason) }, "settling events failed; they stay pending and are retried");
      }
      failing = failures.length > 0;
      return { entries: entries.length, outcomes, failed: failures.length };
    },
  };
}

export type EventConsumer = ReturnType<typeof createEventConsumer>;
