// The log reader: one instance at a time (a lease) reads the EntryPoints' UserOperationEvents for
// our paymasters, confirmed blocks only, and appends them to the settlement stream while moving a
// persisted cursor in the same Redis step. Before each read it checks that the cursor's block is
// still on the chain; if not, it rewinds to the newest block it read that still is.
import type { Redis } from "ioredis";
import { type Address, type Hex, type PublicClient, getAddress } from "viem";

import { ENTRYPOINT_ADDRESS, type EntryPointVersion, entryPointVersionAt } from "../chain/entryPoints.ts";
import { defineScript } from "../ledger/ledger.ts";
import type { Anomalies } from "./anomalies.ts";
import { type PaymasterEvent, encodeEvent, paymasterEventFromLog, userOperationEvent } from "./events.ts";
import type { SettlementKeys } from "./keys.ts";
import { APPEND_EVENTS, COMMIT_READ, DROP_LEASE, HOLD_LEASE, INIT_CURSOR, REWIND } from "./scripts.ts";

/** A block the cursor stood on, and the stream id of the last event appended by then. */
export type Position = { block: bigint; hash: Hex; timestamp: number; lastId: string };

/** What one read did. */
export type ReadOutcome =
  | { kind: "not_leader" | "waiting" | "caught_up" | "unstable" }
  | { kind: "read"; from: bigint; to: bigint; events: number; behind: boolean }
  | { kind: "rewound"; from: bigint; to: bigint };

/** Recent positions kept, newest last: how deep a reorg can be traced back exactly. */
const POSITIONS_KEPT = 1_024;
/** Events per Redis call when a range holds many. */
const EVENTS_PER_CALL = 1_000;

export type LogReaderParameters = {
  redis: Redis;
  keys: SettlementKeys;
  publicClient: Pick<PublicClient, "getBlockNumber" | "getBlock" | "getLogs">;
  paymasters: Partial<Record<EntryPointVersion, Address>>;
  anomalies: Anomalies;
  /** This instance's name in the lease. */
  owner: string;
  leaseMs: number;
  confirmations: number;
  blockRange: number;
  /** The first block to read when there is no cursor yet; absent, the newest confirmed block. */
  startBlock?: bigint;
  logger?: { warn(fields: object, message: string): void };
};

/** A position as the positions set stores it. */
export function parsePosition(json: string): Position {
  const raw = JSON.parse(json) as { block: string; hash: Hex; timestamp: string; lastId: string };
  return { block: BigInt(raw.block), hash: raw.hash, timestamp: Number(raw.timestamp), lastId: raw.lastId };
}

/** The leased log reader. */
export function createLogReader({ redis, keys, publicClient, paymasters, anomalies, owner, leaseMs, confirmations, blockRange, startBlock, logger }: LogReaderParameters) {
  const holdScript = defineScript(redis, "fiatgasHoldLease", HOLD_LEASE, 1);
  const dropScript = defineScript(redis, "fiatgasDropLease", DROP_LEASE, 1);
  const initScript = defineScript(redis, "fiatgasInitCursor", INIT_CURSOR, 4);
  const appendScript = defineScript(redis, "fiatgasAppendEvents", APPEND_EVENTS, 3);
  const commitScript = defineScript(redis, "fiatgasCommitRead", COMMIT_READ, 4);
  const rewindScript = defineScript(redis, "fiatgasRewind", REWIND, 4);
  const versions = Object.keys(paymasters) as EntryPointVersion[];
  const ours = new Set(versions.map((version) => `${ENTRYPOINT_ADDRESS[version]}|${paymasters[version]}`));

  const header = async (number: bigint) => {
    const block = await publicClient.getBlock({ blockNumber: number });
    return { number, hash: block.hash as Hex, parentHash: block.parentHash, timestamp: Number(block.timestamp) };
  };

  async function cursor(): Promise<Position | null> {
    const stored = await redis.hgetall(keys.cursor);
    if (!stored.block) return null;
    return { block: BigInt(stored.block), hash: stored.hash as Hex, timestamp: Number(stored.timestamp), lastId: stored.lastId };
  }

  /** Holds or renews the lease; true while this instance is the reader. */
  async function hold(): Promise<boolean> {
    return (await holdScript(keys.lease, owner, String(leaseMs))) === 1;
  }

  async function events(from: bigint, to: bigint): Promise<PaymasterEvent[]> {
    const logs = await publicClient.getLogs({
      address: versions.map((version) => ENTRYPOINT_ADDRESS[version]),
      event: userOperationEvent,
      args: { paymaster: versions.map((version) => paymasters[version]!) },
      fromBlock: from,
      toBlock: to,
      strict: true,
    });
    const found: PaymasterEvent[] = [];
    for (const log of logs) {
      const entryPoint = getAddress(log.address);
      const version = entryPointVersionAt(entryPoint);
      // The topic filter is an OR of both paymasters on both EntryPoints: keep only the right pairs.
      if (!version || !ours.has(`${entryPoint}|${getAddress(log.args.paymaster)}`)) continue;
      found.push(paymasterEventFromLog(log, version));
    }
    return found;
  }

  /** Moves the cursor back to the newest position still on the chain, and says so as an anomaly. */
  async function rewind(current: Position): Promise<ReadOutcome> {
    const positions = (await redis.zrevrange(keys.positions, 0, -1)).map(parsePosition);
    let target: Position | null = null;
    for (const position of positions) {
      if (position.block >= current.block) continue;
      if ((await header(position.block)).hash === position.hash) {
        target = position;
        break;
      }
    }
    if (!target) {
      // Deeper than the positions kept: start again below the oldest one, from whatever is canonical now.
      const oldest = positions.at(-1)?.block ?? current.block;
      const fallback = await header(oldest > 0n ? oldest - 1n : 0n);
      target = { block: fallback.number, hash: fallback.hash, timestamp: fallback.timestamp, lastId: current.lastId };
    }
    const result = (await rewindScript(keys.lease, keys.cursor, keys.positions, keys.rewinds, owner, current.block.toString(), target.block.toString(), target.hash, String(target.timestamp))) as
      | [1, string]
      | [0, string];
    if (result[0] === 0) return { kind: "unstable" };
    await anomalies.record("reorg", `${current.block}:${current.hash}`, {
      orphanedFrom: (target.block + 1n).toString(),
      orphanedTo: current.block.toString(),
      orphanedHash: current.hash,
      rewoundTo: target.block.toString(),
      epoch: result[1],
    });
    logger?.warn({ from: current.block.toString(), to: target.block.toString() }, "reorg below the confirmation depth: rewound the settlement cursor");
    return { kind: "rewound", from: current.block, to: target.block };
  }

  /** Appends `found` and moves the cursor to `to`, fenced by the lease and the cursor it started from. */
  async function commit(from: Position, to: { number: bigint; hash: Hex; timestamp: number }, found: PaymasterEvent[]): Promise<boolean> {
    const encoded = found.map(encodeEvent);
    for (let start = 0; start + EVENTS_PER_CALL < encoded.length; start += EVENTS_PER_CALL) {
      const appended = (await appendScript(keys.lease, keys.cursor, keys.events, owner, from.block.toString(), ...encoded.slice(start, start + EVENTS_PER_CALL))) as [number, string];
      if (appended[0] === 0) return false;
    }
    const last = encoded.slice(Math.floor(Math.max(encoded.length - 1, 0) / EVENTS_PER_CALL) * EVENTS_PER_CALL);
    const committed = (await commitScript(
      keys.lease,
      keys.cursor,
      keys.events,
      keys.positions,
      owner,
      from.block.toString(),
      to.number.toString(),
      to.hash,
      String(to.timestamp),
      String(POSITIONS_KEPT),
      ...last,
    )) as [number, string];
    return committed[0] === 1;
  }

  return {
    hold,

    /** Gives the lease up, so another instance can take over at once. */
    async dropLease(): Promise<void> {
      await dropScript(keys.lease, owner);
    },

    cursor,

    /**
     * One step: checks the cursor's block is still canonical (rewinding if not), then reads the
     * next range of confirmed blocks, at most `blockRange` of them. Does nothing without the lease.
     */
    async readOnce(): Promise<ReadOutcome> {
      if (!(await hold())) return { kind: "not_leader" };
      const head = await publicClient.getBlockNumber({ cacheTime: 0 });
      const confirmed = head - BigInt(confirmations);
      let current = await cursor();
      if (!current) {
        const first = startBlock !== undefined ? startBlock - 1n : confirmed;
        if (first < 0n || first > confirmed) return { kind: "waiting" };
        const start = await header(first);
        await initScript(keys.lease, keys.cursor, keys.positions, keys.events, owner, first.toString(), start.hash, String(start.timestamp));
        current = await cursor();
        if (!current) return { kind: "waiting" };
      }
      // A chain shorter than the cursor (a reorg to a shorter fork, a lagging node) is judged once it passes it again.
      if (head < current.block) return { kind: "waiting" };
      if ((await header(current.block)).hash !== current.hash) return rewind(current);
      if (current.block >= confirmed) return { kind: "caught_up" };

      const from = current.block + 1n;
      const to = confirmed < current.block + BigInt(blockRange) ? confirmed : current.block + BigInt(blockRange);
      // The range is consistent if its last block did not change while its logs were read (hashes
      // chain, so any earlier block changing changes it) and its first block follows the cursor.
      const before = await header(to);
      const found = await events(from, to);
      const first = from === to ? before : await header(from);
      const after = await header(to);
      if (before.hash !== after.hash || first.parentHash !== current.hash) return { kind: "unstable" };
      if (!(await commit(current, after, found))) return { kind: "unstable" };
      return { kind: "read", from, to, events: found.length, behind: to < confirmed };
    },
  };
}

export type LogReader = ReturnType<typeof createLogReader>;
