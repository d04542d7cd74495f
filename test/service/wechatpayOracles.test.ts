// wechatpay-axios-plugin as an independent oracle for the simulator: its primitives accept every
// notification the simulator sends (which our parser accepts too), and its Wechatpay client,
// signing its own requests, verifies the simulator's responses: 200, 204 and 404.
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { type AddressInfo } from "node:net";
import { createServer } from "node:http";
import { after, before, describe, it } from "node:test";

import Fastify from "fastify";
import { Aes, Formatter, Rsa, Wechatpay } from "wechatpay-axios-plugin";

import { type OutgoingNotification } from "../../scripts/sandbox/simulator.ts";
import { type WechatPaySimulatorOptions, createWechatPaySimulator, generateWechatPaySimulatorKeys } from "../../scripts/sandbox/wechatpay.ts";
import { NotificationRejected } from "../../service/gateways/gateway.ts";
import { createWechatPayGateway } from "../../service/gateways/wechatpay/adapter.ts";
import { wechatPayConfigSchema, wechatPayGatewayOptions } from "../../service/gateways/wechatpay/config.ts";

const keys = generateWechatPaySimulatorKeys();
const publicKeyPem = createPublicKey(createPrivateKey(keys.publicKeyPrivateKey)).export({ type: "spki", format: "pem" }).toString();
/** What the plugin verifies with, by serial: both key modes. */
const certs = { [keys.publicKeyId]: Rsa.from(publicKeyPem, Rsa.KEY_TYPE_PUBLIC), [keys.certificateSerial]: Rsa.from(keys.certificate, Rsa.KEY_TYPE_PUBLIC) };
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
  const close = async () => {
    await app.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return { baseUrl, simulator, sent, close };
}

type Sandbox = Awaited<ReturnType<typeof startSandbox>>;

function header(headers: Record<string, string>, name: string): string {
  const value = headers[name];
  assert.ok(value, `${name} is set`);
  return value;
}

describe("the simulator's notifications, checked by wechatpay-axios-plugin", () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await startSandbox({ rotate: true, refundSettlement: "manual" });
  });
  after(() => sandbox.close());

  it("verify with Rsa.verify over Formatter.joinedByLineFeed, decrypt with AesGcm.decrypt, and parse with our adapter", async () => {
    const { simulator, sent } = sandbox;
    const gateway = createWechatPayGateway(wechatPayGatewayOptions(wechatPayConfigSchema.parse(simulator.merchantEnvironment()), { notifyUrl: "http://127.0.0.1:9/webhooks/wechatpay" })!);
    await gateway.createPayment({ orderId: "oracle_0001", amountFen: 2500n, currency: "CNY", subject: "Gas top-up", expiresAt: now() + 900 });
    simulator.pay("oracle_0001");
    await gateway.refund({ orderId: "oracle_0001", refundId: "oracle_refund_1", refundFen: 500n, totalFen: 2500n, currency: "CNY", reason: "requested" });
    simulator.settleRefund("oracle_refund_1", "SUCCESS");
    await gateway.refund({ orderId: "oracle_0001", refundId: "oracle_refund_2", refundFen: 300n, totalFen: 2500n, currency: "CNY", reason: "requested" });
    simulator.settleRefund("oracle_refund_2", "ABNORMAL");
    simulator.refundFromConsole("oracle_0001", 200n);
    assert.deepEqual(
      sent.map((notification) => JSON.parse(notification.build().body).event_type),
      ["TRANSACTION.SUCCESS", "REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.SUCCESS"],
    );

    const serials = new Set<string>();
    for (const notification of sent) {
      for (let attempt = 0; attempt < 2; attempt++) {
        const { headers, body } = notification.build();
        const [timestamp, nonce, signature, serial] = ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"].map((name) => header(headers, name));
        serials.add(serial);
        assert.equal(Formatter.joinedByLineFeed(timestamp, nonce, body), Formatter.response(timestamp, nonce, body));
        assert.equal(Rsa.verify(Formatter.joinedByLineFeed(timestamp, nonce, body), signature, certs[serial]), true, `${notification.id} via ${serial}`);
        assert.ok(Math.abs(now() - Number(timestamp)) <= 1);

        const envelope = JSON.parse(body);
        assert.equal(JSON.stringify(envelope), body, "compact JSON");
        const { resource } = envelope;
        assert.equal(resource.algorithm, "AEAD_AES_256_GCM");
        assert.equal(resource.nonce.length, 12);
        assert.equal(resource.associated_data, envelope.event_type.startsWith("REFUND") ? "refund" : "transaction");
        // The argument order is (ciphertext, key, iv, aad): the TRANSACTION.SUCCESS doc page has it wrong.
        const content = JSON.parse(Aes.AesGcm.decrypt(resource.ciphertext, Buffer.from(keys.apiV3Key), resource.nonce, resource.associated_data));
        assert.equal(content.mchid, keys.mchid);
        assert.equal(content.out_trade_no, "oracle_0001");

        const parsed = gateway.parseNotification({ headers, rawBody: Buffer.from(body) }, now());
        assert.equal(parsed.orderId, "oracle_0001");
        if (parsed.kind === "payment") assert.equal(parsed.amountFen, 2500n);
      }
    }
    assert.deepEqual([...serials].sort(), [keys.certificateSerial, keys.publicKeyId].sort(), "rotation signs with both keys");
  });

  it("sign each attempt afresh, keep the body, send probes the plugin rejects, and count only 200/204 as acknowledged", async () => {
    const { simulator, sent } = sandbox;
    const gateway = createWechatPayGateway(wechatPayGatewayOptions(wechatPayConfigSchema.parse(simulator.merchantEnvironment()), { notifyUrl: "http://127.0.0.1:9/webhooks/wechatpay" })!);
    const notification = sent[0];
    const [first, second] = [notification.build(), notification.build()];
    assert.equal(first.body, second.body);
    assert.notEqual(first.headers["Wechatpay-Nonce"], second.headers["Wechatpay-Nonce"]);
    assert.notEqual(first.headers["Wechatpay-Signature"], second.headers["Wechatpay-Signature"]);

    const probe = notification.buildProbe!();
    assert.equal(probe.body, first.body);
    assert.match(probe.headers["Wechatpay-Signature"], /^WECHATPAY\/SIGNTEST\//);
    const serial = probe.headers["Wechatpay-Serial"];
    assert.equal(Rsa.verify(Formatter.response(probe.headers["Wechatpay-Timestamp"], probe.headers["Wechatpay-Nonce"], probe.body), probe.headers["Wechatpay-Signature"], certs[serial]), false);
    assert.throws(() => gateway.parseNotification({ headers: probe.headers, rawBody: Buffer.from(probe.body) }, now()), (error: unknown) => error instanceof NotificationRejected && error.probe);

    assert.deepEqual([200, 204, 201, 400, 500].map((status) => notification.acknowledged(status, "")), [true, true, false, false, false]);
  });
});

describe("the simulator's API, called by the wechatpay-axios-plugin client", () => {
  let sandbox: Sandbox;
  let wxpay: Wechatpay;
  before(async () => {
    sandbox = await startSandbox({ rotate: true });
    wxpay = new Wechatpay({ mchid: keys.mchid, serial: keys.merchantSerial, privateKey: keys.merchantPrivateKey, certs, baseURL: `${sandbox.baseUrl}/wechatpay/` });
  });
  after(() => sandbox.close());

  it("accepts the plugin's signed requests and answers with responses it verifies: 200, 204 and 404", async () => {
    const created = await wxpay.v3.pay.transactions.native.post({
      appid: keys.appid,
      mchid: keys.mchid,
      description: "Gas top-up 充值",
      out_trade_no: "plugin_0001",
      notify_url: "https://pay.example/webhooks/wechatpay",
      amount: { total: 100, currency: "CNY" },
    });
    assert.equal(created.status, 200);
    assert.equal((created.data as unknown as { code_url: string }).code_url, `${sandbox.baseUrl}/cashier/wechatpay/plugin_0001`);

    const queried = await wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.get({ params: { mchid: keys.mchid }, out_trade_no: "plugin_0001" });
    assert.equal(queried.status, 200);
    assert.equal(queried.data.trade_state, "NOTPAY");

    const closed = await wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.close.post({ mchid: keys.mchid }, { out_trade_no: "plugin_0001" });
    assert.equal(closed.status, 204);
    assert.equal(closed.data, "");

    // validateStatus: the plugin verifies only responses its validateStatus accepts.
    const unknown = await wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.get({ params: { mchid: keys.mchid }, out_trade_no: "plugin_none", validateStatus: () => true });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.data.code, "ORDER_NOT_EXIST");
    const noRefund = await wxpay.v3.refund.domestic.refunds._out_refund_no_.get({ out_refund_no: "plugin_refund_none", validateStatus: () => true });
    assert.equal(noRefund.status, 404);
    assert.equal(noRefund.data.code, "RESOURCE_NOT_EXISTS");
  });

  it("is refused by the plugin when it holds another key under the simulator's serial (the check is live)", async () => {
    const impostor = Rsa.from(keys.merchantPrivateKey, Rsa.KEY_TYPE_PUBLIC);
    const strict = new Wechatpay({ mchid: keys.mchid, serial: keys.merchantSerial, privateKey: keys.merchantPrivateKey, certs: { [keys.publicKeyId]: impostor, [keys.certificateSerial]: impostor }, baseURL: `${sandbox.baseUrl}/wechatpay/` });
    for (const attempt of [
      () => strict.v3.pay.transactions.outTradeNo._out_trade_no_.get({ params: { mchid: keys.mchid }, out_trade_no: "plugin_none", validateStatus: () => true }),
      () => strict.v3.pay.transactions.outTradeNo._out_trade_no_.close.post({ mchid: keys.mchid }, { out_trade_no: "plugin_none", validateStatus: () => true }),
    ]) {
      await assert.rejects(attempt(), (error: { code?: string }) => error.code === "EV3_RES_HEADER_SIGNATURE_DIGEST");
    }
  });
});
