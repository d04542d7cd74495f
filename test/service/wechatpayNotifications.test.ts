// parseNotification against notifications built with wechatpay-axios-plugin's primitives
// (Rsa.sign, Aes.AesGcm.encrypt), not our own signing code: the accept side for both key modes,
// and the reject side of every check.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";

import { Aes, Formatter, Rsa } from "wechatpay-axios-plugin";

import { generateWechatPaySimulatorKeys } from "../../scripts/sandbox/wechatpay.ts";
import { type GatewayNotification, NotificationRejected } from "../../service/gateways/gateway.ts";
import { createWechatPayGateway } from "../../service/gateways/wechatpay/adapter.ts";
import { wechatPayConfigSchema, wechatPayGatewayOptions } from "../../service/gateways/wechatpay/config.ts";

const keys = generateWechatPaySimulatorKeys();
const NOW = 1_800_000_000;
const PAID_AT = "2027-01-15T10:34:56+08:00";

// The gateway as the service builds it: from WECHATPAY_* settings holding both key modes in one map.
const gateway = createWechatPayGateway(
  wechatPayGatewayOptions(
    wechatPayConfigSchema.parse({
      WECHATPAY_MCHID: keys.mchid,
      WECHATPAY_APPID: keys.appid,
      WECHATPAY_MERCHANT_SERIAL: keys.merchantSerial,
      WECHATPAY_MERCHANT_PRIVATE_KEY: keys.merchantPrivateKey,
      WECHATPAY_APIV3_KEY: keys.apiV3Key,
      WECHATPAY_PLATFORM_KEYS: JSON.stringify({ [keys.publicKeyId]: Rsa.from(keys.publicKeyPrivateKey, Rsa.KEY_TYPE_PUBLIC).export({ type: "spki", format: "pem" }), [keys.certificateSerial]: keys.certificate }),
    }),
    { notifyUrl: "https://pay.example/webhooks/wechatpay" },
  )!,
);

const transaction = (change: Record<string, unknown> = {}) => ({
  mchid: keys.mchid,
  appid: keys.appid,
  out_trade_no: "topup_20270115_0001",
  transaction_id: "4200001234202701151234567890",
  trade_type: "NATIVE",
  trade_state: "SUCCESS",
  trade_state_desc: "支付成功",
  bank_type: "OTHERS",
  attach: "",
  success_time: PAID_AT,
  payer: { openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" },
  amount: { total: 1999, payer_total: 1999, currency: "CNY", payer_currency: "CNY" },
  ...change,
});

const refund = (status: "SUCCESS" | "ABNORMAL" | "CLOSED", change: Record<string, unknown> = {}) => ({
  mchid: keys.mchid,
  out_trade_no: "topup_20270115_0001",
  transaction_id: "4200001234202701151234567890",
  out_refund_no: "refund_0001",
  refund_id: "50000000382019052709732678859",
  refund_status: status,
  ...(status === "SUCCESS" ? { success_time: PAID_AT } : {}),
  user_received_account: "支付用户零钱",
  amount: { total: 1999, refund: 500, payer_total: 1999, payer_refund: 500 },
  ...change,
});

type Craft = {
  eventType?: string;
  resource?: object | string;
  originalType?: string;
  algorithm?: string;
  apiV3Key?: string;
  signWith?: { serial: string; privateKey: string };
  timestamp?: number;
  /** Changes the body after it is signed. */
  tamper?: (body: string) => string;
  /** Changes the resource's ciphertext before the body is signed. */
  corrupt?: (ciphertext: string) => string;
  headers?: Record<string, string | string[] | undefined>;
};

const byPublicKey = { serial: keys.publicKeyId, privateKey: keys.publicKeyPrivateKey };
const byCertificate = { serial: keys.certificateSerial, privateKey: keys.certificatePrivateKey };

/** A notification as WeChat sends it, built only with the plugin's primitives. */
function craft({
  eventType = "TRANSACTION.SUCCESS",
  resource = transaction(),
  originalType = eventType.startsWith("REFUND") ? "refund" : "transaction",
  algorithm = "AEAD_AES_256_GCM",
  apiV3Key = keys.apiV3Key,
  signWith = byPublicKey,
  timestamp = NOW,
  tamper = (body) => body,
  corrupt = (ciphertext) => ciphertext,
  headers = {},
}: Craft = {}) {
  const nonce = Formatter.nonce(12);
  const plaintext = typeof resource === "string" ? resource : JSON.stringify(resource);
  const ciphertext = corrupt(Aes.AesGcm.encrypt(plaintext, Buffer.from(apiV3Key), nonce, originalType));
  const body = JSON.stringify({
    id: "EV-2018022511223320873",
    create_time: "2027-01-15T10:34:57+08:00",
    resource_type: "encrypt-resource",
    event_type: eventType,
    summary: "支付成功",
    resource: { original_type: originalType, algorithm, ciphertext, associated_data: originalType, nonce },
  });
  const headerNonce = Formatter.nonce();
  const signature = Rsa.sign(Formatter.response(timestamp, headerNonce, body), Rsa.from(signWith.privateKey, Rsa.KEY_TYPE_PRIVATE));
  return {
    headers: {
      "wechatpay-timestamp": String(timestamp),
      "wechatpay-nonce": headerNonce,
      "wechatpay-signature": signature,
      "wechatpay-serial": signWith.serial,
      "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
      "content-type": "application/json",
      ...headers,
    },
    rawBody: Buffer.from(tamper(body)),
  };
}

function parse(request: ReturnType<typeof craft>, now = NOW): GatewayNotification {
  return gateway.parseNotification(request, now);
}

function refused(request: ReturnType<typeof craft>, message: RegExp, { now = NOW, probe = false } = {}) {
  assert.throws(
    () => parse(request, now),
    (error: unknown) => {
      assert.ok(error instanceof NotificationRejected, String(error));
      assert.match(error.message, message);
      assert.equal(error.probe, probe);
      return true;
    },
  );
}

const PAYMENT: GatewayNotification = {
  kind: "payment",
  orderId: "topup_20270115_0001",
  tradeNo: "4200001234202701151234567890",
  amountFen: 1999n,
  currency: "CNY",
  paidAt: Date.parse(PAID_AT) / 1000,
  refundedFen: 0n,
};

describe("WeChat Pay notifications: accepted", () => {
  it("reads TRANSACTION.SUCCESS signed with the WeChat Pay public key (PUB_KEY_ID) or the platform certificate", () => {
    assert.deepEqual(parse(craft({ signWith: byPublicKey })), PAYMENT);
    assert.deepEqual(parse(craft({ signWith: byCertificate })), PAYMENT);
  });

  it("reads REFUND.SUCCESS as succeeded and REFUND.ABNORMAL / REFUND.CLOSED as failed", () => {
    const base = { kind: "refund", orderId: "topup_20270115_0001", refundId: "refund_0001", refundFen: 500n, totalFen: 1999n };
    assert.deepEqual(parse(craft({ eventType: "REFUND.SUCCESS", resource: refund("SUCCESS") })), { ...base, status: "succeeded" });
    for (const status of ["ABNORMAL", "CLOSED"] as const) {
      const notification = parse(craft({ eventType: `REFUND.${status}`, resource: refund(status), signWith: byCertificate }));
      assert.deepEqual({ ...notification, reason: undefined }, { ...base, status: "failed", reason: undefined });
      assert.match((notification as { reason: string }).reason, new RegExp(`^${status}: `));
    }
  });

  it("accepts timestamps 299 s old or ahead, and a missing Wechatpay-Signature-Type (the default scheme)", () => {
    assert.deepEqual(parse(craft({ timestamp: NOW - 299 })), PAYMENT);
    assert.deepEqual(parse(craft({ timestamp: NOW + 299 })), PAYMENT);
    assert.deepEqual(parse(craft({ headers: { "wechatpay-signature-type": undefined } })), PAYMENT);
  });

  it("reads headers in any case, as a raw Node or fetch header record may hold them", () => {
    const { headers, rawBody } = craft();
    const upper = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.replace(/(^|-)([a-z])/g, (_m, dash: string, letter: string) => dash + letter.toUpperCase()), value]));
    assert.deepEqual(gateway.parseNotification({ headers: upper, rawBody }, NOW), PAYMENT);
  });
});

describe("WeChat Pay notifications: refused", () => {
  it("a body changed after signing, including the same JSON re-serialised", () => {
    refused(craft({ tamper: (body) => body.replace("支付成功", "支付失败") }), /signature does not verify/);
    refused(craft({ tamper: (body) => JSON.stringify(JSON.parse(body), null, 2) }), /signature does not verify/);
  });

  it("a bit-flipped ciphertext, even when the envelope is signed afterwards (the GCM tag catches it)", () => {
    const flip = (index: number) => (ciphertext: string) => {
      const bytes = Buffer.from(ciphertext, "base64");
      bytes[index < 0 ? bytes.length + index : index] ^= 0x04;
      return bytes.toString("base64");
    };
    for (const index of [0, 40, -1]) refused(craft({ corrupt: flip(index) }), /resource does not decrypt/);
  });

  it("a resource encrypted with another APIv3 key", () => {
    refused(craft({ apiV3Key: Formatter.nonce(32) }), /resource does not decrypt/);
  });

  it("a signature by another key under a configured serial, and an unknown serial", () => {
    const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    refused(craft({ signWith: { serial: keys.publicKeyId, privateKey: stranger } }), new RegExp(`signature does not verify with ${keys.publicKeyId}`));
    refused(craft({ signWith: { serial: keys.certificateSerial, privateKey: keys.publicKeyPrivateKey } }), /signature does not verify/);
    refused(craft({ signWith: { serial: "PUB_KEY_ID_0000000000000000000000000000", privateKey: stranger } }), /Wechatpay-Serial "PUB_KEY_ID_0+" is not a configured/);
    refused(craft({ signWith: { serial: keys.merchantSerial, privateKey: keys.merchantPrivateKey } }), /is not a configured/);
  });

  it("a timestamp 301 s old or 301 s in the future", () => {
    refused(craft({ timestamp: NOW - 301 }), /301 s old/);
    refused(craft({ timestamp: NOW + 301 }), /301 s in the future/);
    refused(craft(), /301 s old/, { now: NOW + 301 });
  });

  it("a WECHATPAY/SIGNTEST/ probe, flagged as a probe", () => {
    const probe = craft({ headers: { "wechatpay-signature": `WECHATPAY/SIGNTEST/${Rsa.sign("probe", Rsa.from(keys.publicKeyPrivateKey, Rsa.KEY_TYPE_PRIVATE))}` } });
    refused(probe, /SIGNTEST probe/, { probe: true });
  });

  it("another merchant's mchid or appid, on payments and refunds", () => {
    refused(craft({ resource: transaction({ mchid: "1900000109" }) }), /transaction mchid 1900000109 is not ours/);
    refused(craft({ resource: transaction({ appid: "wxd678efh567hg6787" }) }), /transaction appid wxd678efh567hg6787 is not ours/);
    refused(craft({ eventType: "REFUND.SUCCESS", resource: refund("SUCCESS", { mchid: "1900000109" }) }), /refund mchid 1900000109 is not ours/);
  });

  it("an event type we do not handle, and a resource that does not fit its event", () => {
    refused(craft({ eventType: "TRANSACTION.CLOSED" }), /event_type "TRANSACTION.CLOSED" is not one we handle/);
    refused(craft({ eventType: "PROFITSHARING.SUCCESS" }), /is not one we handle/);
    refused(craft({ eventType: "__proto__" }), /is not one we handle/);
    refused(craft({ eventType: "REFUND.SUCCESS", resource: refund("SUCCESS"), originalType: "transaction" }), /carries a "transaction" resource, not refund/);
    refused(craft({ eventType: "REFUND.SUCCESS", resource: refund("ABNORMAL") }), /REFUND.SUCCESS with refund_status ABNORMAL/);
    refused(craft({ resource: transaction({ trade_state: "NOTPAY" }) }), /TRANSACTION.SUCCESS with trade_state NOTPAY/);
  });

  it("another encryption algorithm", () => {
    refused(craft({ algorithm: "AEAD_SM4_GCM" }), /resource algorithm "AEAD_SM4_GCM" is not AEAD_AES_256_GCM/);
  });

  it("each missing signature header, an unknown signature type, and a repeated header", () => {
    for (const name of ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"]) {
      refused(craft({ headers: { [name.toLowerCase()]: undefined } }), new RegExp(`missing ${name}$`));
    }
    refused(craft({ headers: { "wechatpay-signature-type": "WECHATPAY2-SM2-WITH-SM3" } }), /Signature-Type "WECHATPAY2-SM2-WITH-SM3" is not WECHATPAY2-SHA256-RSA2048/);
    refused(craft({ headers: { "wechatpay-serial": [keys.publicKeyId, keys.certificateSerial] } }), /wechatpay-serial appears more than once/);
  });

  it("decrypted content that is not a valid resource: money as a string or a float, a bad time, not JSON", () => {
    refused(craft({ resource: transaction({ amount: { total: "1999", currency: "CNY" } }) }), /transaction resource is malformed: amount.total/);
    refused(craft({ resource: transaction({ amount: { total: 19.99, currency: "CNY" } }) }), /transaction resource is malformed: amount.total/);
    refused(craft({ resource: transaction({ success_time: "2027-01-15 10:34:56" }) }), /success_time: must be an RFC 3339/);
    refused(craft({ resource: "not json" }), /decrypted resource is not UTF-8 JSON/);
    refused(craft({ tamper: () => "not json" }), /signature does not verify/);
  });
});
