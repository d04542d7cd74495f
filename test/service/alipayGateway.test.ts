// The Alipay adapter against the simulator over real HTTP on 127.0.0.1: the whole order life
// (precreate, query, close, refunds, refund query), alipay-sdk as a second client of the simulator,
// and a man in the middle whose tampered, unsigned, failing or slow answers must never be believed.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import { AlipaySdk } from "alipay-sdk";
import Fastify, { type FastifyInstance } from "fastify";

import { type AlipaySimulator, createAlipaySimulator } from "../../scripts/sandbox/alipay.ts";
import type { OutgoingNotification } from "../../scripts/sandbox/simulator.ts";
import { parseConfig } from "../../service/config.ts";
import { AlipayApiError, type AlipayGatewayOptions, AlipayUnreachableError, createAlipayGateway } from "../../service/gateways/alipay/adapter.ts";
import { alipayConfigSchema, alipayGatewayOptions } from "../../service/gateways/alipay/config.ts";
import { signResponse } from "../../service/gateways/alipay/signing.ts";
import { GatewayResponseError, type PaymentGateway, type PaymentRequest, type RefundRequest } from "../../service/gateways/gateway.ts";

const START = 1_750_000_000;
let clock = START;
const sent: OutgoingNotification[] = [];
let server: Server;
let app: FastifyInstance;
let baseUrl: string;
let simulator: AlipaySimulator;
let env: Record<string, string>;
let options: AlipayGatewayOptions;
let gateway: PaymentGateway;

const NOTIFY_URL = "https://merchant.example/webhooks/alipay";

before(async () => {
  // The simulator needs its own URL before its routes exist, so the socket is bound first and handed to fastify.
  server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  simulator = createAlipaySimulator({ baseUrl, delivery: { send: (notification) => sent.push(notification) }, now: () => clock });
  app = Fastify({
    serverFactory: (handler) => {
      server.on("request", handler);
      return server;
    },
  });
  await simulator.register(app);
  await app.ready();
  env = simulator.merchantEnvironment();
  options = alipayGatewayOptions(parseConfig(alipayConfigSchema, env), { notifyUrl: NOTIFY_URL, timeoutMs: 2000 })!;
  gateway = createAlipayGateway(options);
});
after(async () => {
  await app?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

const order = (orderId: string, amountFen = 1000n, expiresIn = 900): PaymentRequest => ({ orderId, amountFen, currency: "CNY", subject: "FiatGas 燃气充值", expiresAt: clock + expiresIn });
const refund = (orderId: string, refundId: string, refundFen: bigint): RefundRequest => ({ orderId, refundId, refundFen, totalFen: 1000n, currency: "CNY", reason: "customer request" });

/** The facts of the last notification the simulator sent, as our verifier reads them. */
function lastNotification() {
  const { headers, body } = sent.at(-1)!.build();
  return gateway.parseNotification({ headers, rawBody: Buffer.from(body) }, clock);
}

async function paidOrder(orderId: string, amountFen = 1000n): Promise<void> {
  await gateway.createPayment(order(orderId, amountFen));
  simulator.pay(orderId);
}

describe("the Alipay adapter against the simulator over HTTP", () => {
  it("takes its settings from the simulator's merchantEnvironment", () => {
    assert.equal(options.gatewayUrl, `${baseUrl}/alipay/gateway.do`);
    assert.deepEqual(Object.keys(env).sort(), ["ALIPAY_APP_ID", "ALIPAY_APP_PRIVATE_KEY", "ALIPAY_GATEWAY_URL", "ALIPAY_PUBLIC_KEY", "ALIPAY_SELLER_ID"]);
  });

  it("precreates a QR code pointing at the sandbox cashier, idempotently", async () => {
    const created = await gateway.createPayment(order("topup-1001"));
    assert.deepEqual(created, { qrCode: `${baseUrl}/cashier/alipay/topup-1001` });
    assert.deepEqual(await gateway.createPayment(order("topup-1001")), created);
    assert.deepEqual(simulator.order("topup-1001"), {
      channel: "alipay",
      orderId: "topup-1001",
      amountFen: 1000n,
      currency: "CNY",
      subject: "FiatGas 燃气充值",
      qrContent: created.qrCode,
      state: "pending",
      refundedFen: 0n,
      expiresAt: START + 900,
    });
    await assert.rejects(gateway.createPayment(order("topup-1001", 2000n)), (error: unknown) => error instanceof AlipayApiError && error.subCode === "ACQ.CONTEXT_INCONSISTENT");
  });

  it("queries notFound before the scan, pending after it, paid once paid", async () => {
    assert.deepEqual(await gateway.queryPayment("topup-1001"), { state: "notFound" });
    simulator.scan("topup-1001");
    assert.deepEqual(await gateway.queryPayment("topup-1001"), { state: "pending" });
    clock += 30;
    assert.equal(sent.length, 0);
    simulator.pay("topup-1001");
    const paid = await gateway.queryPayment("topup-1001");
    assert.ok(paid.state === "paid");
    assert.deepEqual(paid, { state: "paid", tradeNo: paid.tradeNo, amountFen: 1000n, currency: "CNY", paidAt: START + 30 });
    assert.equal(sent.length, 1);
    assert.deepEqual(lastNotification(), { kind: "payment", orderId: "topup-1001", tradeNo: paid.tradeNo, amountFen: 1000n, currency: "CNY", paidAt: START + 30, refundedFen: 0n });
  });

  it("closes: a paid trade says paid, an unscanned order dies without a trade, a scanned one closes", async () => {
    assert.equal(await gateway.closePayment("topup-1001"), "paid");

    await gateway.createPayment(order("topup-1002"));
    assert.equal(await gateway.closePayment("topup-1002"), "closed");
    assert.equal(simulator.order("topup-1002")?.state, "closed");
    assert.throws(() => simulator.pay("topup-1002"), /is closed; it cannot be paid/);
    assert.deepEqual(await gateway.queryPayment("topup-1002"), { state: "notFound" });
    await assert.rejects(gateway.createPayment(order("topup-1002")), (error: unknown) => error instanceof AlipayApiError && error.subCode === "ACQ.TRADE_HAS_CLOSE");

    await gateway.createPayment(order("topup-1003"));
    simulator.scan("topup-1003");
    assert.equal(await gateway.closePayment("topup-1003"), "closed");
    assert.deepEqual(await gateway.queryPayment("topup-1003"), { state: "closed" });
    assert.equal(await gateway.closePayment("topup-never"), "closed", "an order Alipay never saw");
  });

  it("refuses to take payment after time_expire", async () => {
    await gateway.createPayment(order("topup-1004", 500n, 60));
    clock += 60;
    assert.throws(() => simulator.pay("topup-1004"), /is closed; it cannot be paid/);
    assert.equal(simulator.order("topup-1004")?.state, "closed");
  });

  it("refunds partially, then fully, once per refundId, and reports each refund", async () => {
    await paidOrder("topup-2001");
    const before = sent.length;

    assert.deepEqual(await gateway.refund(refund("topup-2001", "refund-a", 300n)), { state: "succeeded", refundFen: 300n });
    const partial = lastNotification();
    assert.ok(partial.kind === "payment");
    assert.deepEqual(partial, { kind: "payment", orderId: "topup-2001", tradeNo: partial.tradeNo, amountFen: 1000n, currency: "CNY", paidAt: clock, refundedFen: 300n, refundId: "refund-a" });

    // The same refundId again: fund_change N, no money, no notification, and still this refund's own amount.
    assert.deepEqual(await gateway.refund(refund("topup-2001", "refund-a", 300n)), { state: "succeeded", refundFen: 300n });
    assert.equal(sent.length, before + 1, "one notification, for the first call");
    assert.equal(simulator.order("topup-2001")?.refundedFen, 300n);

    const over = await gateway.refund(refund("topup-2001", "refund-b", 800n));
    assert.ok(over.state === "failed" && over.reason.includes("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"), JSON.stringify(over));

    assert.deepEqual(await gateway.queryRefund("topup-2001", "refund-a"), { state: "succeeded", refundFen: 300n });
    assert.deepEqual(await gateway.queryRefund("topup-2001", "refund-b"), { state: "notFound" });
    assert.deepEqual(await gateway.queryRefund("topup-9999", "refund-a"), { state: "notFound" });

    clock += 10;
    assert.deepEqual(await gateway.refund(refund("topup-2001", "refund-c", 700n)), { state: "succeeded", refundFen: 700n });
    const closed = lastNotification();
    assert.ok(closed.kind === "closed");
    assert.deepEqual([closed.refundedFen, closed.refundId, closed.amountFen], [1000n, "refund-c", 1000n]);
    assert.equal(simulator.order("topup-2001")?.state, "refunded");
    assert.deepEqual(await gateway.queryPayment("topup-2001"), { state: "closed" });

    const afterFull = await gateway.refund(refund("topup-2001", "refund-d", 100n));
    assert.ok(afterFull.state === "failed" && afterFull.reason.includes("ACQ.TRADE_HAS_CLOSE"), JSON.stringify(afterFull));
    assert.deepEqual(await gateway.refund(refund("topup-2001", "refund-c", 700n)), { state: "succeeded", refundFen: 700n }, "a repeat after the full refund");

    await gateway.createPayment(order("topup-2002"));
    const unpaid = await gateway.refund(refund("topup-2002", "refund-e", 100n));
    assert.ok(unpaid.state === "failed" && unpaid.reason.includes("ACQ.TRADE_NOT_EXIST"), JSON.stringify(unpaid));
  });

  it("notifies a console refund with the gateway's own out_biz_no", async () => {
    await paidOrder("topup-2003");
    simulator.refundFromConsole("topup-2003", 400n);
    const notified = lastNotification();
    assert.ok(notified.kind === "payment");
    assert.equal(notified.refundedFen, 400n);
    assert.match(notified.refundId ?? "", /^RF\d{20}$/);
    assert.deepEqual(await gateway.queryRefund("topup-2003", notified.refundId!), { state: "succeeded", refundFen: 400n });
    assert.throws(() => simulator.refundFromConsole("topup-2003", 601n), /ACQ.REFUND_AMT_NOT_EQUAL_TOTAL/);
  });

  it("is refused by the gateway when signed with another key or for another app", async () => {
    const otherKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const refusedWith = (subCode: string) => (error: unknown) => error instanceof AlipayApiError && error.code === "40002" && error.subCode === subCode;
    await assert.rejects(createAlipayGateway({ ...options, appPrivateKey: otherKey }).queryPayment("topup-1001"), refusedWith("isv.invalid-signature"));
    await assert.rejects(createAlipayGateway({ ...options, appId: "2021000000000000" }).queryPayment("topup-1001"), refusedWith("isv.invalid-app-id"));
  });

  it("serves alipay-sdk too: its signed requests pass, and it verifies the simulator's answers", async () => {
    const sdk = new AlipaySdk({ appId: env.ALIPAY_APP_ID, privateKey: simulator.keys.appPrivateKey, keyType: "PKCS8", alipayPublicKey: env.ALIPAY_PUBLIC_KEY, gateway: env.ALIPAY_GATEWAY_URL });
    const created = await sdk.exec("alipay.trade.precreate", { bizContent: { outTradeNo: "topup-3001", totalAmount: "8.88", subject: "sdk 燃气" } }, { validateSign: true });
    assert.equal(created.code, "10000");
    assert.equal(created.qrCode, `${baseUrl}/cashier/alipay/topup-3001`, "the SDK reads the escaped slashes");
    simulator.pay("topup-3001");
    const queried = await sdk.exec("alipay.trade.query", { bizContent: { outTradeNo: "topup-3001" } }, { validateSign: true });
    assert.deepEqual([queried.tradeStatus, queried.totalAmount], ["TRADE_SUCCESS", "8.88"]);
    const wrongKey = new AlipaySdk({ ...sdk.config, alipayPublicKey: generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ format: "pem", type: "spki" }).toString() });
    await assert.rejects(wrongKey.exec("alipay.trade.query", { bizContent: { outTradeNo: "topup-3001" } }, { validateSign: true }), /验签失败/);
  });
});

describe("answers that cannot be trusted", () => {
  type Rewrite = (body: string) => { status?: number; body?: string; delayMs?: number };
  let rewrite: Rewrite = (body) => ({ body });
  let proxy: FastifyInstance;
  let proxied: PaymentGateway;
  const forger = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;

  before(async () => {
    proxy = Fastify({ forceCloseConnections: true });
    proxy.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_request, body, done) => done(null, body));
    proxy.post("/gateway.do", async (request, reply) => {
      const upstream = await fetch(env.ALIPAY_GATEWAY_URL, { method: "POST", headers: { "content-type": request.headers["content-type"]! }, body: request.body as string });
      const answer = rewrite(await upstream.text());
      if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
      return reply.code(answer.status ?? 200).type("application/json; charset=utf-8").send(answer.body ?? "");
    });
    const address = await proxy.listen({ port: 0, host: "127.0.0.1" });
    proxied = createAlipayGateway({ ...options, gatewayUrl: `${address}/gateway.do`, timeoutMs: 300 });
    await paidOrder("topup-4001");
  });
  after(() => proxy?.close());

  const untrusted = (message: RegExp) => (error: unknown) => error instanceof GatewayResponseError && message.test(error.message);

  it("passes a faithful proxy's answers through, so every failure below is the rewrite's doing", async () => {
    rewrite = (body) => ({ body });
    assert.equal((await proxied.queryPayment("topup-4001")).state, "paid");
  });

  it("refuses a tampered amount, an unsigned answer, a forger's signature and a non-JSON body", async () => {
    rewrite = (body) => ({ body: body.replace('"total_amount":"10.00"', '"total_amount":"99.00"') });
    await assert.rejects(proxied.queryPayment("topup-4001"), untrusted(/^alipay.trade.query: alipay_trade_query_response signature does not verify/));
    rewrite = (body) => ({ body: body.replace(/,"sign":"[^"]+"/, "") });
    await assert.rejects(proxied.queryPayment("topup-4001"), untrusted(/^alipay.trade.query: response is unsigned \(unverified code 10000\)$/));
    await assert.rejects(proxied.createPayment(order("topup-4002")), untrusted(/response is unsigned/));
    rewrite = (body) => {
      const inner = (JSON.parse(body) as { alipay_trade_close_response: Record<string, unknown> }).alipay_trade_close_response;
      return { body: signResponse("alipay.trade.close", { ...inner, code: "10000", msg: "Success" }, forger) };
    };
    await assert.rejects(proxied.closePayment("topup-4001"), untrusted(/signature does not verify/), "a forged 'closed' for a paid trade");
    rewrite = () => ({ body: "<html>gateway busy</html>" });
    await assert.rejects(proxied.queryPayment("topup-4001"), untrusted(/response is not JSON/));
  });

  it("calls an unanswered or failed request unreachable, and times out", async () => {
    rewrite = () => ({ status: 502, body: "bad gateway" });
    await assert.rejects(proxied.queryPayment("topup-4001"), (error: unknown) => error instanceof AlipayUnreachableError && /HTTP 502/.test(error.message));
    rewrite = (body) => ({ body, delayMs: 1000 });
    const started = Date.now();
    await assert.rejects(proxied.queryPayment("topup-4001"), (error: unknown) => error instanceof AlipayUnreachableError && /TimeoutError/.test(error.message));
    assert.ok(Date.now() - started < 900, "the adapter gave up at its timeout");
  });

  it("reports a refund whose answer cannot be trusted as processing, and the retry refunds once", async () => {
    for (const bad of [
      (body: string) => ({ body: body.replace(/"refund_fee":"[^"]+"/, '"refund_fee":"10.00"') }),
      (body: string) => ({ body: body.replace(/,"sign":"[^"]+"/, "") }),
      () => ({ status: 500, body: "" }),
      (body: string) => ({ body, delayMs: 1000 }),
    ]) {
      rewrite = bad;
      assert.deepEqual(await proxied.refund(refund("topup-4001", "refund-x", 250n)), { state: "processing" });
    }
    rewrite = () => ({ status: 503 });
    assert.deepEqual(await proxied.queryRefund("topup-4001", "refund-x"), { state: "processing" });
    assert.equal(simulator.order("topup-4001")?.refundedFen, 250n, "the first call did refund");
    rewrite = (body) => ({ body });
    assert.deepEqual(await proxied.refund(refund("topup-4001", "refund-x", 250n)), { state: "succeeded", refundFen: 250n });
    assert.equal(simulator.order("topup-4001")?.refundedFen, 250n, "once");
  });

  it("turns a forged refund refusal into neither success nor failure", async () => {
    rewrite = () => ({ body: signResponse("alipay.trade.refund", { code: "40004", msg: "Business Failed", sub_code: "ACQ.TRADE_NOT_EXIST" }, forger) });
    assert.deepEqual(await proxied.refund(refund("topup-4001", "refund-y", 100n)), { state: "processing" });
    rewrite = (body) => ({ body });
    assert.equal(simulator.order("topup-4001")?.refundedFen, 350n, "the refund happened; a 'failed' would invite a second one under a new id");
  });
});
