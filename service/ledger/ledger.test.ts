import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";

import type { Redis } from "ioredis";
import { type Address, type Hex, getAddress, keccak256, toHex } from "viem";

import { type RedisServer, startRedis } from "../../test/support/redis.ts";
import { ServiceError } from "../errors.ts";
import { createKeys } from "../redis.ts";
import { type AccountLimits, MAX_FEN, NO_ACCOUNT_LIMITS, type Ledger, type ReserveParameters, createLedger } from "./ledger.ts";

const PAYMASTER: Address = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0";
let server: RedisServer;
let redis: Redis;
let ledger: Ledger;
let accountIndex = 0;
const keys = createKeys("fgtest");

/** A fresh account for each test. */
function newAccount(): Address {
  return getAddress(keccak256(toHex(`account ${accountIndex++}`)).slice(0, 42));
}

function reserve(account: Address, nonce: bigint, chargeFen: bigint, validUntil = 1_000, target: Ledger = ledger, extra: Partial<ReserveParameters> = {}) {
  return target.reserve({ account, entryPointVersion: "0.7", nonce, paymaster: PAYMASTER, chargeFen, validUntil, now: 1, ...extra });
}

async function rejection(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ServiceError, `expected a ServiceError, got ${error}`);
    return error;
  }
  assert.fail("expected a rejection");
}

before(async () => {
  server = await startRedis();
  redis = server.client();
});
after(() => server.stop());
beforeEach(() => {
  ledger = createLedger({ redis, keys, maxLiveReservations: 4 });
});

describe("ledger", () => {
  it("credits and reports balance, reserved and available in fen", async () => {
    const account = newAccount();
    assert.equal(await ledger.credit(account, 1_000n), 1_000n);
    await reserve(account, 0n, 300n);
    assert.deepEqual(await ledger.balance(account), { balanceFen: 1_000n, reservedFen: 300n, availableFen: 700n });
  });

  it("refuses a reservation the available balance does not cover, with needed and available", async () => {
    const account = newAccount();
    await ledger.credit(account, 500n);
    await reserve(account, 0n, 400n);
    const error = await rejection(reserve(account, 1n, 101n));
    assert.equal(error.code, "INSUFFICIENT_BALANCE");
    assert.deepEqual(error.data, { neededFen: "101", availableFen: "100", hint: "top up via POST /v1/topups" });
    assert.deepEqual(await ledger.balance(account), { balanceFen: 500n, reservedFen: 400n, availableFen: 100n });
  });

  it("keeps one reservation per nonce, holding the larger amount and the later expiry when signed again", async () => {
    const account = newAccount();
    await ledger.credit(account, 1_000n);
    await reserve(account, 7n, 300n, 100);
    await reserve(account, 7n, 200n, 150);
    let [held] = await ledger.reservations(account);
    assert.equal(held.chargeFen, 300n, "a cheaper re-signature cannot shrink the hold: the first may still land");
    assert.equal(held.validUntil, 150);
    await reserve(account, 7n, 600n, 120);
    [held] = await ledger.reservations(account);
    assert.equal(held.chargeFen, 600n);
    assert.equal(held.validUntil, 150);
    assert.equal((await ledger.reservations(account)).length, 1);
    assert.deepEqual(await ledger.balance(account), { balanceFen: 1_000n, reservedFen: 600n, availableFen: 400n });
  });

  it("records every signed op of a slot with its own hash and rate", async () => {
    const account = newAccount();
    await ledger.credit(account, 1_000n);
    const ops = [1, 2].map((i) => ({ userOpHash: keccak256(toHex(i)) as Hex, chargeFen: BigInt(i * 100), maxWei: BigInt(i) * 10n ** 15n, validUntil: 100 + i, rate: { answer: "250000000000", decimals: 8 } }));
    for (const op of ops) {
      await reserve(account, 3n, op.chargeFen, op.validUntil);
      assert.equal(await ledger.attachOp(account, "0.7", 3n, op), true);
    }
    const [held] = await ledger.reservations(account);
    assert.deepEqual(held.ops, ops);
    assert.equal(held.nonce, 3n);
  });

  it("does not attach an op to a released reservation", async () => {
    const account = newAccount();
    await ledger.credit(account, 100n);
    await reserve(account, 0n, 100n);
    assert.equal(await ledger.release(account, "0.7", 0n), 100n);
    assert.equal(await ledger.attachOp(account, "0.7", 0n, { userOpHash: "0x00", chargeFen: 1n, maxWei: 1n, validUntil: 1, rate: null }), false);
    assert.deepEqual(await ledger.balance(account), { balanceFen: 100n, reservedFen: 0n, availableFen: 100n });
    assert.equal(await ledger.release(account, "0.7", 0n), 0n, "releasing twice releases nothing");
  });

  it("caps live reservations per account across nonce keys, but lets a slot be signed again", async () => {
    const account = newAccount();
    await ledger.credit(account, 1_000n);
    for (const key of [0n, 1n, 2n, 3n]) await reserve(account, (key << 64n) | 5n, 10n);
    const error = await rejection(reserve(account, 4n << 64n, 10n));
    assert.equal(error.code, "TOO_MANY_RESERVATIONS");
    assert.deepEqual(error.data, { limit: "MAX_LIVE_RESERVATIONS_PER_SENDER", limitValue: "4", currentValue: "4" });
    await reserve(account, (2n << 64n) | 5n, 20n);
    assert.equal((await ledger.balance(account)).reservedFen, 50n);
  });

  it("refuses amounts outside what Lua represents exactly", async () => {
    const account = newAccount();
    await assert.rejects(ledger.credit(account, MAX_FEN + 1n), RangeError);
    await assert.rejects(reserve(account, 0n, -1n), RangeError);
  });

  it("signs exactly N of many concurrent requests when the balance covers N, and never goes negative", async () => {
    const account = newAccount();
    const perOp = 37n;
    const covered = 25;
    await ledger.credit(account, perOp * BigInt(covered));
    // Ten connections, as ten service instances would have; 200 requests for 200 distinct nonces.
    const ledgers = Array.from({ length: 10 }, () => createLedger({ redis: server.client(), keys, maxLiveReservations: 1_000 }));
    const outcomes = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => reserve(account, BigInt(i), perOp, 1_000, ledgers[i % 10])));
    const granted = outcomes.filter((o) => o.status === "fulfilled");
    assert.equal(granted.length, covered);
    for (const outcome of outcomes) {
      if (outcome.status === "rejected") assert.equal((outcome.reason as ServiceError).code, "INSUFFICIENT_BALANCE");
      else assert.ok(outcome.value.availableFen >= 0n);
    }
    assert.deepEqual(await ledger.balance(account), { balanceFen: perOp * BigInt(covered), reservedFen: perOp * BigInt(covered), availableFen: 0n });
    assert.equal((await ledger.reservations(account)).length, covered);
  });

  it("keeps all of one account's keys in one Redis Cluster hash slot", () => {
    const account = newAccount();
    const tags = [keys.balance(account), keys.reservations(account)].map((key) => key.match(/\{([^}]+)\}/)?.[1]);
    assert.deepEqual(tags, [account, account]);
  });
});

describe("account limits, evaluated atomically with the reservation", () => {
  const NOW = 1_900_000_030; // 30 s into a UTC minute
  const MINUTE_END = (Math.floor(NOW / 60) + 1) * 60;
  const limits = (overrides: Partial<AccountLimits>): AccountLimits => ({ ...NO_ACCOUNT_LIMITS, ...overrides });
  const ample = 1_000_000n;

  /** Fires `count` reservations for distinct nonces at once over separate connections. */
  async function storm(account: Address, count: number, chargeFen: bigint, accountLimits: AccountLimits, now = NOW) {
    const ledgers = Array.from({ length: 5 }, () => createLedger({ redis: server.client(), keys, maxLiveReservations: 1_000 }));
    return Promise.allSettled(
      Array.from({ length: count }, (_, i) => reserve(account, BigInt(i), chargeFen, now + 300, ledgers[i % 5], { now, limits: accountLimits })),
    );
  }
  const granted = (outcomes: PromiseSettledResult<unknown>[]) => outcomes.filter((o) => o.status === "fulfilled").length;
  const codes = (outcomes: PromiseSettledResult<unknown>[]) => new Set(outcomes.flatMap((o) => (o.status === "rejected" ? [(o.reason as ServiceError).code] : [])));

  it("refuses a frozen account and serves it again once unfrozen", async () => {
    const account = newAccount();
    await ledger.credit(account, ample);
    await redis.hset(keys.frozen(account), { reason: "chargeback", actor: "ops", at: String(NOW) });
    const error = await rejection(reserve(account, 0n, 10n, 1_000, ledger, { now: NOW }));
    assert.equal(error.code, "ACCOUNT_FROZEN");
    await redis.del(keys.frozen(account));
    await reserve(account, 0n, 10n, 1_000, ledger, { now: NOW });
  });

  it("grants exactly maxOperationsPerMinute of a concurrent storm, saying when the minute ends", async () => {
    const account = newAccount();
    await ledger.credit(account, ample);
    const outcomes = await storm(account, 12, 10n, limits({ maxOperationsPerMinute: 3 }));
    assert.equal(granted(outcomes), 3);
    assert.deepEqual(codes(outcomes), new Set(["LIMIT_OPS_PER_MINUTE"]));
    const error = await rejection(reserve(account, 99n, 10n, 1_000, ledger, { now: NOW, limits: limits({ maxOperationsPerMinute: 3 }) }));
    assert.deepEqual(error.data, { limit: "perAccount.maxOperationsPerMinute", limitValue: "3", currentValue: "3", retryAfter: MINUTE_END });
    await reserve(account, 99n, 10n, 1_000, ledger, { now: MINUTE_END, limits: limits({ maxOperationsPerMinute: 3 }) });
  });

  it("grants exactly maxOperationsPerDay of a concurrent storm, until the UTC day ends", async () => {
    const account = newAccount();
    await ledger.credit(account, ample);
    const outcomes = await storm(account, 12, 10n, limits({ maxOperationsPerDay: 5 }));
    assert.equal(granted(outcomes), 5);
    assert.deepEqual(codes(outcomes), new Set(["LIMIT_OPS_PER_DAY"]));
    const roomy = createLedger({ redis, keys, maxLiveReservations: 1_000 });
    const error = await rejection(reserve(account, 99n, 10n, 1_000, roomy, { now: NOW, limits: limits({ maxOperationsPerDay: 5 }) }));
    assert.equal(error.code, "LIMIT_OPS_PER_DAY");
    assert.equal(error.data?.retryAfter, (Math.floor(NOW / 86_400) + 1) * 86_400);
  });

  it("does not count signing the same nonce again as another operation", async () => {
    const account = newAccount();
    await ledger.credit(account, ample);
    for (let i = 0; i < 3; i++) await reserve(account, 7n, 10n + BigInt(i), 1_000, ledger, { now: NOW, limits: limits({ maxOperationsPerMinute: 1 }) });
    assert.equal((await ledger.balance(account)).reservedFen, 12n);
  });

  it("keeps concurrent spending within maxSpendFenPerDay", async () => {
    const account = newAccount();
    await ledger.credit(account, ample);
    const outcomes = await storm(account, 10, 30n, limits({ maxSpendFenPerDay: 100n }));
    assert.equal(granted(outcomes), 3);
    assert.deepEqual(codes(outcomes), new Set(["LIMIT_ACCOUNT_SPEND_PER_DAY"]));
    assert.equal((await ledger.balance(account)).reservedFen, 90n);
  });

  it("holds recent top-ups for the cooling period and says when enough have matured", async () => {
    const account = newAccount();
    const cooling = limits({ topUpCoolingSeconds: 600 });
    await ledger.credit(account, 100n, { reference: "order-old", at: NOW - 10_000 });
    await ledger.credit(account, 100n, { reference: "order-new", at: NOW - 100 });
    await reserve(account, 0n, 100n, 1_000, ledger, { now: NOW, limits: cooling });
    const error = await rejection(reserve(account, 1n, 50n, 1_000, ledger, { now: NOW, limits: cooling }));
    assert.equal(error.code, "TOPUP_COOLING");
    assert.deepEqual(error.data, { limit: "perAccount.topUpCoolingSeconds", limitValue: "600", currentValue: "0", retryAfter: NOW + 500, neededFen: "50", spendableFen: "0" });
    await reserve(account, 1n, 50n, 1_000, ledger, { now: NOW + 500, limits: cooling });
  });

  it("still says INSUFFICIENT_BALANCE when cooled funds would not cover the op either", async () => {
    const account = newAccount();
    await ledger.credit(account, 100n, { reference: "order-new", at: NOW - 10 });
    const error = await rejection(reserve(account, 0n, 150n, 1_000, ledger, { now: NOW, limits: limits({ topUpCoolingSeconds: 600 }) }));
    assert.equal(error.code, "INSUFFICIENT_BALANCE");
  });

  it("keeps concurrent spending of many accounts within the global daily limit", async () => {
    const accounts = Array.from({ length: 8 }, newAccount);
    for (const account of accounts) await ledger.credit(account, ample);
    const day = Math.floor(NOW / 86_400);
    await redis.del(keys.globalSpendInDay(day));
    const ledgers = Array.from({ length: 4 }, () => createLedger({ redis: server.client(), keys, maxLiveReservations: 1_000 }));
    const outcomes = await Promise.allSettled(
      accounts.flatMap((account, a) =>
        [0n, 1n, 2n].map((nonce) => reserve(account, nonce, 40n, 1_000, ledgers[a % 4], { now: NOW, globalMaxSpendFenPerDay: 500n })),
      ),
    );
    assert.equal(granted(outcomes), 12, "500 fen covers twelve 40-fen ops of the 24 asked");
    assert.deepEqual(codes(outcomes), new Set(["LIMIT_GLOBAL_SPEND_PER_DAY"]));
    assert.equal(await redis.get(keys.globalSpendInDay(day)), "480", "refused claims were given back");
    const error = await rejection(reserve(accounts[0], 9n, 40n, 1_000, ledgers[0], { now: NOW, globalMaxSpendFenPerDay: 500n }));
    assert.deepEqual(error.data, { limit: "global.maxSpendFenPerDay", limitValue: "500", currentValue: "480", retryAfter: (day + 1) * 86_400 });
  });

  it("gives the global claim back when the account step refuses, and counts a re-sign only by what it adds", async () => {
    const account = newAccount();
    await ledger.credit(account, 100n);
    const day = Math.floor(NOW / 86_400);
    await redis.del(keys.globalSpendInDay(day));
    await rejection(reserve(account, 0n, 200n, 1_000, ledger, { now: NOW, globalMaxSpendFenPerDay: 10_000n }));
    assert.equal(await redis.get(keys.globalSpendInDay(day)), "0");
    await reserve(account, 0n, 60n, 1_000, ledger, { now: NOW, globalMaxSpendFenPerDay: 10_000n });
    await reserve(account, 0n, 50n, 1_000, ledger, { now: NOW, globalMaxSpendFenPerDay: 10_000n });
    await reserve(account, 0n, 70n, 1_000, ledger, { now: NOW, globalMaxSpendFenPerDay: 10_000n });
    assert.equal(await redis.get(keys.globalSpendInDay(day)), "70", "60, then nothing, then 10 more");
  });
});
