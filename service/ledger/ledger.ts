import type { Redis } from "ioredis";
import { type Address, type Hex, getAddress } from "viem";

import type { EntryPointVersion } from "../chain/entryPoints.ts";
import { ServiceError } from "../errors.ts";
import type { Keys } from "../redis.ts";
import { ATTACH_OP, RELEASE, RESERVE } from "./scripts.ts";

/** Largest fen amount the ledger accepts: Lua numbers are exact up to 2^53. */
export const MAX_FEN = BigInt(Number.MAX_SAFE_INTEGER);

/** One signed operation held by a reservation; several can share a slot when re-signed. */
export type ReservedOp = {
  userOpHash: Hex;
  chargeFen: bigint;
  maxWei: bigint;
  validUntil: number;
  /** The rate locked when signing, as the pricing module serialises it. */
  rate: unknown;
};

/** Fen held for one (EntryPoint version, nonce) of an account until settlement or expiry. */
export type Reservation = {
  entryPointVersion: EntryPointVersion;
  nonce: bigint;
  paymaster: Address;
  chargeFen: bigint;
  validUntil: number;
  createdAt: number;
  ops: ReservedOp[];
};

export type AccountBalance = { balanceFen: bigint; reservedFen: bigint; availableFen: bigint };

export type ReserveParameters = {
  account: Address;
  entryPointVersion: EntryPointVersion;
  nonce: bigint;
  paymaster: Address;
  chargeFen: bigint;
  validUntil: number;
  now: number;
};

type StoredOp = { userOpHash: Hex; chargeFen: string; maxWei: string; validUntil: number; rate: unknown };
type StoredReservation = Omit<Reservation, "nonce" | "chargeFen" | "ops"> & { nonce: string; chargeFen: string; ops: StoredOp[] | Record<string, never> };

/** The hash field of a reservation: one per (EntryPoint version, nonce), since only one op per nonce can land. */
export function reservationSlot(entryPointVersion: EntryPointVersion, nonce: bigint): string {
  return `${entryPointVersion}:${nonce}`;
}

function checkFen(name: string, fen: bigint) {
  if (fen < 0n || fen > MAX_FEN) throw new RangeError(`${name} must be between 0 and ${MAX_FEN} fen, got ${fen}`);
}

function decodeReservation(json: string): Reservation {
  const stored = JSON.parse(json) as StoredReservation;
  // cjson writes an empty Lua table as {}.
  const ops = Array.isArray(stored.ops) ? stored.ops : [];
  return {
    ...stored,
    nonce: BigInt(stored.nonce),
    chargeFen: BigInt(stored.chargeFen),
    ops: ops.map((op) => ({ ...op, chargeFen: BigInt(op.chargeFen), maxWei: BigInt(op.maxWei) })),
  };
}

/** A Lua script as a function of its keys and arguments, sent by SHA (EVALSHA) once Redis knows it. */
function defineScript(redis: Redis, name: string, lua: string, numberOfKeys: number) {
  redis.defineCommand(name, { lua, numberOfKeys });
  const command = (redis as unknown as Record<string, (...args: string[]) => Promise<unknown>>)[name].bind(redis);
  return (...keysThenArgs: string[]) => command(...keysThenArgs);
}

/** The fiat ledger: balances and reservations in fen, in Redis. */
export function createLedger({ redis, keys, maxLiveReservations }: { redis: Redis; keys: Keys; maxLiveReservations: number }) {
  const reserveScript = defineScript(redis, "fiatgasReserve", RESERVE, 2);
  const attachOpScript = defineScript(redis, "fiatgasAttachOp", ATTACH_OP, 1);
  const releaseScript = defineScript(redis, "fiatgasRelease", RELEASE, 2);

  async function balance(account: Address): Promise<AccountBalance> {
    const [balanceFen, reservedFen] = (await redis.hmget(keys.balance(account), "balance", "reserved")).map((v) => BigInt(v ?? "0"));
    return { balanceFen, reservedFen, availableFen: balanceFen - reservedFen };
  }

  return {
    balance,

    /** Adds `fen` to the balance; returns the new balance. */
    async credit(account: Address, fen: bigint): Promise<bigint> {
      checkFen("credit", fen);
      return BigInt(await redis.hincrby(keys.balance(account), "balance", fen.toString()));
    },

    /**
     * Holds `chargeFen` for the slot if the available balance covers it, atomically.
     * Throws INSUFFICIENT_BALANCE (with needed and available fen) or TOO_MANY_RESERVATIONS.
     */
    async reserve(parameters: ReserveParameters): Promise<{ availableFen: bigint }> {
      const { account, entryPointVersion, nonce, paymaster, chargeFen, validUntil, now } = parameters;
      checkFen("charge", chargeFen);
      const record: StoredReservation = {
        entryPointVersion,
        nonce: nonce.toString(),
        paymaster: getAddress(paymaster),
        chargeFen: chargeFen.toString(),
        validUntil,
        createdAt: now,
        ops: [],
      };
      const result = (await reserveScript(
        keys.balance(account),
        keys.reservations(account),
        reservationSlot(entryPointVersion, nonce),
        chargeFen.toString(),
        JSON.stringify(record),
        String(validUntil),
        String(maxLiveReservations),
      )) as [1, number] | [0, "INSUFFICIENT_BALANCE" | "TOO_MANY_RESERVATIONS", number, number, number];
      if (result[0] === 1) return { availableFen: BigInt(result[1]) };
      const [, reason, available, , live] = result;
      if (reason === "TOO_MANY_RESERVATIONS") {
        throw new ServiceError("TOO_MANY_RESERVATIONS", `account has ${live} unsettled sponsorships, the most allowed; wait for one to land or expire`, {
          data: { limit: maxLiveReservations, current: live },
        });
      }
      throw new ServiceError("INSUFFICIENT_BALANCE", "balance does not cover this operation's worst-case gas cost; top up first", {
        data: { neededFen: chargeFen.toString(), availableFen: String(available), hint: "top up via POST /v1/topups" },
      });
    },

    /** Records a signed op on its reservation. Returns false if the reservation was released meanwhile. */
    async attachOp(account: Address, entryPointVersion: EntryPointVersion, nonce: bigint, op: ReservedOp): Promise<boolean> {
      const stored: StoredOp = { ...op, chargeFen: op.chargeFen.toString(), maxWei: op.maxWei.toString() };
      const attached = await attachOpScript(keys.reservations(account), reservationSlot(entryPointVersion, nonce), JSON.stringify(stored));
      return attached === 1;
    },

    /** Releases a reservation; returns the fen it held (0 if there was none). */
    async release(account: Address, entryPointVersion: EntryPointVersion, nonce: bigint): Promise<bigint> {
      const released = await releaseScript(keys.balance(account), keys.reservations(account), reservationSlot(entryPointVersion, nonce));
      return BigInt(released as number);
    },

    /** The account's live reservations. */
    async reservations(account: Address): Promise<Reservation[]> {
      const all = await redis.hvals(keys.reservations(account));
      return all.map(decodeReservation);
    },
  };
}

export type Ledger = ReturnType<typeof createLedger>;
