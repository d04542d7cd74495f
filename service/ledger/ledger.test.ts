import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";

import type { Redis } from "ioredis";
import { type Address, type Hex, getAddress, keccak256, toHex } from "viem";

import { type RedisServer, startRedis } from "../../test/support/redis.ts";
import { ServiceError } from "../errors.ts";
import { createKeys } from "../redis.ts";
import { ledgerKeys } from "./keys.ts";
import { type AccountLimits, MAX_FEN, NO_ACCOUNT_LIMITS, type Ledger, type ReserveParameters, type SettlementEvent, createLedger } from "./ledger.ts";
import { RELEASE, WEI_EVAL } from "./scripts.ts";

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
    const more = ledgerKeys(keys);
    const tags = [keys.balance(account), keys.reservations(account), more.settled(account), more.released(account)].map((key) => key.match(/\{([^}]+)\}/)?.[1]);
    assert.deepEqual(tags, [account, account, account, account]);
    const globals = [more.inFlightWei("0.7"), more.reservedFen, more.returned, more.live, more.nonceDue, keys.globalSpendInDay(1)].map((key) => key.match(/\{([^}]+)\}/)?.[1]);
    assert.deepEqual(new Set(globals), new Set(["global"]), "the global totals and indexes share one slot, so one script updates them together");
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

describe("wei arithmetic inside the scripts", () => {
  it("adds, subtracts and compares wei exactly far beyond 2^53 and 2^64, as bigint does", async () => {
    // A fixed-seed generator: the same cases every run, spread over 1 to 27 digits.
    let seed = 0x2545f491n;
    const next = (digits: number) => {
      let value = 0n;
      for (let i = 0; i < digits; i++) {
        seed = (seed * 6364136223846793005n + 1442695040888963407n) % 2n ** 64n;
        value = value * 10n + (seed >> 60n) % 10n;
      }
      return value;
    };
    for (let i = 0; i < 200; i++) {
      const [a, b] = [next(1 + (i % 27)), next(1 + ((i * 7) % 27))];
      const [sum, difference, order] = (await redis.eval(WEI_EVAL("{weistr(weiadd(wei(ARGV[1]), wei(ARGV[2]))), weistr(weisub(wei(ARGV[1]), wei(ARGV[2]))), weicmp(wei(ARGV[1]), wei(ARGV[2]))}"), 0, a.toString(), b.toString())) as [string, string, number];
      assert.equal(BigInt(sum), a + b, `${a} + ${b}`);
      assert.equal(BigInt(difference), a > b ? a - b : 0n, `${a} - ${b}, floored at 0`);
      assert.equal(order, a === b ? 0 : a < b ? -1 : 1, `${a} vs ${b}`);
    }
    const carried = await redis.eval(WEI_EVAL("weistr(weiadd(wei(ARGV[1]), wei(ARGV[2])))"), 0, "999999999999", "1");
    assert.equal(carried, "1000000000000");
    const borrowed = await redis.eval(WEI_EVAL("weistr(weisub(wei(ARGV[1]), wei(ARGV[2])))"), 0, "18446744073709551616000", "1");
    assert.equal(borrowed, "18446744073709551615999");
  });
});

describe("the in-flight cap: reserved wei within the paymaster's deposit minus the floor", () => {
  let prefixIndex = 0;
  /** A ledger with keys of its own, so the global totals start at zero. */
  function isolatedLedger(client: Redis = redis) {
    const isolatedKeys = createKeys(`fgcap${prefixIndex++}`);
    return { ledger: createLedger({ redis: client, keys: isolatedKeys, maxLiveReservations: 1_000 }), keys: isolatedKeys };
  }
  const reserveWei = (target: Ledger, account: Address, nonce: bigint, maxWei: bigint, inFlightCapWei: bigint | null, chargeFen = 10n, validUntil = 1_000) =>
    target.reserve({ account, entryPointVersion: "0.7", nonce, paymaster: PAYMASTER, chargeFen, maxWei, inFlightCapWei, validUntil, now: 1 });

  it("tracks the largest maxWei of a slot's signed ops and counts each slot once in the total", async () => {
    const { ledger: isolated } = isolatedLedger();
    const account = newAccount();
    await isolated.credit(account, 1_000n);
    await reserveWei(isolated, account, 0n, 500n, null);
    await reserveWei(isolated, account, 0n, 300n, null);
    assert.equal((await isolated.reservation(account, "0.7", 0n))?.maxWei, 500n, "a cheaper re-signature cannot lower it: the first may still land");
    await reserveWei(isolated, account, 0n, 800n, null);
    await reserveWei(isolated, account, 1n, 100n, null);
    assert.equal((await isolated.reservation(account, "0.7", 0n))?.maxWei, 800n);
    assert.equal(await isolated.inFlightWei("0.7"), 900n);
    assert.equal(await isolated.inFlightWei("0.8"), 0n, "each EntryPoint's paymaster has its own deposit");
  });

  it("accepts up to the cap exactly and refuses one wei more, naming the limit and both figures", async () => {
    const { ledger: isolated } = isolatedLedger();
    const account = newAccount();
    await isolated.credit(account, 1_000n);
    await reserveWei(isolated, account, 0n, 600n, 1_000n);
    await reserveWei(isolated, account, 1n, 400n, 1_000n);
    const error = await rejection(reserveWei(isolated, account, 2n, 1n, 1_000n));
    assert.equal(error.code, "LIMIT_DEPOSIT_IN_FLIGHT");
    assert.deepEqual(error.data, { limit: "global.depositFloorWei", limitValue: "1000", currentValue: "1000", neededWei: "1" });
    assert.deepEqual(await isolated.balance(account), { balanceFen: 1_000n, reservedFen: 20n, availableFen: 980n }, "the refused op reserved nothing");
    assert.equal((await rejection(reserveWei(isolated, account, 3n, 1n, -5n))).code, "LIMIT_DEPOSIT_IN_FLIGHT", "a deposit below the floor leaves no room");
  });

  it("never exceeds the cap under a concurrent storm, with amounts past 2^64 wei", async () => {
    const { ledger: first, keys: isolatedKeys } = isolatedLedger();
    const ledgers = [first, ...Array.from({ length: 7 }, () => createLedger({ redis: server.client(), keys: isolatedKeys, maxLiveReservations: 1_000 }))];
    const perOp = 3n * 10n ** 18n + 7n;
    const cap = perOp * 7n + perOp / 2n; // about 2.2e19 wei: past 2^64
    const accounts = Array.from({ length: 10 }, newAccount);
    for (const account of accounts) await first.credit(account, 1_000_000n);
    const outcomes = await Promise.allSettled(accounts.flatMap((account, a) => [0n, 1n, 2n, 3n, 4n].map((nonce) => reserveWei(ledgers[(a + Number(nonce)) % 8], account, nonce, perOp, cap))));
    assert.equal(outcomes.filter((o) => o.status === "fulfilled").length, 7);
    for (const outcome of outcomes) if (outcome.status === "rejected") assert.equal((outcome.reason as ServiceError).code, "LIMIT_DEPOSIT_IN_FLIGHT");
    assert.equal(await first.inFlightWei("0.7"), perOp * 7n, "refused claims were given back exactly");
  });

  it("gives the wei back when the account step refuses", async () => {
    const { ledger: isolated } = isolatedLedger();
    const account = newAccount();
    await isolated.credit(account, 5n);
    assert.equal((await rejection(reserveWei(isolated, account, 0n, 10n ** 20n, null, 50n))).code, "INSUFFICIENT_BALANCE");
    assert.equal(await isolated.inFlightWei("0.7"), 0n);
    assert.deepEqual(await isolated.totals(), { reservedFen: 0n, liveReservations: 1, inFlightWei: { "0.7": 0n, "0.8": 0n } }, "only the index entry stays, for the worker to drop");
  });
});

describe("settling and releasing reservations", () => {
  let prefixIndex = 0;
  const NOW = 1_900_000_000;
  const event = (nonce: bigint, actualGasCost = 10n ** 15n): SettlementEvent => ({
    entryPointVersion: "0.7",
    nonce,
    success: true,
    actualGasCost,
    actualGasUsed: 100_000n,
    blockNumber: 42n,
    blockHash: keccak256(toHex("block 42")),
    transactionHash: keccak256(toHex("tx")),
    logIndex: 3,
  });
  async function reservedAccount(chargeFen = 500n, maxWei = 2n * 10n ** 15n) {
    const isolatedKeys = createKeys(`fgsettle${prefixIndex++}`);
    const isolated = createLedger({ redis, keys: isolatedKeys, maxLiveReservations: 10 });
    const account = newAccount();
    await isolated.credit(account, 1_000n);
    await isolated.reserve({ account, entryPointVersion: "0.7", nonce: 5n, paymaster: PAYMASTER, chargeFen, maxWei, validUntil: NOW + 300, now: NOW });
    const userOpHash = keccak256(toHex(`op of ${account}`));
    await isolated.attachOp(account, "0.7", 5n, { userOpHash, chargeFen, maxWei, validUntil: NOW + 300, rate: null });
    return { ledger: isolated, keys: isolatedKeys, account, userOpHash };
  }

  it("charges the settled amount, releases the rest, and records the op once however often it is settled", async () => {
    const { ledger: isolated, account, userOpHash } = await reservedAccount();
    const settled = await isolated.settle({ account, userOpHash, chargeFen: 123n, event: event(5n), now: NOW + 10 });
    assert.equal(settled.outcome, "settled");
    assert.deepEqual(await isolated.balance(account), { balanceFen: 877n, reservedFen: 0n, availableFen: 877n });
    const again = await isolated.settle({ account, userOpHash, chargeFen: 123n, event: event(5n), now: NOW + 20 });
    assert.equal(again.outcome, "duplicate");
    assert.deepEqual(await isolated.balance(account), { balanceFen: 877n, reservedFen: 0n, availableFen: 877n }, "the duplicate charged nothing");
    const [record] = await isolated.settled(account);
    assert.deepEqual(
      { charged: record.chargedFen, held: record.heldFen, wei: record.inFlightWei, at: record.settledAt, block: record.blockNumber, cost: record.actualGasCost },
      { charged: 123n, held: 500n, wei: 2n * 10n ** 15n, at: NOW + 10, block: 42n, cost: 10n ** 15n },
    );
    assert.deepEqual(await isolated.totals(), { reservedFen: 0n, liveReservations: 0, inFlightWei: { "0.7": 0n, "0.8": 0n } });
  });

  it("charges once, and gives the in-flight wei back once, when ten connections settle the same event at once", async () => {
    const { ledger: isolated, keys: isolatedKeys, account, userOpHash } = await reservedAccount();
    // Another live reservation: a second give-back of the settled one would eat into its figures.
    await isolated.reserve({ account, entryPointVersion: "0.7", nonce: 6n, paymaster: PAYMASTER, chargeFen: 40n, maxWei: 3n * 10n ** 15n, validUntil: NOW + 300, now: NOW });
    const ledgers = Array.from({ length: 10 }, () => createLedger({ redis: server.client(), keys: isolatedKeys, maxLiveReservations: 10 }));
    const results = await Promise.all(ledgers.map((each) => each.settle({ account, userOpHash, chargeFen: 200n, event: event(5n) })));
    assert.deepEqual(results.map((result) => result.outcome).sort(), [...Array(9).fill("duplicate"), "settled"]);
    assert.deepEqual(await isolated.balance(account), { balanceFen: 800n, reservedFen: 40n, availableFen: 760n });
    assert.deepEqual(await isolated.totals(), { reservedFen: 40n, liveReservations: 1, inFlightWei: { "0.7": 3n * 10n ** 15n, "0.8": 0n } });
  });

  it("says which event has no reservation, and which names an op the slot does not hold", async () => {
    const { ledger: isolated, account } = await reservedAccount();
    assert.deepEqual(await isolated.settle({ account, userOpHash: keccak256(toHex("stranger")), chargeFen: 1n, event: event(5n) }), { outcome: "unknown_op" });
    assert.deepEqual(await isolated.settle({ account, userOpHash: keccak256(toHex("stranger")), chargeFen: 1n, event: event(6n) }), { outcome: "no_reservation" });
    assert.deepEqual(await isolated.balance(account), { balanceFen: 1_000n, reservedFen: 500n, availableFen: 500n }, "nothing was charged");
  });

  it("releases an expired reservation only once its validUntil is before the given time", async () => {
    const { ledger: isolated, account } = await reservedAccount();
    const validUntil = NOW + 300;
    assert.deepEqual(await isolated.dueForExpiry(validUntil, 10), [], "not due at its own validUntil: a block at that time can still include it");
    const [due] = await isolated.dueForExpiry(validUntil + 1, 10);
    assert.deepEqual([due.account, due.nonce, due.score], [account, 5n, validUntil]);
    assert.deepEqual(await isolated.releaseIfDue({ account, entryPointVersion: "0.7", nonce: 5n, before: validUntil, reason: "expired" }), { outcome: "not_due", validUntil });
    assert.deepEqual(await isolated.releaseIfDue({ account, entryPointVersion: "0.7", nonce: 5n, before: validUntil + 1, reason: "expired" }), {
      outcome: "released",
      heldFen: 500n,
      maxWei: 2n * 10n ** 15n,
    });
    assert.deepEqual(await isolated.balance(account), { balanceFen: 1_000n, reservedFen: 0n, availableFen: 1_000n });
    assert.deepEqual(await isolated.totals(), { reservedFen: 0n, liveReservations: 0, inFlightWei: { "0.7": 0n, "0.8": 0n } });
    assert.deepEqual(await isolated.dueForNonceCheck(NOW + 10_000, 10), [], "both indexes forget it");
  });

  it("completes a release that crashed before giving its wei back, once", async () => {
    const { ledger: isolated, keys: isolatedKeys, account } = await reservedAccount();
    // The account step alone, as a crash right after it would leave things.
    const more = ledgerKeys(isolatedKeys);
    await redis.eval(RELEASE, 3, isolatedKeys.balance(account), isolatedKeys.reservations(account), more.released(account), "0.7:5", "-1", "expired", String(NOW));
    assert.equal(await isolated.inFlightWei("0.7"), 2n * 10n ** 15n, "the wei is still counted");
    assert.deepEqual(await isolated.releaseIfDue({ account, entryPointVersion: "0.7", nonce: 5n, reason: "expired" }), { outcome: "none" });
    assert.equal(await isolated.inFlightWei("0.7"), 0n);
    assert.equal(await redis.hlen(more.released(account)), 0, "the note is gone once done");
    assert.deepEqual(await isolated.balance(account), { balanceFen: 1_000n, reservedFen: 0n, availableFen: 1_000n }, "the fen were returned once");
  });

  it("keeps a newer reservation of a released slot indexed", async () => {
    const { ledger: isolated, account } = await reservedAccount();
    await isolated.release(account, "0.7", 5n);
    await isolated.reserve({ account, entryPointVersion: "0.7", nonce: 5n, paymaster: PAYMASTER, chargeFen: 50n, maxWei: 7n, validUntil: NOW + 900, now: NOW + 600 });
    const [entry] = await isolated.dueForExpiry(NOW + 901, 10);
    assert.deepEqual([entry?.nonce, entry?.score], [5n, NOW + 900]);
    await isolated.dropStale("live", { ...entry, score: NOW + 300 });
    assert.equal((await isolated.dueForExpiry(NOW + 901, 10)).length, 1, "a stale sighting cannot drop the newer entry");
    assert.equal(await isolated.inFlightWei("0.7"), 7n);
  });
});
