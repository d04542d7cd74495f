import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import type { Redis } from "ioredis";
import { type Address, getAddress, keccak256, toHex } from "viem";

import { type RedisServer, startRedis } from "../../test/support/redis.ts";
import { type Ledger, createLedger } from "../ledger/ledger.ts";
import { createKeys } from "../redis.ts";
import { type Order, type OrderBook, createOrderBook, newOrderId, newRefundId } from "./orders.ts";

const keys = createKeys("fgtest");
let server: RedisServer;
let redis: Redis;
let orders: OrderBook;
let ledger: Ledger;
let accountIndex = 0;

function newAccount(): Address {
  return getAddress(keccak256(toHex(`top-up account ${accountIndex++}`)).slice(0, 42));
}

async function newOrder(amountFen = 5_000n, account = newAccount()): Promise<Order> {
  return orders.create({ orderId: newOrderId(), account, channel: "alipay", amountFen, currency: "CNY", subject: "gas", createdAt: 1_000, expiresAt: 1_900 });
}

const payment = (order: Order, amountFen = order.amountFen) => ({ channel: order.channel, amountFen, currency: "CNY", tradeNo: "2026112322001", paidAt: 1_100 });

async function journal(account: Address): Promise<Record<string, string>[]> {
  const entries = await redis.xrange(keys.journal(account), "-", "+");
  return entries.map(([, fields]) => Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]])));
}

before(async () => {
  server = await startRedis();
  redis = server.client();
  orders = createOrderBook({ redis, keys });
  ledger = createLedger({ redis, keys, maxLiveReservations: 4 });
});
after(() => server.stop());

describe("order book", () => {
  it("persists a pending order and finds it by id alone, as a notification must", async () => {
    const order = await newOrder();
    const found = await orders.get(order.orderId);
    assert.equal(found?.state, "pending");
    assert.equal(found?.account, order.account);
    assert.equal(found?.amountFen, 5_000n);
    assert.deepEqual(await orders.pendingIds(1_000, 10_000).then((ids) => ids.includes(order.orderId)), true);
    assert.equal(await orders.get("TUunknownorder0000000000"), undefined);
  });

  it("credits a payment exactly once when 50 duplicates race", async () => {
    const order = await newOrder(12_345n);
    const outcomes = await Promise.all(Array.from({ length: 50 }, () => orders.applyPayment(order, payment(order), { now: 1_200, fromClosed: false })));
    assert.equal(outcomes.filter(({ outcome }) => outcome === "credited").length, 1);
    assert.equal(outcomes.filter(({ outcome }) => outcome === "unchanged").length, 49);
    assert.equal((await ledger.balance(order.account)).balanceFen, 12_345n);
    assert.equal((await orders.get(order.orderId))?.state, "paid");
    assert.deepEqual(
      (await journal(order.account)).map(({ type, fen }) => [type, fen]),
      [["credit", "12345"]],
    );
    assert.equal((await orders.pendingIds(10_000, 10_000)).includes(order.orderId), false, "no longer pending");
  });

  it("refuses a payment whose amount or currency differs from the order, and credits nothing", async () => {
    const order = await newOrder(5_000n);
    assert.equal((await orders.applyPayment(order, payment(order, 5_001n), { now: 1_200, fromClosed: false })).outcome, "mismatch");
    assert.equal((await orders.applyPayment(order, { ...payment(order), currency: "USD" }, { now: 1_200, fromClosed: false })).outcome, "mismatch");
    assert.equal((await orders.applyPayment(order, { ...payment(order), channel: "wechatpay" }, { now: 1_200, fromClosed: false })).outcome, "wrongChannel");
    assert.equal((await ledger.balance(order.account)).balanceFen, 0n);
    assert.equal((await orders.get(order.orderId))?.state, "pending");
  });

  it("keeps a closed order closed unless the gateway confirmed the payment", async () => {
    const order = await newOrder();
    assert.equal((await orders.close(order, 1_950)).outcome, "closed");
    assert.deepEqual(await orders.applyPayment(order, payment(order), { now: 1_960, fromClosed: false }), { outcome: "unchanged", stateBefore: "closed" });
    assert.equal((await ledger.balance(order.account)).balanceFen, 0n);
    assert.deepEqual(await orders.applyPayment(order, payment(order), { now: 1_960, fromClosed: true }), { outcome: "credited", stateBefore: "closed" });
    assert.equal((await ledger.balance(order.account)).balanceFen, 5_000n);
    assert.equal((await orders.close(order, 1_970)).outcome, "unchanged", "a paid order never closes");
  });

  it("indexes each credit for the top-up cooling period under the order id", async () => {
    const order = await newOrder(700n);
    await orders.applyPayment(order, payment(order), { now: 2_000, fromClosed: false });
    assert.deepEqual(await redis.zrange(keys.credits(order.account), 0, -1, "WITHSCORES"), [`${order.orderId}:700`, "2000"]);
  });

  it("debits a refund at once, completes it once, and gives a failed one back", async () => {
    const order = await newOrder(10_000n);
    await orders.applyPayment(order, payment(order), { now: 1_200, fromClosed: false });
    const first = newRefundId();
    assert.deepEqual(await orders.startRefund(order, first, 3_000n, 1_300), { outcome: "started" });
    assert.equal((await ledger.balance(order.account)).balanceFen, 7_000n);
    assert.equal((await orders.get(order.orderId))?.pendingRefundFen, 3_000n);
    const finishes = await Promise.all(Array.from({ length: 10 }, () => orders.finishRefund(order, first, { outcome: "succeeded", now: 1_400 })));
    assert.equal(finishes.filter((outcome) => outcome === "finished").length, 1);
    let stored = await orders.get(order.orderId);
    assert.equal(stored?.state, "partially_refunded");
    assert.equal(stored?.refundedFen, 3_000n);
    assert.equal(stored?.pendingRefundFen, 0n);

    const second = newRefundId();
    assert.deepEqual(await orders.startRefund(order, second, 7_000n, 1_500), { outcome: "started" });
    assert.equal((await ledger.balance(order.account)).balanceFen, 0n);
    assert.equal(await orders.finishRefund(order, second, { outcome: "failed", reason: "ABNORMAL", now: 1_600 }), "finished");
    assert.equal((await ledger.balance(order.account)).balanceFen, 7_000n, "a failed refund restores the balance");
    stored = await orders.get(order.orderId);
    assert.equal(stored?.state, "partially_refunded");
    assert.equal(stored?.refundedFen, 3_000n);
    assert.deepEqual(
      (await orders.refunds(order)).map(({ refundId, state, fen }) => [refundId, state, fen]),
      [
        [first, "succeeded", 3_000n],
        [second, "failed", 7_000n],
      ],
    );
    assert.deepEqual(
      (await journal(order.account)).map(({ type, fen }) => [type, fen]),
      [
        ["credit", "10000"],
        ["refund", "3000"],
        ["refund", "7000"],
        ["refundReversal", "7000"],
      ],
    );
  });

  it("refuses a refund beyond the order's refundable amount, the available balance, or of an unpaid order", async () => {
    const unpaid = await newOrder(1_000n);
    assert.deepEqual(await orders.startRefund(unpaid, newRefundId(), 100n, 1_300), { outcome: "notRefundable", state: "pending" });
    const order = await newOrder(1_000n);
    await orders.applyPayment(order, payment(order), { now: 1_200, fromClosed: false });
    assert.deepEqual(await orders.startRefund(order, newRefundId(), 1_001n, 1_300), { outcome: "exceedsOrder", refundableFen: 1_000n });
    await ledger.reserve({ account: order.account, entryPointVersion: "0.7", nonce: 0n, paymaster: order.account, chargeFen: 600n, validUntil: 2_000, now: 1_300 });
    assert.deepEqual(await orders.startRefund(order, newRefundId(), 500n, 1_300), { outcome: "insufficient", availableFen: 400n });
    assert.equal((await ledger.balance(order.account)).balanceFen, 1_000n, "nothing debited");
  });

  it("never lets a refund and a sponsorship spend the same fen, however they interleave", async () => {
    for (let round = 0; round < 20; round++) {
      const order = await newOrder(1_000n);
      await orders.applyPayment(order, payment(order), { now: 1_200, fromClosed: false });
      const [refund, reservation] = await Promise.allSettled([
        orders.startRefund(order, newRefundId(), 800n, 1_300),
        ledger.reserve({ account: order.account, entryPointVersion: "0.7", nonce: 0n, paymaster: order.account, chargeFen: 800n, validUntil: 2_000, now: 1_300 }),
      ]);
      const refunded = refund.status === "fulfilled" && refund.value.outcome === "started";
      const reserved = reservation.status === "fulfilled";
      assert.equal(Number(refunded) + Number(reserved), 1, `round ${round}: exactly one of the two spends the 800 fen`);
      const { balanceFen, reservedFen } = await ledger.balance(order.account);
      assert.ok(balanceFen - reservedFen >= 0n, "available never below zero");
    }
  });

  it("debits a refund made at the gateway once, even into a negative balance, and ignores unknown failures", async () => {
    const order = await newOrder(2_000n);
    await orders.applyPayment(order, payment(order), { now: 1_200, fromClosed: false });
    await ledger.reserve({ account: order.account, entryPointVersion: "0.7", nonce: 0n, paymaster: order.account, chargeFen: 1_500n, validUntil: 2_000, now: 1_300 });
    // The account spent most of it on gas, then the payer disputed the whole payment.
    await redis.hincrby(keys.balance(order.account), "balance", -1_500);
    await redis.hincrby(keys.balance(order.account), "reserved", -1_500);
    const outcomes = await Promise.all(Array.from({ length: 5 }, () => orders.finishRefund(order, "console-1", { outcome: "succeeded", fen: 2_000n, now: 1_400 })));
    assert.deepEqual(outcomes.sort(), ["already", "already", "already", "already", "gatewayRefund"]);
    assert.equal((await ledger.balance(order.account)).balanceFen, -1_500n);
    assert.equal((await orders.get(order.orderId))?.state, "refunded");
    assert.equal(await orders.finishRefund(order, "console-2", { outcome: "failed", fen: 10n, now: 1_400 }), "ignored");
    const unpaid = await newOrder(2_000n);
    assert.equal(await orders.finishRefund(unpaid, "console-3", { outcome: "succeeded", fen: 10n, now: 1_400 }), "notPaid");
    assert.equal((await ledger.balance(unpaid.account)).balanceFen, 0n);
  });

  it("a negative balance refuses every sponsorship until it is paid back", async () => {
    const order = await newOrder(1_000n);
    await orders.applyPayment(order, payment(order), { now: 1_200, fromClosed: false });
    await orders.finishRefund(order, "dispute-1", { outcome: "succeeded", fen: 1_000n, now: 1_300 });
    await redis.hincrby(keys.balance(order.account), "balance", -300);
    await assert.rejects(
      ledger.reserve({ account: order.account, entryPointVersion: "0.7", nonce: 0n, paymaster: order.account, chargeFen: 1n, validUntil: 2_000, now: 1_300 }),
      (error: { code?: string }) => error.code === "INSUFFICIENT_BALANCE",
    );
  });
});
