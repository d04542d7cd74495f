import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";

import type { Redis } from "ioredis";
import { type Address, type Hex, getAddress, keccak256, toHex } from "viem";

import { type RedisServer, startRedis } from "../../test/support/redis.ts";
import { ServiceError } from "../errors.ts";
import { createKeys } from "../redis.ts";
import { MAX_FEN, type Ledger, createLedger } from "./ledger.ts";

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

function reserve(account: Address, nonce: bigint, chargeFen: bigint, validUntil = 1_000, target: Ledger = ledger) {
  return target.reserve({ account, entryPointVersion: "0.7", nonce, paymaster: PAYMASTER, chargeFen, validUntil, now: 1 });
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
    assert.deepEqual(error.data, { limit: 4, current: 4 });
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
