// The WeChat Pay adapter against the simulator over real HTTP on 127.0.0.1: orders, queries,
// close, refunds and their notifications, and the refusal of anything the gateway did not sign.
import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import { type AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import Fastify from "fastify";

import { type OutgoingNotification } from "../../scripts/sandbox/simulator.ts";
import { type WechatPaySimulatorOptions, createWechatPaySimulator, generateWechatPaySimulatorKeys } from "../../scripts/sandbox/wechatpay.ts";
import { GatewayResponseError, type PaymentGateway, type RefundRequest } from "../../service/gateways/gateway.ts";
import { WechatPayApiError, type WechatPayGatewayOptions, WechatPayTransportError, createWechatPayGateway } from "../../service/gateways/wechatpay/adapter.ts";
import { wechatPayConfigSchema, wechatPayGatewayOptions } from "../../service/gateways/wechatpay/config.ts";
import { readSignatureHeaders, signResponse, verifySignature } from "../../service/gateways/wechatpay/signing.ts";

const keys = generateWechatPaySimulatorKeys();
const NOTIFY_URL = "http://127.0.0.1:8787/webhooks/wechatpay";
const now = () => Math.floor(Date.now() / 1000);

/** The simulator on 127.0.0.1 behind a real HTTP server; notifications are recorded, not sent. */
async function startSandbox(options: Partial<Omit<WechatPaySimulatorOptions, "baseUrl" | "delivery">> = {}) {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sent: OutgoingNotification[] = [];
  const simulator = createWechatPaySimulator({ baseUrl, delivery: { send: (notification) => void sent.push(notification) }, keys, ...options });
  const app = Fastify({ serverFactory: (handler) => server.on("request", handler) });
  await simulator.register(app);
  await app.ready();
  const options_ = wechatPayGatewayOptions(wechatPayConfigSchema.parse(simulator.merchantEnvironment()), { notifyUrl: NOTIFY_URL })!;
  /** The adapter as the service builds it from the simulator's settings, with `change` applied. */
  const gateway = (change: Partial<WechatPayGatewayOptions> = {}) => createWechatPayGateway({ ...options_, ...change });
  const close = async () => {
    await app.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return { baseUrl, simulator, sent, gateway, close };
}

type Sandbox = Awaited<ReturnType<typeof startSandbox>>;

/** A fetch that rewrites the gateway's answers on the way back. */
function tampering(change: (answer: { status: number; headers: Headers; body: string }) => void): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    const answer = { status: response.status, headers: new Headers(response.headers), body: await response.text() };
    change(answer);
    answer.headers.delete("content-length");
    return new Response(answer.status === 204 ? null : answer.body, { status: answer.status, headers: answer.headers });
  };
}

const order = (orderId: string, amountFen = 1999n) => ({ orderId, amountFen, currency: "CNY", subject: "Gas top-up 充值", expiresAt: now() + 900 });
const refundOf = (orderId: string, refundId: string, refundFen: bigint, totalFen = 1999n): RefundRequest => ({ orderId, refundId, refundFen, totalFen, currency: "CNY", reason: "unused gas" });

function deliveredTo(gateway: PaymentGateway, notification: OutgoingNotification) {
  const { headers, body } = notification.build();
  return gateway.parseNotification({ headers, rawBody: Buffer.from(body) }, now());
}

describe("WeChat Pay adapter against the simulator", () => {
  let sandbox: Sandbox;
  let gateway: PaymentGateway;
  before(async () => {
    sandbox = await startSandbox();
    gateway = sandbox.gateway();
  });
  after(() => sandbox.close());

  it("opens a Native order whose code_url is the sandbox cashier, with the amount, subject and expiry sent", async () => {
    const request = order("native_0001");
    assert.deepEqual(await gateway.createPayment(request), { codeUrl: `${sandbox.baseUrl}/cashier/wechatpay/native_0001` });
    const held = sandbox.simulator.order("native_0001")!;
    assert.deepEqual(
      { amountFen: held.amountFen, subject: held.subject, expiresAt: held.expiresAt, state: held.state, refundedFen: held.refundedFen },
      { amountFen: 1999n, subject: "Gas top-up 充值", expiresAt: request.expiresAt, state: "pending", refundedFen: 0n },
    );
    // Retrying the same order is safe; reusing its id for another amount is refused.
    assert.deepEqual(await gateway.createPayment(request), { codeUrl: `${sandbox.baseUrl}/cashier/wechatpay/native_0001` });
    await assert.rejects(gateway.createPayment({ ...request, amountFen: 2000n }), (error: unknown) => error instanceof WechatPayApiError && error.status === 400 && error.code === "INVALID_REQUEST");
  });

  it("queries an order: pending before payment; paid after, matching the TRANSACTION.SUCCESS notification", async () => {
    await gateway.createPayment(order("query_0001", 888n));
    assert.deepEqual(await gateway.queryPayment("query_0001"), { state: "pending" });
    const before = sandbox.sent.length;
    sandbox.simulator.pay("query_0001");
    const status = await gateway.queryPayment("query_0001");
    assert.equal(status.state, "paid");
    assert.ok(status.state === "paid");
    assert.match(status.tradeNo, /^4200\d{24}$/);
    assert.equal(status.amountFen, 888n);
    assert.equal(status.currency, "CNY");
    assert.ok(Math.abs(status.paidAt - now()) <= 2);

    assert.equal(sandbox.sent.length, before + 1);
    const notification = sandbox.sent.at(-1)!;
    assert.equal(notification.url, NOTIFY_URL);
    assert.deepEqual(deliveredTo(gateway, notification), { kind: "payment", orderId: "query_0001", tradeNo: status.tradeNo, amountFen: 888n, currency: "CNY", paidAt: status.paidAt, refundedFen: 0n });
  });

  it("closes an unpaid order, which then cannot be paid; closing a paid order answers paid", async () => {
    await gateway.createPayment(order("close_0001"));
    assert.equal(await gateway.closePayment("close_0001"), "closed");
    assert.deepEqual(await gateway.queryPayment("close_0001"), { state: "closed" });
    assert.throws(() => sandbox.simulator.pay("close_0001"), /cannot be paid: it is CLOSED/);
    assert.equal(await gateway.closePayment("close_0001"), "closed", "closing twice is harmless");

    await gateway.createPayment(order("close_0002"));
    sandbox.simulator.pay("close_0002");
    assert.equal(await gateway.closePayment("close_0002"), "paid");
    assert.equal((await gateway.queryPayment("close_0002")).state, "paid");
  });

  it("reports unknown orders and refunds as notFound (signed 404s)", async () => {
    assert.deepEqual(await gateway.queryPayment("unknown_0001"), { state: "notFound" });
    assert.deepEqual(await gateway.queryRefund("unknown_0001", "unknown_refund"), { state: "notFound" });
    assert.equal(await gateway.closePayment("unknown_0001"), "closed");
  });

  it("refunds: PROCESSING at once, then SUCCESS by query and by a REFUND.SUCCESS notification", async () => {
    await gateway.createPayment(order("refund_0001"));
    sandbox.simulator.pay("refund_0001");
    const before = sandbox.sent.length;
    assert.deepEqual(await gateway.refund(refundOf("refund_0001", "refund_0001_a", 500n)), { state: "processing" });
    assert.deepEqual(await gateway.queryRefund("refund_0001", "refund_0001_a"), { state: "succeeded", refundFen: 500n });
    assert.equal(sandbox.sent.length, before + 1);
    assert.deepEqual(deliveredTo(gateway, sandbox.sent.at(-1)!), { kind: "refund", orderId: "refund_0001", refundId: "refund_0001_a", status: "succeeded", refundFen: 500n, totalFen: 1999n });
    // The order stays paid (trade_state REFUND) with the refund counted.
    assert.equal((await gateway.queryPayment("refund_0001")).state, "paid");
    assert.equal(sandbox.simulator.order("refund_0001")!.refundedFen, 500n);
  });

  it("refunds once per refundId: a retry moves no more money and sends no second notification", async () => {
    await gateway.createPayment(order("refund_0002"));
    sandbox.simulator.pay("refund_0002");
    await gateway.refund(refundOf("refund_0002", "refund_0002_a", 700n));
    const sent = sandbox.sent.length;
    assert.deepEqual(await gateway.refund(refundOf("refund_0002", "refund_0002_a", 700n)), { state: "succeeded", refundFen: 700n });
    assert.deepEqual(await gateway.refund(refundOf("refund_0002", "refund_0002_a", 700n)), { state: "succeeded", refundFen: 700n });
    assert.equal(sandbox.simulator.order("refund_0002")!.refundedFen, 700n);
    assert.equal(sandbox.sent.length, sent);
  });

  it("refuses a refund beyond what is left, as failed, moving nothing", async () => {
    await gateway.createPayment(order("refund_0003", 1000n));
    sandbox.simulator.pay("refund_0003");
    await gateway.refund(refundOf("refund_0003", "refund_0003_a", 600n, 1000n));
    const over = await gateway.refund(refundOf("refund_0003", "refund_0003_b", 401n, 1000n));
    assert.equal(over.state, "failed");
    assert.match((over as { reason: string }).reason, /400 INVALID_REQUEST/);
    assert.deepEqual(await gateway.queryRefund("refund_0003", "refund_0003_b"), { state: "notFound" });
    assert.deepEqual(await gateway.refund(refundOf("refund_0003", "refund_0003_c", 400n, 1000n)), { state: "processing" });
    assert.equal(sandbox.simulator.order("refund_0003")!.state, "refunded");
    assert.equal(sandbox.simulator.order("refund_0003")!.refundedFen, 1000n);
  });

  it("sends REFUND.SUCCESS with a gateway-made out_refund_no for a refund from the merchant console", async () => {
    await gateway.createPayment(order("console_0001"));
    sandbox.simulator.pay("console_0001");
    assert.equal(sandbox.simulator.refundFromConsole("console_0001", 300n).refundedFen, 300n);
    const notification = deliveredTo(gateway, sandbox.sent.at(-1)!);
    assert.equal(notification.kind, "refund");
    assert.ok(notification.kind === "refund");
    assert.equal(notification.status, "succeeded");
    assert.equal(notification.refundFen, 300n);
    assert.deepEqual(await gateway.queryRefund("console_0001", notification.refundId), { state: "succeeded", refundFen: 300n });
    assert.throws(() => sandbox.simulator.refundFromConsole("console_0001", 1700n), /exceeds the refundable 1699 fen/);
  });

  it("refuses unsigned and tampered answers, 200, 204 and 404 alike, so a forged one cannot move state", async () => {
    await gateway.createPayment(order("tamper_0001"));
    const cases: [string, (answer: { status: number; headers: Headers; body: string }) => void, RegExp][] = [
      ["body changed", (answer) => void (answer.body = answer.body.replace("NOTPAY", "SUCCESS").replace("订单不存在", "order does not exist")), /answered 200 without a valid signature: signature does not verify/],
      ["headers removed", (answer) => ["wechatpay-signature", "wechatpay-serial"].forEach((name) => answer.headers.delete(name)), /missing Wechatpay-Signature, Wechatpay-Serial/],
      ["serial replaced", (answer) => answer.headers.set("wechatpay-serial", "PUB_KEY_ID_0000"), /"PUB_KEY_ID_0000" is not a configured/],
      ["timestamp moved", (answer) => answer.headers.set("wechatpay-timestamp", String(Number(answer.headers.get("wechatpay-timestamp")) - 1)), /signature does not verify/],
    ];
    for (const [what, change, message] of cases) {
      const forged = sandbox.gateway({ fetch: tampering(change) });
      await assert.rejects(forged.queryPayment("tamper_0001"), (error: unknown) => error instanceof GatewayResponseError && message.test(error.message), what);
      await assert.rejects(forged.queryPayment("tamper_none"), (error: unknown) => error instanceof GatewayResponseError, `${what}, 404`);
    }
    const unsigned204 = sandbox.gateway({ fetch: tampering((answer) => answer.headers.delete("wechatpay-signature")) });
    await assert.rejects(unsigned204.closePayment("tamper_0001"), (error: unknown) => error instanceof GatewayResponseError && /answered 204/.test(error.message));
  });

  it("takes an unverifiable refund answer as processing: the refund exists and a retry with the same id finds it", async () => {
    await gateway.createPayment(order("tamper_0002"));
    sandbox.simulator.pay("tamper_0002");
    const forged = sandbox.gateway({ fetch: tampering((answer) => void (answer.body = answer.body.replace('"PROCESSING"', '"ABNORMAL"'))) });
    assert.deepEqual(await forged.refund(refundOf("tamper_0002", "tamper_0002_a", 100n)), { state: "processing" });
    assert.deepEqual(await gateway.refund(refundOf("tamper_0002", "tamper_0002_a", 100n)), { state: "succeeded", refundFen: 100n });
  });

  it("signs every answer of the simulator, including its 401 to a request without a valid Authorization", async () => {
    const response = await fetch(`${sandbox.baseUrl}/wechatpay/v3/pay/transactions/out-trade-no/native_0001?mchid=${keys.mchid}`);
    const body = Buffer.from(await response.arrayBuffer());
    assert.equal(response.status, 401);
    assert.equal(JSON.parse(body.toString()).code, "SIGN_ERROR");
    const platformKeys = wechatPayGatewayOptions(wechatPayConfigSchema.parse(sandbox.simulator.merchantEnvironment()), { notifyUrl: NOTIFY_URL })!.platformKeys;
    assert.equal(verifySignature(readSignatureHeaders((name) => response.headers.get(name) ?? undefined), body, platformKeys, now()).ok, true);

    const otherKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    await assert.rejects(sandbox.gateway({ merchantPrivateKey: otherKey }).createPayment(order("sign_0001")), (error: unknown) => error instanceof WechatPayApiError && error.status === 401 && error.code === "SIGN_ERROR");
    assert.equal(sandbox.simulator.order("sign_0001"), undefined);
  });

  it("times out a request that gets no answer; a refund in that state is processing", async () => {
    const silent: typeof fetch = (_input, init) => new Promise((_resolve, reject) => init!.signal!.addEventListener("abort", () => reject(init!.signal!.reason)));
    const stuck = sandbox.gateway({ fetch: silent, timeoutMs: 50 });
    await assert.rejects(stuck.queryPayment("native_0001"), (error: unknown) => error instanceof WechatPayTransportError && /no answer within 50 ms/.test(error.message));
    assert.deepEqual(await stuck.refund(refundOf("native_0001", "timeout_refund", 1n)), { state: "processing" });
  });

  it("takes a signed 5xx refund answer as processing and a signed 5xx query as an error", async () => {
    const privateKey = createPrivateKey(keys.publicKeyPrivateKey);
    const systemError: typeof fetch = async () => {
      const body = JSON.stringify({ code: "SYSTEM_ERROR", message: "系统错误" });
      return new Response(body, { status: 500, headers: signResponse(body, { privateKey, serial: keys.publicKeyId, timestamp: now() }) });
    };
    const failing = sandbox.gateway({ fetch: systemError });
    assert.deepEqual(await failing.refund(refundOf("native_0001", "error_refund", 1n)), { state: "processing" });
    await assert.rejects(failing.queryPayment("native_0001"), (error: unknown) => error instanceof WechatPayApiError && error.status === 500 && error.code === "SYSTEM_ERROR");
  });
});

describe("WeChat Pay adapter: clocks and settlement", () => {
  it("accepts an answer signed 299 s away and refuses one 301 s away", async () => {
    const T = now();
    const sandbox = await startSandbox({ now: () => T });
    try {
      await sandbox.gateway({ now: () => T }).createPayment({ ...order("clock_0001"), expiresAt: T + 900 });
      assert.deepEqual(await sandbox.gateway({ now: () => T + 299 }).queryPayment("clock_0001"), { state: "pending" });
      assert.deepEqual(await sandbox.gateway({ now: () => T - 299 }).queryPayment("clock_0001"), { state: "pending" });
      await assert.rejects(sandbox.gateway({ now: () => T + 301 }).queryPayment("clock_0001"), (error: unknown) => error instanceof GatewayResponseError && /301 s old/.test(error.message));
      await assert.rejects(sandbox.gateway({ now: () => T - 301 }).queryPayment("clock_0001"), (error: unknown) => error instanceof GatewayResponseError && /301 s in the future/.test(error.message));
    } finally {
      await sandbox.close();
    }
  });

  it("reports a refund as processing until the gateway settles it, and ABNORMAL as failed", async () => {
    const sandbox = await startSandbox({ refundSettlement: "manual" });
    try {
      const gateway = sandbox.gateway();
      await gateway.createPayment(order("settle_0001"));
      sandbox.simulator.pay("settle_0001");
      assert.deepEqual(await gateway.refund(refundOf("settle_0001", "settle_0001_a", 900n)), { state: "processing" });
      assert.deepEqual(await gateway.queryRefund("settle_0001", "settle_0001_a"), { state: "processing" });
      assert.deepEqual(await gateway.refund(refundOf("settle_0001", "settle_0001_a", 900n)), { state: "processing" });
      sandbox.simulator.settleRefund("settle_0001_a", "ABNORMAL");
      assert.deepEqual(await gateway.queryRefund("settle_0001", "settle_0001_a"), { state: "failed", reason: "WeChat Pay refund ABNORMAL" });
      const notification = deliveredTo(gateway, sandbox.sent.at(-1)!);
      assert.equal(notification.kind === "refund" && notification.status, "failed");
      // A failed refund gives its amount back to what may be refunded.
      assert.deepEqual(await gateway.refund(refundOf("settle_0001", "settle_0001_b", 1999n)), { state: "processing" });
    } finally {
      await sandbox.close();
    }
  });
});
