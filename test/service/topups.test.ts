// Top-ups end to end against both gateway simulators, with the notifications held back so each
// test decides when (and in which order, and how often) the service receives them.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import Fastify, { type FastifyInstance } from "fastify";
import { type Address, getAddress, keccak256, numberToHex, toHex } from "viem";

import type { Channel } from "../../service/gateways/gateway.ts";
import { createKeys } from "../../service/redis.ts";
import { newOrderId } from "../../service/topups/orders.ts";
import { type AlipaySimulator, createAlipaySimulator } from "../../scripts/sandbox/alipay.ts";
import type { NotificationDelivery, OutgoingNotification } from "../../scripts/sandbox/simulator.ts";
import { type WechatPaySimulator, createWechatPaySimulator } from "../../scripts/sandbox/wechatpay.ts";
import { freePort } from "../support/redis.ts";
import { type ServiceStack, rpcUserOperationFields, startServiceStack } from "../support/serviceFixture.ts";

/** Holds every notification the simulators send, for the test to deliver by hand. */
function heldDelivery() {
  const held: OutgoingNotification[] = [];
  const delivery: NotificationDelivery = { send: (notification) => void held.push(notification) };
  return {
    delivery,
    /** Removes and returns the notifications sent since the last call. */
    take: () => held.splice(0, held.length),
  };
}

/** Delivers one notification attempt as the gateway would; returns the status, body and whether it counts as received. */
async function deliver(notification: OutgoingNotification, build = notification.build()) {
  const response = await fetch(notification.url, { method: "POST", headers: build.headers, body: build.body });
  const body = await response.text();
  return { status: response.status, body, acknowledged: notification.acknowledged(response.status, body) };
}

let accountIndex = 0;
const newAccount = (): Address => getAddress(keccak256(toHex(`top-up e2e ${accountIndex++}`)).slice(0, 42));

let gatewayApp: FastifyInstance;
let alipay: AlipaySimulator;
let wechatpay: WechatPaySimulator;
let stack: ServiceStack;
const held = heldDelivery();
const simulatorOf = (channel: Channel) => (channel === "alipay" ? alipay : wechatpay);

before(async () => {
  const gatewayPort = await freePort();
  const baseUrl = `http://127.0.0.1:${gatewayPort}`;
  gatewayApp = Fastify();
  alipay = createAlipaySimulator({ baseUrl, delivery: held.delivery });
  wechatpay = createWechatPaySimulator({ baseUrl, delivery: held.delivery, refundSettlement: "manual" });
  await alipay.register(gatewayApp);
  await wechatpay.register(gatewayApp);
  await gatewayApp.listen({ host: "127.0.0.1", port: gatewayPort });
  const port = await freePort();
  stack = await startServiceStack({
    ...alipay.merchantEnvironment(),
    ...wechatpay.merchantEnvironment(),
    PORT: String(port),
    PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    TOPUP_MIN_FEN: "100",
    TOPUP_MAX_FEN: "100000",
    // The tests run the recovery pass themselves.
    TOPUP_RECOVERY_INTERVAL_SECONDS: "3600",
  });
});
after(async () => {
  await stack?.stop();
  await gatewayApp?.close();
});

async function createTopUp(channel: Channel, amount = "50.00", account = newAccount()) {
  const { status, body } = await stack.post<Record<string, string>>("/v1/topups", { account, amount, currency: "CNY", channel });
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

const balanceOf = async (account: string) => (await stack.service.ledger.balance(account as Address)).balanceFen;
const orderOf = async (orderId: string) => (await fetch(`${stack.url}/v1/topups/${orderId}`)).json() as Promise<Record<string, string>>;

describe("top-up orders", () => {
  it("opens an Alipay order with its QR code and a WeChat Pay order with its code_url, both pending", async () => {
    const ali = await createTopUp("alipay", "12.34");
    assert.match(ali.qrCode, /\/cashier\/alipay\//);
    assert.equal(ali.amountFen, "1234");
    assert.equal(ali.state, "pending");
    assert.equal(alipay.order(ali.orderId)?.amountFen, 1_234n, "the gateway holds the same amount");
    const wx = await createTopUp("wechatpay", "8");
    assert.match(wx.codeUrl, /\/cashier\/wechatpay\//);
    assert.equal(wechatpay.order(wx.orderId)?.amountFen, 800n);
    assert.ok(Date.parse(wx.expiresAt) - Date.parse(wx.createdAt) === 900_000, "expires after TOPUP_EXPIRY_SECONDS");
    assert.equal((await orderOf(wx.orderId)).state, "pending");
  });

  it("refuses bad input with a clear error and creates nothing", async () => {
    const account = newAccount();
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ account, amount: "0.99", currency: "CNY", channel: "alipay" }, /between 100 and 100000 fen/],
      [{ account, amount: "1000.01", currency: "CNY", channel: "alipay" }, /between 100 and 100000 fen/],
      [{ account, amount: "1.234", currency: "CNY", channel: "alipay" }, /at most 2 decimals/],
      [{ account, amount: 5, currency: "CNY", channel: "alipay" }, /amount/],
      [{ account, amount: "5", currency: "USD", channel: "alipay" }, /currency must be CNY/],
      [{ account, amount: "5", currency: "CNY", channel: "paypal" }, /channel/],
      [{ account: "0x1234", amount: "5", currency: "CNY", channel: "alipay" }, /account/],
    ];
    for (const [body, message] of cases) {
      const answer = await stack.post<{ error: { code: string; message: string } }>("/v1/topups", body);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.equal(answer.body.error.code, "INVALID_PARAMS");
      assert.match(answer.body.error.message, message);
    }
    assert.deepEqual(await stack.service.orders.ofAccount(account, 10), []);
    assert.equal((await fetch(`${stack.url}/v1/topups/TUnosuchorder000000000000`)).status, 404);
  });
});

describe("payment notifications", () => {
  for (const channel of ["alipay", "wechatpay"] as const) {
    it(`${channel}: credits a payment once, however many times and how concurrently it is delivered`, async () => {
      const order = await createTopUp(channel, "50.00");
      held.take();
      simulatorOf(channel).pay(order.orderId);
      const [notification] = held.take();
      const answers = await Promise.all(Array.from({ length: 12 }, () => deliver(notification)));
      assert.ok(answers.every(({ acknowledged }) => acknowledged), JSON.stringify(answers.map(({ status, body }) => [status, body])));
      if (channel === "alipay") assert.ok(answers.every(({ status, body }) => status === 200 && body === "success"));
      else assert.ok(answers.every(({ status, body }) => status === 204 && body === ""));
      assert.equal(await balanceOf(order.account), 5_000n);
      const stored = await orderOf(order.orderId);
      assert.equal(stored.state, "paid");
      assert.ok(stored.paidAt);
      // A redelivery long after is still acknowledged and still changes nothing.
      assert.equal((await deliver(notification)).acknowledged, true);
      assert.equal(await balanceOf(order.account), 5_000n);
    });

    it(`${channel}: a tampered or forged notification changes nothing and is answered with a failure`, async () => {
      const order = await createTopUp(channel, "20.00");
      held.take();
      simulatorOf(channel).pay(order.orderId);
      const [notification] = held.take();
      const genuine = notification.build();
      const tampered =
        channel === "alipay"
          ? { ...genuine, body: genuine.body.replace("total_amount=20.00", "total_amount=2000.00") }
          : { ...genuine, body: genuine.body.replace(/"ciphertext":"(.)/, (_match, first: string) => `"ciphertext":"${first === "A" ? "B" : "A"}`) };
      assert.notEqual(tampered.body, genuine.body);
      const answer = await deliver(notification, tampered);
      assert.equal(answer.acknowledged, false);
      assert.equal(answer.status, 401);
      if (channel === "wechatpay") assert.deepEqual(JSON.parse(answer.body), { code: "FAIL", message: "signature verification failed" });
      else assert.equal(answer.body, "fail");
      assert.equal(await balanceOf(order.account), 0n);
      assert.equal((await orderOf(order.orderId)).state, "pending");
      assert.equal((await deliver(notification)).acknowledged, true, "the genuine one still goes through");
      assert.equal(await balanceOf(order.account), 2_000n);
    });
  }

  it("answers WeChat's SIGNTEST probes with a failure", async () => {
    const order = await createTopUp("wechatpay", "3.00");
    held.take();
    wechatpay.pay(order.orderId);
    const [notification] = held.take();
    assert.ok(notification.buildProbe, "the WeChat simulator sends probes");
    const answer = await deliver(notification, notification.buildProbe());
    assert.equal(answer.status, 401);
    assert.equal(await balanceOf(order.account), 0n);
  });

  it("answers a notification for an order it does not know with a failure, so the gateway retries", async () => {
    const orderId = newOrderId();
    await stack.service.gateways.alipay!.createPayment({ orderId, amountFen: 1_000n, currency: "CNY", subject: "not ours", expiresAt: Math.floor(Date.now() / 1000) + 900 });
    held.take();
    alipay.pay(orderId);
    const [notification] = held.take();
    const answer = await deliver(notification);
    assert.equal(answer.acknowledged, false);
    assert.equal(answer.status, 404);
  });

  it("credits a payment for an order closed locally once the gateway's query confirms it", async () => {
    const order = await createTopUp("wechatpay", "15.00");
    const stored = await stack.service.orders.get(order.orderId);
    await stack.service.orders.close(stored!, Math.floor(Date.now() / 1000));
    held.take();
    wechatpay.pay(order.orderId);
    const [notification] = held.take();
    assert.equal((await deliver(notification)).acknowledged, true);
    assert.equal(await balanceOf(order.account), 1_500n);
    assert.equal((await orderOf(order.orderId)).state, "paid");
  });

  it("applies a refund that arrives before its payment: the gateway's query supplies the payment first", async () => {
    const order = await createTopUp("wechatpay", "30.00");
    held.take();
    wechatpay.pay(order.orderId);
    const [payment] = held.take();
    wechatpay.refundFromConsole(order.orderId, 1_000n);
    const [refund] = held.take();
    assert.equal((await deliver(refund)).acknowledged, true);
    assert.equal(await balanceOf(order.account), 2_000n, "credited 3000, then debited the 1000 refunded at the gateway");
    assert.equal((await orderOf(order.orderId)).state, "partially_refunded");
    assert.equal((await deliver(payment)).acknowledged, true);
    assert.equal(await balanceOf(order.account), 2_000n, "the late payment notification credits nothing more");
  });

  it("applies an Alipay full refund (TRADE_CLOSED with refund_fee) that beats the payment notification", async () => {
    const order = await createTopUp("alipay", "25.00");
    held.take();
    alipay.pay(order.orderId);
    const [payment] = held.take();
    alipay.refundFromConsole(order.orderId, 2_500n);
    const [closed] = held.take();
    assert.match(closed.build().body, /trade_status=TRADE_CLOSED/);
    assert.equal((await deliver(closed)).acknowledged, true);
    assert.equal(await balanceOf(order.account), 0n);
    assert.equal((await orderOf(order.orderId)).state, "refunded");
    assert.equal((await deliver(payment)).acknowledged, true);
    assert.equal(await balanceOf(order.account), 0n);
  });

  it("debits an Alipay partial refund made in the merchant console once, from its repeated TRADE_SUCCESS", async () => {
    const order = await createTopUp("alipay", "40.00");
    held.take();
    alipay.pay(order.orderId);
    await deliver(held.take()[0]);
    alipay.refundFromConsole(order.orderId, 1_500n);
    const [refund] = held.take();
    assert.match(refund.build().body, /trade_status=TRADE_SUCCESS/);
    await Promise.all([deliver(refund), deliver(refund), deliver(refund)]);
    assert.equal(await balanceOf(order.account), 2_500n);
    const stored = await orderOf(order.orderId);
    assert.equal(stored.state, "partially_refunded");
    assert.equal(stored.refundedFen, "1500");
  });
});

describe("missed notifications", () => {
  it("credits a paid order whose notification never came, and closes an expired unpaid one at the gateway too", async () => {
    const paid = await createTopUp("alipay", "11.00");
    const unpaid = await createTopUp("wechatpay", "12.00");
    alipay.pay(paid.orderId);
    held.take();
    // The unpaid order is past its expiry (written directly: the service's clock is the real one).
    await stack.redis.client().hset(createKeys(stack.config.REDIS_KEY_PREFIX).order(unpaid.account as Address, unpaid.orderId), "expiresAt", "1");
    const summary = await stack.service.topUps.recover({ olderThan: 0 });
    assert.ok(summary.credited >= 1 && summary.closed >= 1, JSON.stringify(summary));
    assert.equal(await balanceOf(paid.account), 1_100n);
    assert.equal((await orderOf(paid.orderId)).state, "paid");
    assert.equal((await orderOf(unpaid.orderId)).state, "closed");
    assert.equal(wechatpay.order(unpaid.orderId)?.state, "closed", "closed at the gateway, so it cannot be paid any more");
    assert.throws(() => wechatpay.pay(unpaid.orderId));
    const again = await stack.service.topUps.recover({ olderThan: 0 });
    assert.equal(again.credited, 0, "a second pass changes nothing");
  });
});

describe("refunds of unused balance", () => {
  /** A signed-in account topped up through `channel` (its payment delivered); returns its session and order. */
  async function toppedUp(channel: Channel, amount: string) {
    const created = await stack.newAccount("0.7");
    const session = await stack.signIn(created);
    const order = await createTopUp(channel, amount, created.sender);
    held.take();
    simulatorOf(channel).pay(order.orderId);
    assert.equal((await deliver(held.take()[0])).acknowledged, true);
    return { ...created, session, order };
  }

  const refund = (account: string, session: string | undefined, body: Record<string, string> = {}) =>
    stack.post<Record<string, unknown> & { error?: { code: string; data: Record<string, string> } }>(`/v1/accounts/${account}/refunds`, body, session ? { authorization: `Bearer ${session}` } : {});

  it("refunds through Alipay at once, and the refund's own notification debits nothing more", async () => {
    const user = await toppedUp("alipay", "50.00");
    const { status, body } = await refund(user.sender, user.session, { amountFen: "2000" });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.refundedFen, "2000");
    assert.equal(body.pendingFen, "0");
    assert.equal(await balanceOf(user.sender), 3_000n);
    assert.equal(alipay.order(user.order.orderId)?.refundedFen, 2_000n, "the gateway paid the payer back");
    const [notification] = held.take();
    assert.match(notification.build().body, /refund_fee=20.00/);
    assert.equal((await deliver(notification)).acknowledged, true);
    assert.equal(await balanceOf(user.sender), 3_000n);
    const stored = await orderOf(user.order.orderId);
    assert.equal(stored.state, "partially_refunded");
    assert.equal(stored.refundedFen, "2000");
  });

  it("holds a WeChat refund as pending until its notification, and gives a failed one back", async () => {
    const user = await toppedUp("wechatpay", "40.00");
    const first = await refund(user.sender, user.session, { amountFen: "1000" });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.pendingFen, "1000");
    assert.equal(await balanceOf(user.sender), 3_000n, "debited at once");
    const [{ refundId: succeeding }] = first.body.refunds as { refundId: string }[];
    wechatpay.settleRefund(succeeding, "SUCCESS");
    assert.equal((await deliver(held.take()[0])).acknowledged, true);
    let stored = await orderOf(user.order.orderId);
    assert.equal(stored.refundedFen, "1000");
    assert.equal(stored.pendingRefundFen, "0");
    assert.equal(await balanceOf(user.sender), 3_000n);

    const second = await refund(user.sender, user.session);
    assert.equal(second.body.pendingFen, "3000", "all of the available balance by default");
    assert.equal(await balanceOf(user.sender), 0n);
    const [{ refundId: failing }] = second.body.refunds as { refundId: string }[];
    wechatpay.settleRefund(failing, "ABNORMAL");
    assert.equal((await deliver(held.take()[0])).acknowledged, true);
    assert.equal(await balanceOf(user.sender), 3_000n, "the failed refund restored the balance");
    stored = await orderOf(user.order.orderId);
    assert.equal(stored.refundedFen, "1000");
    assert.equal(stored.pendingRefundFen, "0");

    const lookup = await fetch(`${stack.url}/admin/accounts/${user.sender}`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
    const { orders } = (await lookup.json()) as { orders: { orderId: string; state: string; refunds: { refundId: string; state: string; fen: string; origin: string }[] }[] };
    assert.equal(orders.length, 1);
    assert.equal(orders[0].orderId, user.order.orderId);
    assert.equal(orders[0].state, "partially_refunded");
    assert.deepEqual(
      // Both in the same second: order by amount, not by time.
      orders[0].refunds.map(({ refundId, state, fen, origin }) => [refundId, state, fen, origin]).sort((a, b) => Number(a[2]) - Number(b[2])),
      [
        [succeeding, "succeeded", "1000", "api"],
        [failing, "failed", "3000", "api"],
      ],
    );
  });

  it("needs the account's session, and refuses more than the available balance", async () => {
    const user = await toppedUp("alipay", "10.00");
    assert.equal((await refund(user.sender, undefined)).status, 401);
    const stranger = await stack.newAccount("0.7");
    assert.equal((await refund(user.sender, await stack.signIn(stranger))).status, 403, "another account's session");
    const tooMuch = await refund(user.sender, user.session, { amountFen: "1001" });
    assert.equal(tooMuch.status, 409);
    assert.equal(tooMuch.body.error?.code, "REFUND_NOT_POSSIBLE");
    assert.equal(tooMuch.body.error?.data.availableFen, "1000");
    assert.equal((await refund(user.sender, user.session, { amountFen: "-5" })).status, 400);
    assert.equal(await balanceOf(user.sender), 1_000n, "nothing changed");
  });

  it("never lets a refund and a concurrent sponsorship spend the same fen", async () => {
    for (let round = 0; round < 5; round++) {
      const user = await toppedUp("alipay", "100.00");
      const op = { ...rpcUserOperationFields(user.sender, user.factory, user.factoryData), nonce: numberToHex(BigInt(round) << 64n) };
      const quote = await stack.post<{ maxChargeFen: string }>("/v1/quotes", { userOperation: op, entryPoint: stack.entryPoint("0.7") });
      const chargeFen = BigInt(quote.body.maxChargeFen);
      // Each fits the balance alone; together they would overspend it by one fen.
      const refundFen = 10_000n - chargeFen + 1n;
      assert.ok(chargeFen > 0n && refundFen > 0n, `charge ${chargeFen}`);
      const [sponsored, refunded] = await Promise.all([
        stack.post("/rpc", { jsonrpc: "2.0", id: 1, method: "pm_getPaymasterData", params: [op, stack.entryPoint("0.7"), numberToHex(stack.anvil.chainId), { session: user.session }] }),
        refund(user.sender, user.session, { amountFen: refundFen.toString() }),
      ]);
      const wasSponsored = sponsored.body.result !== undefined;
      const wasRefunded = refunded.status === 200;
      assert.equal(Number(wasSponsored) + Number(wasRefunded), 1, `round ${round}: exactly one wins (${JSON.stringify(sponsored.body.error ?? refunded.body.error)})`);
      if (!wasSponsored) assert.equal(sponsored.body.error?.data.code, "INSUFFICIENT_BALANCE");
      if (!wasRefunded) assert.equal(refunded.body.error?.code, "REFUND_NOT_POSSIBLE");
      const { balanceFen, reservedFen } = await stack.service.ledger.balance(user.sender);
      assert.equal(balanceFen, 10_000n - (wasRefunded ? refundFen : 0n));
      assert.equal(reservedFen, wasSponsored ? chargeFen : 0n);
      assert.ok(balanceFen - reservedFen >= 0n);
    }
  });
});
