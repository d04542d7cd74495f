// Alipay notifications three ways: the simulator signs, alipay-sdk (an independent implementation)
// checks, and our verifier checks. Then every refusal of parseNotification, and the encodings it must accept.
import assert from "node:assert/strict";
import { sign as cryptoSign } from "node:crypto";
import { after, before, describe, it } from "node:test";

import { AlipaySdk } from "alipay-sdk";
import Fastify, { type FastifyInstance } from "fastify";
import iconv from "iconv-lite";

// alipay-sdk's own signing helpers: its package exports do not list util.js, so it is imported by path.
import { sign as sdkSignRequest, signatureV3 as sdkRsa2Sign } from "../../node_modules/alipay-sdk/dist/esm/util.js";
import { type AlipaySimulator, createAlipaySimulator } from "../../scripts/sandbox/alipay.ts";
import type { OutgoingNotification } from "../../scripts/sandbox/simulator.ts";
import { parseConfig } from "../../service/config.ts";
import { createAlipayGateway } from "../../service/gateways/alipay/adapter.ts";
import { alipayConfigSchema, alipayGatewayOptions } from "../../service/gateways/alipay/config.ts";
import { loadPrivateKey, notificationSignContent, parseForm, responseKey, signRequest, signResponse } from "../../service/gateways/alipay/signing.ts";
import { type GatewayNotification, NotificationRejected, type PaymentGateway } from "../../service/gateways/gateway.ts";

type Params = Record<string, string>;

const START = 1_750_000_000; // 2025-06-15 23:06:40 in Beijing
let clock = START;
const sent: OutgoingNotification[] = [];
let app: FastifyInstance;
let simulator: AlipaySimulator;
let gateway: PaymentGateway;
let sdk: AlipaySdk;
let env: Record<string, string>;
let gatewayKeyPem: string;
let otherKeyPem: string;

/** A fetch that answers from the simulator's routes in-process (the HTTP path is tested in alipayGateway.test.ts). */
function injectFetch(server: FastifyInstance): typeof fetch {
  return async (input, init) => {
    const url = new URL(String(input));
    const response = await server.inject({
      method: "POST",
      url: `${url.pathname}${url.search}`,
      headers: init?.headers as Record<string, string>,
      payload: init?.body as string,
    });
    return new Response(response.rawPayload, { status: response.statusCode });
  };
}

before(async () => {
  simulator = createAlipaySimulator({ baseUrl: "http://127.0.0.1:8790", delivery: { send: (notification) => sent.push(notification) }, now: () => clock });
  app = Fastify();
  await simulator.register(app);
  await app.ready();
  env = simulator.merchantEnvironment();
  const options = alipayGatewayOptions(parseConfig(alipayConfigSchema, env), { notifyUrl: "https://merchant.example/webhooks/alipay", fetch: injectFetch(app) });
  gateway = createAlipayGateway(options!);
  // The SDK needs an app key even to verify; the PKCS#8 PEM needs keyType, or it is re-wrapped as PKCS#1.
  sdk = new AlipaySdk({ appId: env.ALIPAY_APP_ID, privateKey: simulator.keys.appPrivateKey, keyType: "PKCS8", alipayPublicKey: env.ALIPAY_PUBLIC_KEY });
  gatewayKeyPem = simulator.keys.alipayPrivateKey;
  otherKeyPem = createAlipaySimulator({ baseUrl: "http://127.0.0.1:1", delivery: { send: () => {} } }).keys.alipayPrivateKey;
});
after(() => app?.close());

/** A notification request as the service's webhook route hands it over. */
function delivered(body: string | Buffer, contentType: string | string[] = "application/x-www-form-urlencoded; charset=utf-8") {
  return { headers: { "content-type": contentType }, rawBody: Buffer.isBuffer(body) ? body : Buffer.from(body) };
}

/** What a form parser (fastify, express) hands to alipay-sdk. */
const postData = (body: string) => Object.fromEntries(new URLSearchParams(body));

describe("simulator notifications, checked by alipay-sdk and by us", () => {
  const orderId = "topup-0001";
  let facts: GatewayNotification[];

  before(async () => {
    await gateway.createPayment({ orderId, amountFen: 1000n, currency: "CNY", subject: "FiatGas top-up 燃气 100%", expiresAt: START + 900 });
    simulator.pay(orderId);
    clock += 60;
    assert.deepEqual(await gateway.refund({ orderId, refundId: "refund-1", refundFen: 300n, totalFen: 1000n, currency: "CNY", reason: "partial" }), { state: "succeeded", refundFen: 300n });
    clock += 60;
    assert.deepEqual(await gateway.refund({ orderId, refundId: "refund-2", refundFen: 700n, totalFen: 1000n, currency: "CNY", reason: "the rest" }), { state: "succeeded", refundFen: 700n });
    assert.equal(sent.length, 3, "payment, partial refund, full refund");
    facts = sent.map((notification) => {
      const { headers, body } = notification.build();
      return gateway.parseNotification(delivered(body, headers["content-type"]), clock);
    });
  });

  it("alipay-sdk's checkNotifySignV2 accepts all three, and refuses them tampered", () => {
    for (const notification of sent) {
      const data = postData(notification.build().body);
      assert.equal(sdk.checkNotifySignV2(data), true, data.trade_status);
      assert.equal(sdk.checkNotifySignV2({ ...data, total_amount: "1000.00" }), false);
    }
  });

  it("our verifier accepts all three with the facts they carry", async () => {
    const paid = await gateway.queryPayment(orderId);
    assert.equal(paid.state, "closed", "a fully refunded trade queries as TRADE_CLOSED");
    const tradeNo = postData(sent[0].build().body).trade_no;
    assert.match(tradeNo, /^\d{28}$/);
    const common = { orderId, tradeNo, amountFen: 1000n, currency: "CNY" };
    assert.deepEqual(facts, [
      { kind: "payment", ...common, paidAt: START, refundedFen: 0n },
      { kind: "payment", ...common, paidAt: START, refundedFen: 300n, refundId: "refund-1" },
      { kind: "closed", ...common, refundedFen: 1000n, refundId: "refund-2" },
    ]);
  });

  it("sends what §6 asks: UTF-8 form with '+', no empty values, a stable notify_id, acknowledged by a bare success", () => {
    for (const notification of sent) {
      const first = notification.build();
      assert.deepEqual(notification.build(), first, "every attempt is the same message");
      assert.equal(first.headers["content-type"], "application/x-www-form-urlencoded; charset=utf-8");
      assert.match(first.body, /subject=FiatGas\+top-up\+%E7%87%83%E6%B0%94\+100%25/);
      const data = postData(first.body);
      assert.equal(notification.id, data.notify_id);
      assert.equal(notification.channel, "alipay");
      assert.equal(notification.url, "https://merchant.example/webhooks/alipay");
      assert.deepEqual(Object.entries(data).filter(([, value]) => value === ""), []);
      assert.equal(data.sign_type, "RSA2");
      assert.equal(notification.acknowledged(200, "success"), true);
      for (const [status, body] of [[200, "success\n"], [200, '"success"'], [200, "SUCCESS"], [200, ""], [500, "success"]] as const) {
        assert.equal(notification.acknowledged(status, body), false, `${status} ${JSON.stringify(body)}`);
      }
    }
    assert.equal(new Set(sent.map((notification) => notification.id)).size, 3, "each event has its own notify_id");
    const [, partial, full] = sent.map((notification) => postData(notification.build().body));
    assert.deepEqual([partial.trade_status, partial.refund_fee, partial.out_biz_no, partial.gmt_refund], ["TRADE_SUCCESS", "3.00", "refund-1", "2025-06-15 23:07:40.000"]);
    assert.deepEqual([full.trade_status, full.refund_fee, full.out_biz_no, full.gmt_close], ["TRADE_CLOSED", "10.00", "refund-2", "2025-06-15 23:08:40"]);
  });
});

describe("alipay-sdk agrees with our request and response signatures", () => {
  it("our signRequest gives alipay-sdk's sign for the same parameters", () => {
    const signed = sdkSignRequest("alipay.trade.query", { bizContent: { out_trade_no: "topup-0001" }, notify_url: "https://merchant.example/webhooks/alipay" }, sdk.config);
    const { sign, ...params } = signed as Params;
    assert.ok(params.sign_type === "RSA2" && params.biz_content === '{"out_trade_no":"topup-0001"}');
    assert.equal(signRequest(params, loadPrivateKey(simulator.keys.appPrivateKey)), sign);
  });

  it("alipay-sdk's checkResponseSign accepts the simulator's response signature, and refuses it tampered", () => {
    const method = "alipay.trade.precreate";
    const body = signResponse(method, { code: "10000", msg: "Success", out_trade_no: "topup-0001", qr_code: "https://qr.alipay.com/bax0" }, loadPrivateKey(gatewayKeyPem));
    const sign = (JSON.parse(body) as { sign: string }).sign;
    assert.doesNotThrow(() => sdk.checkResponseSign(body, responseKey(method), sign, "trace"));
    assert.throws(() => sdk.checkResponseSign(body.replace("topup-0001", "topup-0002"), responseKey(method), sign, "trace"), /验签失败/);
  });
});

describe("parseNotification", () => {
  /** A paid trade's notification parameters, before signing. */
  function paid(overrides: Params = {}): Params {
    return {
      notify_time: "2025-06-15 23:06:45",
      notify_type: "trade_status_sync",
      notify_id: "2025061500222230645012345678901234",
      app_id: env.ALIPAY_APP_ID,
      auth_app_id: env.ALIPAY_APP_ID,
      charset: "utf-8",
      version: "1.0",
      trade_no: "2025061522001412345678901234",
      out_trade_no: "topup-0009",
      buyer_id: "2088102122524333",
      seller_id: env.ALIPAY_SELLER_ID,
      trade_status: "TRADE_SUCCESS",
      total_amount: "20.00",
      receipt_amount: "20.00",
      subject: "gas top-up",
      gmt_create: "2025-06-15 23:06:00",
      gmt_payment: "2025-06-15 23:06:40",
      ...overrides,
    };
  }

  /** Signed as the Java SDK verifies: sign content without sign/sign_type/empties, RSA2 via alipay-sdk's primitive. */
  function signed(params: Params, keyPem = gatewayKeyPem): Params {
    return { ...params, sign: sdkRsa2Sign(notificationSignContent(params).toString("utf8"), keyPem), sign_type: "RSA2" };
  }

  const form = (params: Params) => new URLSearchParams(params).toString();
  const parse = (body: string | Buffer, contentType?: string | string[]) => gateway.parseNotification(delivered(body, contentType), clock);
  const payment = { kind: "payment", orderId: "topup-0009", tradeNo: "2025061522001412345678901234", amountFen: 2000n, currency: "CNY", paidAt: START, refundedFen: 0n };

  it("accepts a notification signed with alipay-sdk's own RSA2 primitive over the Java sign content", () => {
    const params = paid();
    const content = Object.keys(params)
      .sort()
      .map((name) => `${name}=${params[name]}`)
      .join("&");
    assert.equal(notificationSignContent(params).toString("utf8"), content);
    const body = form({ ...params, sign: sdkRsa2Sign(content, gatewayKeyPem), sign_type: "RSA2" });
    assert.deepEqual(parse(body), payment);
    assert.equal(sdk.checkNotifySignV2(postData(body)), true);
  });

  const refusals: [string, () => string | Buffer, RegExp][] = [
    [
      "a tampered amount",
      () => form({ ...signed(paid()), total_amount: "2000.00" }),
      /^notification signature does not verify/,
    ],
    ["a signature by another key", () => form(signed(paid(), otherKeyPem)), /^notification signature does not verify/],
    [
      "sign_type RSA (SHA1), which alipay-sdk trusts",
      () => {
        const params = paid();
        const sign = cryptoSign("sha1", notificationSignContent(params), loadPrivateKey(gatewayKeyPem)).toString("base64");
        assert.equal(sdk.checkNotifySignV2({ ...params, sign, sign_type: "RSA" }), true, "the SDK takes the algorithm from the message");
        return form({ ...params, sign, sign_type: "RSA" });
      },
      /^notification has sign_type "RSA" \(only RSA2 is accepted\)$/,
    ],
    [
      "a missing sign_type",
      () => {
        const { sign_type: _, ...rest } = signed(paid());
        return form(rest);
      },
      /^notification has no sign_type/,
    ],
    [
      "a missing sign",
      () => {
        const { sign: _, ...rest } = signed(paid());
        return form(rest);
      },
      /^notification has no sign$/,
    ],
    [
      "a signature that covers sign_type, which alipay-sdk also accepts",
      () => {
        const params = { ...paid(), sign_type: "RSA2" };
        const sign = sdkRsa2Sign(
          Object.keys(params)
            .sort()
            .map((name) => `${name}=${params[name as keyof typeof params]}`)
            .join("&"),
          gatewayKeyPem,
        );
        assert.equal(sdk.checkNotifySignV2({ ...params, sign }), true);
        return form({ ...params, sign });
      },
      /^notification signature does not verify/,
    ],
    [
      "an empty value signed the way alipay-sdk signs (as `body=`)",
      () => {
        const params = { ...paid(), body: "" };
        const content = Object.keys(params)
          .sort()
          .map((name) => `${name}=${params[name as keyof typeof params]}`)
          .join("&");
        return form({ ...params, sign: sdkRsa2Sign(content, gatewayKeyPem), sign_type: "RSA2" });
      },
      /^notification signature does not verify/,
    ],
    ["another app's app_id", () => form(signed(paid({ app_id: "2021000000000000" }))), new RegExp(`^notification app_id 2021000000000000 is not ours \\(${"\\d".repeat(16)}\\)$`)],
    ["another merchant's seller_id", () => form(signed(paid({ seller_id: "2088999999999999" }))), /^notification seller_id 2088999999999999 is not ours/],
    ["WAIT_BUYER_PAY", () => form(signed(paid({ trade_status: "WAIT_BUYER_PAY" }))), /^notification trade_status WAIT_BUYER_PAY is not a payment or a close$/],
    ["another notify_type", () => form(signed(paid({ notify_type: "fund_auth_unfreeze" }))), /^notification notify_type fund_auth_unfreeze is not trade_status_sync$/],
    ["a refund_fee above the total", () => form(signed(paid({ refund_fee: "20.01" }))), /^notification refund_fee 20.01 exceeds total_amount 20.00$/],
    ["an amount that is not yuan", () => form(signed(paid({ total_amount: "20.001" }))), /^notification total_amount: amount "20.001" is not a yuan amount/],
    ["an out_trade_no we never issue", () => form(signed(paid({ out_trade_no: "x" }))), /^notification out_trade_no "x" is not one of our order ids$/],
    [
      "a payment without gmt_payment",
      () => {
        const { gmt_payment: _, ...rest } = paid();
        return form(signed(rest));
      },
      /^notification has no gmt_payment$/,
    ],
    ["a malformed body", () => "app_id=1&total_amount=%zz", /^malformed form body: "%" at byte \d+ is not followed by two hex digits$/],
    ["a duplicate key after a good signature", () => `${form(signed(paid()))}&total_amount=2000.00`, /^malformed form body: duplicate parameter "total_amount"$/],
    ["an unknown charset", () => form(signed(paid({ charset: "big5" }))), /^unsupported charset "big5" in the charset parameter/],
    ["a JSON body", () => JSON.stringify(signed(paid())), /^malformed form body/],
    ["an empty body", () => "", /^notification has no sign_type/],
  ];

  for (const [name, body, message] of refusals) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => parse(body()),
        (error: unknown) => {
          assert.ok(error instanceof NotificationRejected, `${(error as Error).name}: ${(error as Error).message}`);
          assert.match(error.message, message);
          assert.equal(error.probe, false);
          return true;
        },
      );
    });
  }

  /** GBK: percent-encoded GBK bytes, signed over the GBK bytes of the sign content (what Alipay does for charset=gbk). */
  function gbkNotification(params: Params): string {
    const content = iconv.encode(notificationSignContent(params).toString("utf8"), "gbk");
    const all: Params = { ...params, sign: cryptoSign("sha256", content, loadPrivateKey(gatewayKeyPem)).toString("base64"), sign_type: "RSA2" };
    const encode = (text: string) =>
      [...iconv.encode(text, "gbk")].map((byte) => (byte === 0x20 ? "+" : /[A-Za-z0-9*._-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`)).join("");
    return Object.entries(all)
      .map(([name, value]) => `${name}=${encode(value)}`)
      .join("&");
  }

  it("accepts a GBK notification with a Chinese subject, whatever the Content-Type claims", () => {
    const body = gbkNotification(paid({ charset: "gbk", subject: "燃气充值 100%" }));
    assert.match(body, /subject=%C8%BC%C6%F8%B3%E4%D6%B5\+100%25/);
    for (const contentType of ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; text/html; charset=utf-8"]) {
      assert.deepEqual(parse(body, contentType), payment);
    }
    assert.equal(parseForm(body).params.get("subject"), "燃气充值 100%");
    assert.equal(sdk.checkNotifySignV2(postData(body)), false, "alipay-sdk hashes UTF-8 only (§3.1)");
  });

  it("refuses GBK bytes declared as UTF-8", () => {
    const body = gbkNotification(paid({ charset: "gbk", subject: "燃气充值" })).replace("charset=gbk", "charset=utf-8");
    assert.throws(() => parse(body), { name: "NotificationRejected", message: 'malformed form body: parameter "subject" is not valid utf-8' });
  });

  it("skips empty values as the Java SDK does", () => {
    const params = { ...paid(), body: "", passback_params: "" };
    assert.deepEqual(parse(form({ ...params, sign: sdkRsa2Sign(notificationSignContent(params).toString("utf8"), gatewayKeyPem), sign_type: "RSA2" })), payment);
  });

  it("decodes a bare % and a URL-encoded passback_params exactly once", () => {
    const params = paid({ subject: "100% gas refill", passback_params: "account%3D0xabc%26src%3Dweb" });
    const body = form(signed(params));
    assert.match(body, /passback_params=account%253D0xabc%2526src%253Dweb/);
    assert.deepEqual(parse(body), payment);
    assert.throws(() => sdk.checkNotifySign(postData(body)), URIError, "the legacy SDK check decodes twice and throws on the bare %");
  });

  it("reads TRADE_FINISHED as a payment and a timeout TRADE_CLOSED as a close without refund", () => {
    assert.deepEqual(parse(form(signed(paid({ trade_status: "TRADE_FINISHED" })))), payment);
    const { gmt_payment: _, ...unpaid } = paid({ trade_status: "TRADE_CLOSED", gmt_close: "2025-06-15 23:36:00" });
    assert.deepEqual(parse(form(signed(unpaid))), { kind: "closed", orderId: "topup-0009", tradeNo: "2025061522001412345678901234", amountFen: 2000n, currency: "CNY", refundedFen: 0n });
  });

  it("reads refund fields and takes the Content-Type header in any case or as a list", () => {
    const body = form(signed(paid({ refund_fee: "5.50", out_biz_no: "refund-7", gmt_refund: "2025-06-15 23:10:00.123" })));
    const expected = { ...payment, refundedFen: 550n, refundId: "refund-7" };
    assert.deepEqual(parse(body, ["application/x-www-form-urlencoded; charset=utf-8"]), expected);
    assert.deepEqual(gateway.parseNotification({ headers: { "Content-Type": "application/x-www-form-urlencoded" }, rawBody: Buffer.from(body) }, clock), expected);
  });
});
