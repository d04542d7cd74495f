import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { describe, it } from "node:test";

import { generateWechatPaySimulatorKeys } from "../../../scripts/sandbox/wechatpay.ts";
import {
  KeyLoadError,
  apiV3KeyFrom,
  decryptResource,
  encryptResource,
  loadPrivateKey,
  loadPublicKey,
  parseAuthorization,
  randomNonce,
  responseMessage,
  signRequest,
  signResponse,
  verifyRequest,
  verifySignature,
} from "./signing.ts";

const keys = generateWechatPaySimulatorKeys();
const gatewayKey = createPrivateKey(keys.publicKeyPrivateKey);
const certificateKey = createPrivateKey(keys.certificatePrivateKey);
const platformKeys = new Map([
  [keys.publicKeyId, createPublicKey(gatewayKey)],
  [keys.certificateSerial, loadPublicKey(keys.certificate).key],
]);
const merchantKey = createPrivateKey(keys.merchantPrivateKey);
const NOW = 1_800_000_000;
const BODY = '{"code_url":"weixin://wxpay/bizpayurl?pr=abc","desc":"充值 100 元"}';

/** The Wechatpay-* headers of `body` in the shape verifySignature reads. */
function signed(body: string, { serial = keys.publicKeyId, privateKey = gatewayKey, timestamp = NOW } = {}) {
  const headers = signResponse(body, { privateKey, serial, timestamp });
  return {
    timestamp: headers["Wechatpay-Timestamp"],
    nonce: headers["Wechatpay-Nonce"],
    signature: headers["Wechatpay-Signature"],
    serial: headers["Wechatpay-Serial"],
    signatureType: headers["Wechatpay-Signature-Type"],
  };
}

function refusedWith(check: ReturnType<typeof verifySignature>, reason: RegExp, probe = false) {
  assert.equal(check.ok, false);
  if (!check.ok) {
    assert.match(check.reason, reason);
    assert.equal(check.probe, probe);
  }
}

describe("response and notification signatures", () => {
  it("signs `${timestamp}\\n${nonce}\\n${body}\\n`, and an empty body (204) as a bare final line", () => {
    assert.equal(responseMessage("1", "n", "{}").toString(), "1\nn\n{}\n");
    assert.equal(responseMessage("1", "n", "").toString(), "1\nn\n\n");
    assert.deepEqual(responseMessage("1", "n", Buffer.from([0xff, 0x00])), Buffer.from([0x31, 0x0a, 0x6e, 0x0a, 0xff, 0x00, 0x0a]));
  });

  it("accepts both key modes from one map: a PUB_KEY_ID public key and a platform certificate serial", () => {
    assert.deepEqual(verifySignature(signed(BODY), BODY, platformKeys, NOW), { ok: true, serial: keys.publicKeyId });
    const byCertificate = signed(BODY, { serial: keys.certificateSerial, privateKey: certificateKey });
    assert.deepEqual(verifySignature(byCertificate, Buffer.from(BODY), platformKeys, NOW), { ok: true, serial: keys.certificateSerial });
  });

  it("verifies the raw bytes: the same JSON re-serialised does not verify", () => {
    const pretty = JSON.stringify(JSON.parse(BODY), null, 1);
    refusedWith(verifySignature(signed(BODY), pretty, platformKeys, NOW), /does not verify/);
    assert.equal(verifySignature(signed(pretty), pretty, platformKeys, NOW).ok, true);
  });

  it("refuses a tampered body, and a signature by another key under a known serial", () => {
    refusedWith(verifySignature(signed(BODY), BODY.replace("100", "900"), platformKeys, NOW), /does not verify/);
    refusedWith(verifySignature(signed(BODY, { privateKey: certificateKey }), BODY, platformKeys, NOW), new RegExp(`does not verify with ${keys.publicKeyId}`));
    refusedWith(verifySignature(signed(BODY, { privateKey: merchantKey }), BODY, platformKeys, NOW), /does not verify/);
  });

  it("accepts a timestamp up to 300 s either way and refuses 301 s old or in the future", () => {
    for (const skew of [-300, -299, 0, 299, 300]) assert.equal(verifySignature(signed(BODY, { timestamp: NOW + skew }), BODY, platformKeys, NOW).ok, true, `skew ${skew}`);
    refusedWith(verifySignature(signed(BODY, { timestamp: NOW - 301 }), BODY, platformKeys, NOW), /301 s old/);
    refusedWith(verifySignature(signed(BODY, { timestamp: NOW + 301 }), BODY, platformKeys, NOW), /301 s in the future/);
    refusedWith(verifySignature({ ...signed(BODY), timestamp: "1.8e9" }, BODY, platformKeys, NOW), /not unix seconds/);
  });

  it("refuses an unknown serial without looking it up anywhere, including inherited object names", () => {
    for (const serial of ["PUB_KEY_ID_0000", "ABCDEF0123456789", "__proto__", "constructor"]) {
      refusedWith(verifySignature(signed(BODY, { serial }), BODY, platformKeys, NOW), /is not a configured platform certificate or public key/);
    }
  });

  it("defaults Wechatpay-Signature-Type when absent and refuses any other scheme", () => {
    assert.equal(verifySignature({ ...signed(BODY), signatureType: undefined }, BODY, platformKeys, NOW).ok, true);
    refusedWith(verifySignature({ ...signed(BODY), signatureType: "WECHATPAY2-SM2-WITH-SM3" }, BODY, platformKeys, NOW), /Signature-Type/);
  });

  it("flags WECHATPAY/SIGNTEST/ signatures as probes and refuses them", () => {
    const probe = { ...signed(BODY), signature: `WECHATPAY/SIGNTEST/${randomBytes(64).toString("base64")}` };
    refusedWith(verifySignature(probe, BODY, platformKeys, NOW), /SIGNTEST probe/, true);
  });

  it("names every missing header", () => {
    refusedWith(verifySignature({}, BODY, platformKeys, NOW), /missing Wechatpay-Timestamp, Wechatpay-Nonce, Wechatpay-Signature, Wechatpay-Serial/);
    refusedWith(verifySignature({ ...signed(BODY), nonce: "" }, BODY, platformKeys, NOW), /^missing Wechatpay-Nonce$/);
  });
});

describe("merchant request signing", () => {
  const merchant = { mchid: keys.mchid, serial: keys.merchantSerial, privateKey: merchantKey };
  const verifier = { mchid: keys.mchid, serial: keys.merchantSerial, publicKey: createPublicKey(merchantKey) };
  const request = { method: "POST", pathAndQuery: "/v3/pay/transactions/out-trade-no/order_0001/close", body: `{"mchid":"${keys.mchid}"}` };

  it("builds the APIv3 Authorization header, which the gateway side verifies", () => {
    const authorization = signRequest(request, merchant, { timestamp: NOW, nonce: "N0NCE" });
    assert.match(authorization, new RegExp(`^WECHATPAY2-SHA256-RSA2048 mchid="${keys.mchid}",nonce_str="N0NCE",signature="[A-Za-z0-9+/=]+",timestamp="${NOW}",serial_no="${keys.merchantSerial}"$`));
    assert.deepEqual(verifyRequest({ ...request, authorization }, verifier, NOW + 300), { ok: true });
  });

  it("refuses a request whose method, path, query or body differ from what was signed", () => {
    const authorization = signRequest(request, merchant, { timestamp: NOW });
    for (const changed of [{ method: "GET" }, { pathAndQuery: `${request.pathAndQuery}?x=1` }, { body: `{"mchid":"1900000000"}` }, { body: "" }]) {
      assert.deepEqual(verifyRequest({ ...request, ...changed, authorization }, verifier, NOW), { ok: false, reason: "signature in Authorization does not verify" });
    }
  });

  it("refuses another merchant, another serial, a stale timestamp and a malformed header", () => {
    const reason = (authorization: string | undefined, at = NOW) => {
      const check = verifyRequest({ ...request, authorization }, verifier, at);
      return check.ok ? "ok" : check.reason;
    };
    assert.match(reason(signRequest(request, { ...merchant, mchid: "1900000000" }, { timestamp: NOW })), /mchid/);
    assert.match(reason(signRequest(request, { ...merchant, serial: "ABCDEF0123456789" }, { timestamp: NOW })), /serial_no/);
    assert.match(reason(signRequest(request, merchant, { timestamp: NOW }), NOW + 301), /timestamp/);
    assert.match(reason(signRequest(request, { ...merchant, privateKey: gatewayKey }, { timestamp: NOW })), /does not verify/);
    assert.match(reason(undefined), /Authorization must be/);
    assert.match(reason(`Bearer x`), /Authorization must be/);
  });

  it("parses the header's fields in any order, and refuses duplicates, unknown or missing fields", () => {
    const fields = 'mchid="1",nonce_str="n",signature="s",timestamp="2",serial_no="AB"';
    assert.deepEqual(parseAuthorization(`WECHATPAY2-SHA256-RSA2048 serial_no="AB",timestamp="2",signature="s",nonce_str="n",mchid="1"`), { mchid: "1", nonce_str: "n", signature: "s", timestamp: "2", serial_no: "AB" });
    assert.ok(parseAuthorization(`WECHATPAY2-SHA256-RSA2048 ${fields}`));
    assert.equal(parseAuthorization(`WECHATPAY2-SHA256-RSA2048 ${fields},mchid="1"`), undefined);
    assert.equal(parseAuthorization(`WECHATPAY2-SHA256-RSA2048 ${fields},extra="1"`), undefined);
    assert.equal(parseAuthorization(`WECHATPAY2-SHA256-RSA2048 ${fields.replace(',serial_no="AB"', "")}`), undefined);
    assert.equal(parseAuthorization(`WECHATPAY2-SHA256-RSA2048 ${fields.replace('mchid="1"', 'mchid=""')}`), undefined);
  });
});

describe("AEAD_AES_256_GCM resources", () => {
  const apiV3Key = apiV3KeyFrom(keys.apiV3Key);
  const nonce = randomNonce(12);
  const plaintext = '{"out_trade_no":"order_0001","amount":{"total":100}}';
  const ciphertext = encryptResource(plaintext, apiV3Key, nonce, "transaction");

  it("decrypts what it encrypts, with a 16-byte tag appended", () => {
    assert.equal(Buffer.from(ciphertext, "base64").length, Buffer.byteLength(plaintext) + 16);
    assert.equal(decryptResource({ ciphertext, nonce, associated_data: "transaction" }, apiV3Key).toString(), plaintext);
  });

  it("checks the tag: any flipped bit, a wrong key, nonce or AAD, or a truncated tag throws", () => {
    const sealed = Buffer.from(ciphertext, "base64");
    for (const index of [0, 25, sealed.length - 16, sealed.length - 1]) {
      const flipped = Buffer.from(sealed);
      flipped[index] ^= 0x01;
      assert.throws(() => decryptResource({ ciphertext: flipped.toString("base64"), nonce, associated_data: "transaction" }, apiV3Key), /auth/i, `bit at ${index}`);
    }
    assert.throws(() => decryptResource({ ciphertext, nonce, associated_data: "transaction" }, apiV3KeyFrom(randomNonce(32))), /auth/i);
    assert.throws(() => decryptResource({ ciphertext, nonce: randomNonce(12), associated_data: "transaction" }, apiV3Key), /auth/i);
    assert.throws(() => decryptResource({ ciphertext, nonce, associated_data: "refund" }, apiV3Key), /auth/i);
    assert.throws(() => decryptResource({ ciphertext, nonce }, apiV3Key), /auth/i);
    assert.throws(() => decryptResource({ ciphertext: sealed.subarray(0, sealed.length - 4).toString("base64"), nonce, associated_data: "transaction" }, apiV3Key), /auth/i);
    assert.throws(() => decryptResource({ ciphertext: "AAAA", nonce, associated_data: "transaction" }, apiV3Key), /shorter than its tag/);
  });

  it("refuses a nonce that is not 12 bytes and an APIv3 key that is not 32 bytes", () => {
    assert.throws(() => decryptResource({ ciphertext, nonce: "short", associated_data: "transaction" }, apiV3Key), /12 bytes/);
    assert.throws(() => encryptResource(plaintext, apiV3Key, "0123456789abc", "transaction"), /12 bytes/);
    assert.throws(() => apiV3KeyFrom("x".repeat(31)), /32 bytes/);
    assert.throws(() => apiV3KeyFrom("é".repeat(32)), /32 bytes/);
  });
});

describe("key loading", () => {
  const publicPem = createPublicKey(gatewayKey).export({ type: "spki", format: "pem" }).toString();

  it("loads an SPKI public key, and a certificate with its serial in upper-case hex", () => {
    assert.equal(loadPublicKey(publicPem).certificateSerial, undefined);
    const loaded = loadPublicKey(keys.certificate);
    assert.equal(loaded.certificateSerial, keys.certificateSerial);
    assert.ok(loaded.key.equals(createPublicKey(certificateKey)));
  });

  it("loads a PKCS#8 private key and refuses PKCS#1, public keys, non-RSA and short RSA keys", () => {
    assert.ok(loadPrivateKey(keys.merchantPrivateKey).equals(merchantKey));
    const pkcs1 = merchantKey.export({ type: "pkcs1", format: "pem" }).toString();
    assert.throws(() => loadPrivateKey(pkcs1), /PKCS#8/);
    assert.throws(() => loadPrivateKey(publicPem), /PKCS#8/);
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    assert.throws(() => loadPrivateKey(ec.privateKey.export({ type: "pkcs8", format: "pem" }).toString()), /is a ec key, not RSA/);
    assert.throws(() => loadPublicKey(ec.publicKey.export({ type: "spki", format: "pem" }).toString()), /not RSA/);
    const short = generateKeyPairSync("rsa", { modulusLength: 1024 });
    assert.throws(() => loadPublicKey(short.publicKey.export({ type: "spki", format: "pem" }).toString()), /1024-bit RSA key; at least 2048/);
  });

  it("never puts key material in its errors", () => {
    // Half the base64 lines gone: the DER inside no longer parses.
    const truncated = (pem: string) => pem.split("\n").filter((_line, index, lines) => index === 0 || index > lines.length / 2).join("\n");
    const pkcs1 = merchantKey.export({ type: "pkcs1", format: "pem" }).toString();
    const attempts = [() => loadPrivateKey(truncated(keys.merchantPrivateKey)), () => loadPrivateKey(pkcs1), () => loadPublicKey(keys.merchantPrivateKey), () => loadPublicKey(truncated(keys.certificate))];
    for (const attempt of attempts) {
      assert.throws(attempt, (error: unknown) => error instanceof KeyLoadError && !/[A-Za-z0-9+/]{16}/.test(error.message));
    }
  });
});
