import { randomBytes } from "node:crypto";

import type { Redis } from "ioredis";
import { type Address, type Hex, getAddress } from "viem";

import type { EntryPointVersion } from "../chain/entryPoints.ts";
import { ServiceError } from "../errors.ts";
import type { Keys } from "../redis.ts";
import { ATTACH_OP, CLAIM_GLOBAL_SPEND, RELEASE, RESERVE } from "./scripts.ts";

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

/** The account limits the reservation enforces atomically; null means no limit. */
export type AccountLimits = {
  maxOperationsPerMinute: number | null;
  maxOperationsPerDay: number | null;
  maxSpendFenPerDay: bigint | null;
  /** Seconds after a credit before it can be spent; 0 turns the cooling period off. */
  topUpCoolingSeconds: number;
};

/** No account limits: only the balance and the per-sender cap apply. */
export const NO_ACCOUNT_LIMITS: AccountLimits = { maxOperationsPerMinute: null, maxOperationsPerDay: null, maxSpendFenPerDay: null, topUpCoolingSeconds: 0 };

/** Credits older than this are dropped from the cooling index; the policy's cooling period is shorter. */
export const MAX_COOLING_SECONDS = 30 * 86_400;

export type ReserveParameters = {
  account: Address;
  entryPointVersion: EntryPointVersion;
  nonce: bigint;
  paymaster: Address;
  chargeFen: bigint;
  validUntil: number;
  now: number;
  limits?: AccountLimits;
  /** The global daily spending limit in fen; null or absent means none. */
  globalMaxSpendFenPerDay?: bigint | null;
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

type RefusalReason =
  | "ACCOUNT_FROZEN"
  | "TOO_MANY_RESERVATIONS"
  | "LIMIT_OPS_PER_MINUTE"
  | "LIMIT_OPS_PER_DAY"
  | "LIMIT_ACCOUNT_SPEND_PER_DAY"
  | "INSUFFICIENT_BALANCE"
  | "TOPUP_COOLING";

/** The ServiceError for a refused reservation: the limit's name and value, the current value, when it lifts. */
function refusal(
  reason: RefusalReason,
  { limitValue, currentValue, retryAfter, chargeFen, maxLiveReservations }: { limitValue: number; currentValue: number; retryAfter: number; chargeFen: bigint; maxLiveReservations: number },
): ServiceError {
  const facts = (limit: string) => ({ limit, limitValue: String(limitValue), currentValue: String(currentValue), ...(retryAfter ? { retryAfter } : {}) });
  switch (reason) {
    case "ACCOUNT_FROZEN":
      return new ServiceError("ACCOUNT_FROZEN", "this account is frozen by the operator; contact support", { data: { limit: "account.frozen" } });
    case "TOO_MANY_RESERVATIONS":
      return new ServiceError("TOO_MANY_RESERVATIONS", `account has ${currentValue} unsettled sponsorships, the most allowed; wait for one to land or expire`, {
        data: { ...facts("MAX_LIVE_RESERVATIONS_PER_SENDER"), limit: "MAX_LIVE_RESERVATIONS_PER_SENDER", limitValue: String(maxLiveReservations) },
      });
    case "LIMIT_OPS_PER_MINUTE":
      return new ServiceError("LIMIT_OPS_PER_MINUTE", `at most ${limitValue} sponsored operations a minute; retry after the time in retryAfter`, { data: facts("perAccount.maxOperationsPerMinute") });
    case "LIMIT_OPS_PER_DAY":
      return new ServiceError("LIMIT_OPS_PER_DAY", `at most ${limitValue} sponsored operations a day (UTC); retry after the time in retryAfter`, { data: facts("perAccount.maxOperationsPerDay") });
    case "LIMIT_ACCOUNT_SPEND_PER_DAY":
      return new ServiceError("LIMIT_ACCOUNT_SPEND_PER_DAY", "this operation would take the account past its daily spending limit; retry tomorrow (UTC) or lower its gas limits", {
        data: { ...facts("perAccount.maxSpendFenPerDay"), neededFen: chargeFen.toString() },
      });
    case "TOPUP_COOLING":
      return new ServiceError("TOPUP_COOLING", "recent top-ups cannot be spent yet; retry after the time in retryAfter", {
        data: { ...facts("perAccount.topUpCoolingSeconds"), neededFen: chargeFen.toString(), spendableFen: String(currentValue) },
      });
    case "INSUFFICIENT_BALANCE":
      return new ServiceError("INSUFFICIENT_BALANCE", "balance does not cover this operation's worst-case gas cost; top up first", {
        data: { neededFen: chargeFen.toString(), availableFen: String(currentValue), hint: "top up via POST /v1/topups" },
      });
  }
}

/** A Lua script as a function of its keys and arguments, sent by SHA (EVALSHA) once Redis knows it. */
function defineScript(redis: Redis, name: string, lua: string, numberOfKeys: number) {
  redis.defineCommand(name, { lua, numberOfKeys });
  const command = (redis as unknown as Record<string, (...args: string[]) => Promise<unknown>>)[name].bind(redis);
  return (...keysThenArgs: string[]) => command(...keysThenArgs);
}

/** The fiat ledger: balances and reservations in fen, in Redis. */
export function createLedger({ redis, keys, maxLiveReservations }: { redis: Redis; keys: Keys; maxLiveReservations: number }) {
  const reserveScript = defineScript(redis, "fiatgasReserve", RESERVE, 7);
  const claimGlobalScript = defineScript(redis, "fiatgasClaimGlobalSpend", CLAIM_GLOBAL_SPEND, 1);
  const attachOpScript = defineScript(redis, "fiatgasAttachOp", ATTACH_OP, 1);
  const releaseScript = defineScript(redis, "fiatgasRelease", RELEASE, 2);

  async function balance(account: Address): Promise<AccountBalance> {
    const [balanceFen, reservedFen] = (await redis.hmget(keys.balance(account), "balance", "reserved")).map((v) => BigInt(v ?? "0"));
    return { balanceFen, reservedFen, availableFen: balanceFen - reservedFen };
  }

  return {
    balance,

    /**
     * Adds `fen` to the balance and indexes the credit by time for the top-up cooling period;
     * returns the new balance. `reference` names the credit (a top-up's order id), unique per credit.
     */
    async credit(
      account: Address,
      fen: bigint,
      { reference = randomBytes(8).toString("hex"), at = Math.floor(Date.now() / 1000) }: { reference?: string; at?: number } = {},
    ): Promise<bigint> {
      checkFen("credit", fen);
      if (!/^[\w-]{1,64}$/.test(reference)) throw new RangeError(`credit reference must be 1-64 word characters, got ${reference}`);
      const [[, balanceAfter]] = (await redis
        .multi()
        .hincrby(keys.balance(account), "balance", fen.toString())
        .zadd(keys.credits(account), at, `${reference}:${fen}`)
        .zremrangebyscore(keys.credits(account), "-inf", `(${at - MAX_COOLING_SECONDS}`)
        .exec()) as [[null, number], ...unknown[]];
      return BigInt(balanceAfter);
    },

    /**
     * Holds `chargeFen` for the slot if the account's limits and available balance allow it,
     * atomically. Throws the limit's code (ACCOUNT_FROZEN, TOO_MANY_RESERVATIONS,
     * LIMIT_OPS_PER_MINUTE, LIMIT_OPS_PER_DAY, LIMIT_ACCOUNT_SPEND_PER_DAY, TOPUP_COOLING) or
     * INSUFFICIENT_BALANCE, with the limit, its value, the current value and when it lifts.
     */
    async reserve(parameters: ReserveParameters): Promise<{ availableFen: bigint }> {
      const { account, entryPointVersion, nonce, paymaster, chargeFen, validUntil, now, limits = NO_ACCOUNT_LIMITS, globalMaxSpendFenPerDay = null } = parameters;
      checkFen("charge", chargeFen);
      const globalKey = keys.globalSpendInDay(Math.floor(now / 86_400));
      if (globalMaxSpendFenPerDay !== null) {
        const dayEnd = (Math.floor(now / 86_400) + 1) * 86_400;
        const claim = (await claimGlobalScript(globalKey, chargeFen.toString(), globalMaxSpendFenPerDay.toString(), String(dayEnd))) as [1] | [0, number, number];
        if (claim[0] === 0) {
          throw new ServiceError("LIMIT_GLOBAL_SPEND_PER_DAY", "the application's daily sponsorship budget is spent; retry tomorrow (UTC)", {
            data: { limit: "global.maxSpendFenPerDay", limitValue: String(claim[1]), currentValue: String(claim[2]), retryAfter: dayEnd },
          });
        }
      }
      /** Gives back the part of the global claim the account step did not use. */
      const giveBack = async (fen: bigint) => {
        if (globalMaxSpendFenPerDay !== null && fen > 0n) await redis.decrby(globalKey, fen.toString());
      };
      const record: StoredReservation = {
        entryPointVersion,
        nonce: nonce.toString(),
        paymaster: getAddress(paymaster),
        chargeFen: chargeFen.toString(),
        validUntil,
        createdAt: now,
        ops: [],
      };
      const minute = Math.floor(now / 60);
      const day = Math.floor(now / 86_400);
      const orNone = (limit: number | bigint | null) => (limit === null ? "-1" : limit.toString());
      const result = (await reserveScript(
        keys.balance(account),
        keys.reservations(account),
        keys.frozen(account),
        keys.opsInMinute(account, minute),
        keys.opsInDay(account, day),
        keys.spendInDay(account, day),
        keys.credits(account),
        reservationSlot(entryPointVersion, nonce),
        chargeFen.toString(),
        JSON.stringify(record),
        String(validUntil),
        String(maxLiveReservations),
        String(now),
        orNone(limits.maxOperationsPerMinute),
        orNone(limits.maxOperationsPerDay),
        orNone(limits.maxSpendFenPerDay),
        String(limits.topUpCoolingSeconds),
        String((minute + 1) * 60),
        String((day + 1) * 86_400),
      )) as [1, number, number] | [0, RefusalReason, number, number, number];
      if (result[0] === 1) {
        await giveBack(chargeFen - BigInt(result[2]));
        return { availableFen: BigInt(result[1]) };
      }
      await giveBack(chargeFen);
      const [, reason, limitValue, currentValue, retryAfter] = result;
      throw refusal(reason, { limitValue, currentValue, retryAfter, chargeFen, maxLiveReservations });
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
