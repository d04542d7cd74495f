import { randomBytes } from "node:crypto";

import type { Redis } from "ioredis";
import { type Address, type Hex, getAddress } from "viem";

import type { EntryPointVersion } from "../chain/entryPoints.ts";
import { ServiceError } from "../errors.ts";
import type { Keys } from "../redis.ts";
import { ledgerKeys } from "./keys.ts";
import { ATTACH_OP, CLAIM_GLOBAL, DROP_STALE, FORGET_RELEASED, GIVE_BACK, RELEASE, RESERVE, RETURN_IN_FLIGHT, SETTLE } from "./scripts.ts";

/** Largest fen amount the ledger accepts: Lua numbers are exact up to 2^53. */
export const MAX_FEN = BigInt(Number.MAX_SAFE_INTEGER);

/** Largest wei amount the ledger accepts: the scripts' two-part wei arithmetic is exact far beyond it. */
export const MAX_WEI = 10n ** 27n;

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
  /** Unique per reservation (a slot reserved again after a release gets a new one). */
  id: string;
  entryPointVersion: EntryPointVersion;
  nonce: bigint;
  paymaster: Address;
  chargeFen: bigint;
  /** Wei in flight: the largest maxWei among its signed ops, counted against the paymaster's deposit. */
  maxWei: bigint;
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
  /** The op's worst-case cost in wei (the EntryPoint's prefund): what it can take from the paymaster's deposit. 0 if absent. */
  maxWei?: bigint;
  validUntil: number;
  now: number;
  limits?: AccountLimits;
  /** The global daily spending limit in fen; null or absent means none. */
  globalMaxSpendFenPerDay?: bigint | null;
  /** Most wei all live reservations for this EntryPoint may hold: the paymaster's deposit minus the floor; null or absent means none. */
  inFlightCapWei?: bigint | null;
};

/** What the EntryPoint's UserOperationEvent said about a landed op, and where it was read. */
export type SettlementEvent = {
  entryPointVersion: EntryPointVersion;
  nonce: bigint;
  success: boolean;
  actualGasCost: bigint;
  actualGasUsed: bigint;
  blockNumber: bigint;
  blockHash: Hex;
  transactionHash: Hex;
  logIndex: number;
};

/** A settled op, as the account's settled record keeps it. */
export type SettledOp = SettlementEvent & {
  userOpHash: Hex;
  chargedFen: bigint;
  /** What the reservation held until then; the difference went back to the available balance. */
  heldFen: bigint;
  reservationId: string;
  inFlightWei: bigint;
  validUntil: number;
  createdAt: number;
  settledAt: number;
};

export type SettleResult =
  | { outcome: "settled"; settled: SettledOp }
  | { outcome: "duplicate"; settled: SettledOp }
  | { outcome: "no_reservation" }
  | { outcome: "unknown_op" };

/** Why a reservation was released without settling. */
export type ReleaseReason = "expired" | "nonce" | "manual";

export type ReleaseResult =
  | { outcome: "released"; heldFen: bigint; maxWei: bigint }
  | { outcome: "not_due"; validUntil: number }
  | { outcome: "none" };

/** A live reservation as the worker's indexes name it, with the index's score. */
export type IndexEntry = { member: string; account: Address; entryPointVersion: EntryPointVersion; nonce: bigint; score: number };

/** Fen and wei held by all live reservations; `liveReservations` counts the expiry index, which also holds refused requests' entries until they come due. */
export type ReservedTotals = { reservedFen: bigint; liveReservations: number; inFlightWei: Record<EntryPointVersion, bigint> };

type StoredOp = { userOpHash: Hex; chargeFen: string; maxWei: string; validUntil: number; rate: unknown };
type StoredReservation = Omit<Reservation, "id" | "nonce" | "chargeFen" | "maxWei" | "ops"> & {
  id?: string;
  nonce: string;
  chargeFen: string;
  maxWei?: string;
  ops: StoredOp[] | Record<string, never>;
};
type StoredSettled = Record<string, unknown> & { nonce: string; actualGasCost: string; actualGasUsed: string; blockNumber: string; chargedFen: string; heldFen: string; inFlightWei: string };
type ReleaseNote = { id?: string; maxWei: string; chargeFen: string; validUntil: number; createdAt: number; reason: ReleaseReason; at: number };

/** The hash field of a reservation: one per (EntryPoint version, nonce), since only one op per nonce can land. */
export function reservationSlot(entryPointVersion: EntryPointVersion, nonce: bigint): string {
  return `${entryPointVersion}:${nonce}`;
}

/** A reservation's member in the worker's `{global}` indexes. */
export function indexMember(account: Address, entryPointVersion: EntryPointVersion, nonce: bigint): string {
  return `${getAddress(account)}|${reservationSlot(entryPointVersion, nonce)}`;
}

function parseIndexMember(member: string, score: number): IndexEntry {
  const [account, slot] = member.split("|");
  const [entryPointVersion, nonce] = slot.split(":");
  return { member, account: account as Address, entryPointVersion: entryPointVersion as EntryPointVersion, nonce: BigInt(nonce), score };
}

function checkFen(name: string, fen: bigint) {
  if (fen < 0n || fen > MAX_FEN) throw new RangeError(`${name} must be between 0 and ${MAX_FEN} fen, got ${fen}`);
}

function checkWei(name: string, wei: bigint) {
  if (wei < 0n || wei > MAX_WEI) throw new RangeError(`${name} must be between 0 and ${MAX_WEI} wei, got ${wei}`);
}

/** Reservations made before they carried an id are named by what identified them then. */
const legacyId = (account: Address, slot: string, createdAt: number) => `legacy:${getAddress(account)}|${slot}|${createdAt}`;

function decodeReservation(json: string, account: Address): Reservation {
  const stored = JSON.parse(json) as StoredReservation;
  // cjson writes an empty Lua table as {}.
  const ops = Array.isArray(stored.ops) ? stored.ops : [];
  return {
    ...stored,
    id: stored.id ?? legacyId(account, reservationSlot(stored.entryPointVersion, BigInt(stored.nonce)), stored.createdAt),
    nonce: BigInt(stored.nonce),
    chargeFen: BigInt(stored.chargeFen),
    maxWei: BigInt(stored.maxWei ?? "0"),
    ops: ops.map((op) => ({ ...op, chargeFen: BigInt(op.chargeFen), maxWei: BigInt(op.maxWei) })),
  };
}

function decodeSettled(json: string, account: Address): SettledOp {
  const stored = JSON.parse(json) as StoredSettled;
  const slot = String(stored.slot);
  return {
    entryPointVersion: stored.entryPointVersion as EntryPointVersion,
    nonce: BigInt(stored.nonce),
    success: stored.success === true,
    actualGasCost: BigInt(stored.actualGasCost),
    actualGasUsed: BigInt(stored.actualGasUsed),
    blockNumber: BigInt(stored.blockNumber),
    blockHash: stored.blockHash as Hex,
    transactionHash: stored.transactionHash as Hex,
    logIndex: Number(stored.logIndex),
    userOpHash: stored.userOpHash as Hex,
    chargedFen: BigInt(stored.chargedFen),
    heldFen: BigInt(stored.heldFen),
    reservationId: typeof stored.reservationId === "string" ? stored.reservationId : legacyId(account, slot, Number(stored.createdAt)),
    inFlightWei: BigInt(stored.inFlightWei),
    validUntil: Number(stored.validUntil),
    createdAt: Number(stored.createdAt),
    settledAt: Number(stored.settledAt),
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
export function defineScript(redis: Redis, name: string, lua: string, numberOfKeys: number) {
  redis.defineCommand(name, { lua, numberOfKeys });
  const command = (redis as unknown as Record<string, (...args: string[]) => Promise<unknown>>)[name].bind(redis);
  return (...keysThenArgs: string[]) => command(...keysThenArgs);
}

export type CreateLedgerParameters = {
  redis: Redis;
  keys: Keys;
  maxLiveReservations: number;
  /** Seconds after a reservation is made before the settlement worker first checks its nonce on chain. */
  nonceCheckSeconds?: number;
};

/** The fiat ledger: balances and reservations in fen, and the wei they hold in flight, in Redis. */
export function createLedger({ redis, keys, maxLiveReservations, nonceCheckSeconds = 30 }: CreateLedgerParameters) {
  const more = ledgerKeys(keys);
  const reserveScript = defineScript(redis, "fiatgasReserve", RESERVE, 7);
  const claimGlobalScript = defineScript(redis, "fiatgasClaimGlobal", CLAIM_GLOBAL, 5);
  const giveBackScript = defineScript(redis, "fiatgasGiveBack", GIVE_BACK, 3);
  const attachOpScript = defineScript(redis, "fiatgasAttachOp", ATTACH_OP, 1);
  const settleScript = defineScript(redis, "fiatgasSettle", SETTLE, 3);
  const releaseScript = defineScript(redis, "fiatgasRelease", RELEASE, 3);
  const returnScript = defineScript(redis, "fiatgasReturnInFlight", RETURN_IN_FLIGHT, 5);
  const forgetReleasedScript = defineScript(redis, "fiatgasForgetReleased", FORGET_RELEASED, 1);
  const dropStaleScript = defineScript(redis, "fiatgasDropStale", DROP_STALE, 1);

  async function balance(account: Address): Promise<AccountBalance> {
    const [balanceFen, reservedFen] = (await redis.hmget(keys.balance(account), "balance", "reserved")).map((v) => BigInt(v ?? "0"));
    return { balanceFen, reservedFen, availableFen: balanceFen - reservedFen };
  }

  /** Gives a closed reservation's wei and fen back to the global totals, once per reservation id. */
  async function returnInFlight(account: Address, version: EntryPointVersion, nonce: bigint, closed: { id: string; wei: bigint; fen: bigint; validUntil: number }) {
    await returnScript(
      more.inFlightWei(version),
      more.reservedFen,
      more.returned,
      more.live,
      more.nonceDue,
      closed.id,
      closed.wei.toString(),
      closed.fen.toString(),
      indexMember(account, version, nonce),
      String(closed.validUntil),
      String(Math.floor(Date.now() / 1000)),
    );
  }

  async function releaseIfDue({ account, entryPointVersion, nonce, before = -1, reason, now = Math.floor(Date.now() / 1000) }: {
    account: Address;
    entryPointVersion: EntryPointVersion;
    nonce: bigint;
    /** Release only if validUntil is before this (unix seconds); absent, release unconditionally. */
    before?: number;
    reason: ReleaseReason;
    now?: number;
  }): Promise<ReleaseResult> {
    const slot = reservationSlot(entryPointVersion, nonce);
    const result = (await releaseScript(keys.balance(account), keys.reservations(account), more.released(account), slot, String(before), reason, String(now))) as
      | [0]
      | [1 | 2, string]
      | [3, number];
    if (result[0] === 0) return { outcome: "none" };
    if (result[0] === 3) return { outcome: "not_due", validUntil: result[1] };
    const note = JSON.parse(result[1]) as ReleaseNote;
    const id = note.id ?? legacyId(account, slot, note.createdAt);
    const maxWei = BigInt(note.maxWei);
    const heldFen = BigInt(note.chargeFen);
    await returnInFlight(account, entryPointVersion, nonce, { id, wei: maxWei, fen: heldFen, validUntil: note.validUntil });
    await forgetReleasedScript(more.released(account), slot, id);
    // A note found from an earlier, interrupted release: its fen were returned to the account then.
    return result[0] === 1 ? { outcome: "released", heldFen, maxWei } : { outcome: "none" };
  }

  async function scan(index: string, maxScore: string, limit: number): Promise<IndexEntry[]> {
    const flat = await redis.zrangebyscore(index, "-inf", maxScore, "WITHSCORES", "LIMIT", 0, limit);
    const entries: IndexEntry[] = [];
    for (let i = 0; i < flat.length; i += 2) entries.push(parseIndexMember(flat[i], Number(flat[i + 1])));
    return entries;
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
     * Holds `chargeFen` and `maxWei` for the slot if the global limits, the account's limits and its
     * available balance allow it, atomically for each. Throws LIMIT_GLOBAL_SPEND_PER_DAY or
     * LIMIT_DEPOSIT_IN_FLIGHT, the account limit's code (ACCOUNT_FROZEN, TOO_MANY_RESERVATIONS,
     * LIMIT_OPS_PER_MINUTE, LIMIT_OPS_PER_DAY, LIMIT_ACCOUNT_SPEND_PER_DAY, TOPUP_COOLING) or
     * INSUFFICIENT_BALANCE, with the limit, its value, the current value and when it lifts.
     */
    async reserve(parameters: ReserveParameters): Promise<{ availableFen: bigint }> {
      const { account, entryPointVersion, nonce, paymaster, chargeFen, maxWei = 0n, validUntil, now, limits = NO_ACCOUNT_LIMITS, globalMaxSpendFenPerDay = null, inFlightCapWei = null } = parameters;
      checkFen("charge", chargeFen);
      checkWei("maxWei", maxWei);
      if (inFlightCapWei !== null) checkWei("in-flight cap", inFlightCapWei < 0n ? 0n : inFlightCapWei);
      const day = Math.floor(now / 86_400);
      const dayEnd = (day + 1) * 86_400;
      const spendKey = keys.globalSpendInDay(day);
      const inFlightKey = more.inFlightWei(entryPointVersion);
      const claim = (await claimGlobalScript(
        spendKey,
        inFlightKey,
        more.reservedFen,
        more.live,
        more.nonceDue,
        chargeFen.toString(),
        globalMaxSpendFenPerDay === null ? "-1" : globalMaxSpendFenPerDay.toString(),
        String(dayEnd),
        maxWei.toString(),
        // A deposit below the floor leaves no room at all.
        inFlightCapWei === null ? "-1" : (inFlightCapWei < 0n ? 0n : inFlightCapWei).toString(),
        indexMember(account, entryPointVersion, nonce),
        String(validUntil),
        String(now + nonceCheckSeconds),
      )) as [1] | [0, "LIMIT_GLOBAL_SPEND_PER_DAY" | "LIMIT_DEPOSIT_IN_FLIGHT", string, string];
      if (claim[0] === 0) {
        const [, code, limitValue, currentValue] = claim;
        if (code === "LIMIT_GLOBAL_SPEND_PER_DAY") {
          throw new ServiceError("LIMIT_GLOBAL_SPEND_PER_DAY", "the application's daily sponsorship budget is spent; retry tomorrow (UTC)", {
            data: { limit: "global.maxSpendFenPerDay", limitValue, currentValue, retryAfter: dayEnd },
          });
        }
        throw new ServiceError("LIMIT_DEPOSIT_IN_FLIGHT", "the paymaster's deposit cannot cover more gas in flight right now; retry once pending operations have settled", {
          data: { limit: "global.depositFloorWei", limitValue, currentValue, neededWei: maxWei.toString() },
        });
      }
      /** Gives back the part of the global claim the account step did not use. */
      const giveBack = async (fen: bigint, wei: bigint) => {
        if (fen > 0n || wei > 0n) await giveBackScript(spendKey, inFlightKey, more.reservedFen, fen.toString(), wei.toString(), globalMaxSpendFenPerDay === null ? "0" : "1");
      };
      const record: StoredReservation = {
        id: randomBytes(12).toString("hex"),
        entryPointVersion,
        nonce: nonce.toString(),
        paymaster: getAddress(paymaster),
        chargeFen: chargeFen.toString(),
        maxWei: maxWei.toString(),
        validUntil,
        createdAt: now,
        ops: [],
      };
      const minute = Math.floor(now / 60);
      const orNone = (limit: number | bigint | null) => (limit === null ? "-1" : limit.toString());
      // If this throws (a timeout), whether it applied is unknown: the claim stays, an over-count.
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
        String(dayEnd),
        maxWei.toString(),
      )) as [1, number, number, string] | [0, RefusalReason, number, number, number];
      if (result[0] === 1) {
        await giveBack(chargeFen - BigInt(result[2]), maxWei - BigInt(result[3]));
        return { availableFen: BigInt(result[1]) };
      }
      await giveBack(chargeFen, maxWei);
      const [, reason, limitValue, currentValue, retryAfter] = result;
      throw refusal(reason, { limitValue, currentValue, retryAfter, chargeFen, maxLiveReservations });
    },

    /** Records a signed op on its reservation. Returns false if the reservation was released meanwhile. */
    async attachOp(account: Address, entryPointVersion: EntryPointVersion, nonce: bigint, op: ReservedOp): Promise<boolean> {
      const stored: StoredOp = { ...op, chargeFen: op.chargeFen.toString(), maxWei: op.maxWei.toString() };
      const attached = await attachOpScript(keys.reservations(account), reservationSlot(entryPointVersion, nonce), JSON.stringify(stored));
      return attached === 1;
    },

    /** Releases a reservation whatever its expiry; returns the fen it held (0 if there was none). */
    async release(account: Address, entryPointVersion: EntryPointVersion, nonce: bigint): Promise<bigint> {
      const result = await releaseIfDue({ account, entryPointVersion, nonce, reason: "manual" });
      return result.outcome === "released" ? result.heldFen : 0n;
    },

    /**
     * Releases a reservation that can no longer land: with `before`, only if its validUntil is
     * before that time. Gives its wei in flight back exactly once, also when retried after a crash.
     */
    releaseIfDue,

    /** The account's live reservations. */
    async reservations(account: Address): Promise<Reservation[]> {
      const all = await redis.hvals(keys.reservations(account));
      return all.map((json) => decodeReservation(json, account));
    },

    /** The live reservation of one slot, or null. */
    async reservation(account: Address, entryPointVersion: EntryPointVersion, nonce: bigint): Promise<Reservation | null> {
      const json = await redis.hget(keys.reservations(account), reservationSlot(entryPointVersion, nonce));
      return json === null ? null : decodeReservation(json, account);
    },

    /** The account's settled ops. */
    async settled(account: Address): Promise<SettledOp[]> {
      const all = await redis.hvals(more.settled(account));
      return all.map((json) => decodeSettled(json, account));
    },

    /** One settled op, or null. */
    async settledOp(account: Address, userOpHash: Hex): Promise<SettledOp | null> {
      const json = await redis.hget(more.settled(account), userOpHash);
      return json === null ? null : decodeSettled(json, account);
    },

    /**
     * Charges `chargeFen` for a landed op and releases the rest of its reservation, once per
     * userOpHash: a duplicate changes nothing and says "duplicate". Either way, the reservation's
     * wei in flight is given back (once), so a retry after a crash in between completes it.
     */
    async settle({ account, userOpHash, chargeFen, event, now = Math.floor(Date.now() / 1000) }: {
      account: Address;
      userOpHash: Hex;
      chargeFen: bigint;
      event: SettlementEvent;
      now?: number;
    }): Promise<SettleResult> {
      checkFen("charge", chargeFen);
      const facts = {
        ...event,
        nonce: event.nonce.toString(),
        actualGasCost: event.actualGasCost.toString(),
        actualGasUsed: event.actualGasUsed.toString(),
        blockNumber: event.blockNumber.toString(),
        settledAt: now,
      };
      const slot = reservationSlot(event.entryPointVersion, event.nonce);
      const result = (await settleScript(keys.balance(account), keys.reservations(account), more.settled(account), slot, userOpHash, chargeFen.toString(), JSON.stringify(facts))) as
        | [1 | 2, string]
        | [0, "NO_RESERVATION" | "UNKNOWN_OP"];
      if (result[0] === 0) return { outcome: result[1] === "NO_RESERVATION" ? "no_reservation" : "unknown_op" };
      const settled = decodeSettled(result[1], account);
      await returnInFlight(account, event.entryPointVersion, event.nonce, { id: settled.reservationId, wei: settled.inFlightWei, fen: settled.heldFen, validUntil: settled.validUntil });
      return result[0] === 1 ? { outcome: "settled", settled } : { outcome: "duplicate", settled };
    },

    /** Live reservations whose validUntil is before `before` (unix seconds), oldest first. */
    dueForExpiry: (before: number, limit: number) => scan(more.live, `(${before}`, limit),

    /** Live reservations whose nonce is due to be checked on chain at `now`. */
    dueForNonceCheck: (now: number, limit: number) => scan(more.nonceDue, String(now), limit),

    /** Checks the entry's nonce again at `at` (unix seconds), if it is still indexed. */
    async deferNonceCheck(entry: IndexEntry, at: number): Promise<void> {
      await redis.zadd(more.nonceDue, "XX", at, entry.member);
    },

    /** Moves the entry's expiry in the live index up to `validUntil` (never down). */
    async reindex(entry: IndexEntry, validUntil: number): Promise<void> {
      await redis.zadd(more.live, "GT", validUntil, entry.member);
    },

    /** Drops an index entry whose reservation is gone, unless a new reservation of the slot re-indexed it. */
    async dropStale(index: "live" | "nonceDue", entry: IndexEntry): Promise<void> {
      await dropStaleScript(more[index], entry.member, String(entry.score));
    },

    /** Wei in flight for one EntryPoint: the sum of the live reservations' maxWei (claims included). */
    async inFlightWei(entryPointVersion: EntryPointVersion): Promise<bigint> {
      return BigInt((await redis.get(more.inFlightWei(entryPointVersion))) ?? "0");
    },

    /** Fen and wei held by all live reservations, and how many there are. */
    async totals(): Promise<ReservedTotals> {
      const [fen, live, v07, v08] = (await redis.multi().get(more.reservedFen).zcard(more.live).get(more.inFlightWei("0.7")).get(more.inFlightWei("0.8")).exec()) as [null, string | number | null][];
      return {
        reservedFen: BigInt(fen[1] ?? "0"),
        liveReservations: Number(live[1]),
        inFlightWei: { "0.7": BigInt(v07[1] ?? "0"), "0.8": BigInt(v08[1] ?? "0") },
      };
    },
  };
}

export type Ledger = ReturnType<typeof createLedger>;
