import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";

import { generateWechatPaySimulatorKeys } from "../../../scripts/sandbox/wechatpay.ts";
import { ConfigError, parseConfig } from "../../config.ts";
import { WECHATPAY_API_URL } from "./adapter.ts";
import { REQUIRED_WECHATPAY_SETTINGS, wechatPayConfigSchema, wechatPayEnabled, wechatPayGatewayOptions } from "./config.ts";

const keys = generateWechatPaySimulatorKeys();
const publicKeyPem = createPublicKey(createPrivateKey(keys.publicKeyPrivateKey)).export({ type: "spki", format: "pem" }).toString();
const ENV = {
  WECHATPAY_MCHID: keys.mchid,
  WECHATPAY_APPID: keys.appid,
  WECHATPAY_MERCHANT_SERIAL: keys.merchantSerial,
  WECHATPAY_MERCHANT_PRIVATE_KEY: keys.merchantPrivateKey,
  WECHATPAY_APIV3_KEY: keys.apiV3Key,
  WECHATPAY_PLATFORM_KEYS: JSON.stringify({ [keys.publicKeyId]: publicKeyPem, [keys.certificateSerial]: keys.certificate }),
};
/** Whether `text` holds 20 characters in a row of any PEM body here (a piece of a key). */
function leaksKeyMaterial(text: string, ...extraPems: string[]): boolean {
  const pems = [keys.merchantPrivateKey, keys.publicKeyPrivateKey, keys.certificatePrivateKey, keys.certificate, publicKeyPem, ...extraPems];
  const lines = pems.flatMap((pem) => pem.split("\n").filter((line) => line && !line.startsWith("-----")));
  return lines.some((line) => [0, 20, 40].some((start) => line.length >= start + 20 && text.includes(line.slice(start, start + 20))));
}

function problems(env: Record<string, string | undefined>): string[] {
  try {
    parseConfig(wechatPayConfigSchema, env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail("expected a ConfigError");
}

describe("WeChat Pay settings", () => {
  it("leaves the channel off when no WECHATPAY_* is set, or only blank ones", () => {
    for (const env of [{}, { WECHATPAY_MCHID: "", WECHATPAY_APIV3_KEY: "  " }]) {
      const config = parseConfig(wechatPayConfigSchema, env);
      assert.equal(wechatPayEnabled(config), false);
      assert.equal(wechatPayGatewayOptions(config, { notifyUrl: "https://pay.example/webhooks/wechatpay" }), undefined);
    }
  });

  it("turns the full set into adapter options: KeyObjects, both key modes in one map, the default API URL", () => {
    const config = parseConfig(wechatPayConfigSchema, ENV);
    const options = wechatPayGatewayOptions(config, { notifyUrl: "https://pay.example/webhooks/wechatpay", timeoutMs: 5_000 })!;
    assert.equal(options.mchid, keys.mchid);
    assert.equal(options.appid, keys.appid);
    assert.equal(options.merchantSerial, keys.merchantSerial);
    assert.equal(options.apiUrl, WECHATPAY_API_URL);
    assert.equal(options.notifyUrl, "https://pay.example/webhooks/wechatpay");
    assert.equal(options.timeoutMs, 5_000);
    assert.ok(options.merchantPrivateKey.equals(createPrivateKey(keys.merchantPrivateKey)));
    assert.deepEqual([...options.platformKeys.keys()].sort(), [keys.certificateSerial, keys.publicKeyId].sort());
    assert.ok(options.platformKeys.get(keys.publicKeyId)!.equals(createPublicKey(publicKeyPem)));
    assert.ok(options.platformKeys.get(keys.certificateSerial)!.equals(createPublicKey(createPrivateKey(keys.certificatePrivateKey))));
    // Logged or serialised, the parsed config shows no secret.
    assert.doesNotMatch(JSON.stringify(config) + JSON.stringify(options), new RegExp(keys.apiV3Key));
    assert.equal(leaksKeyMaterial(JSON.stringify(ENV)), true, "the detector sees keys in the raw environment");
    assert.equal(leaksKeyMaterial(JSON.stringify(config)), false);
  });

  it("reads PEMs written on one line with \\n escapes, lower-case serials, and a sandbox API URL", () => {
    const config = parseConfig(wechatPayConfigSchema, {
      ...ENV,
      WECHATPAY_MERCHANT_SERIAL: keys.merchantSerial.toLowerCase(),
      WECHATPAY_MERCHANT_PRIVATE_KEY: keys.merchantPrivateKey.replaceAll("\n", "\\n"),
      WECHATPAY_PLATFORM_KEYS: JSON.stringify({ [keys.certificateSerial.toLowerCase()]: keys.certificate }),
      WECHATPAY_API_URL: "http://127.0.0.1:8788/wechatpay/",
    });
    const options = wechatPayGatewayOptions(config, { notifyUrl: "http://127.0.0.1:8787/webhooks/wechatpay" })!;
    assert.equal(options.merchantSerial, keys.merchantSerial);
    assert.deepEqual([...options.platformKeys.keys()], [keys.certificateSerial]);
    assert.equal(options.apiUrl, "http://127.0.0.1:8788/wechatpay");
  });

  it("refuses a partial set, naming each missing setting", () => {
    const found = problems({ WECHATPAY_MCHID: keys.mchid, WECHATPAY_APIV3_KEY: keys.apiV3Key });
    const missing = REQUIRED_WECHATPAY_SETTINGS.filter((name) => name !== "WECHATPAY_MCHID" && name !== "WECHATPAY_APIV3_KEY");
    assert.deepEqual(found.map((problem) => problem.split(" ")[0]), missing);
    assert.match(found[0], /is required to enable WeChat Pay \(set: WECHATPAY_MCHID, WECHATPAY_APIV3_KEY\)/);
    assert.deepEqual(problems({ WECHATPAY_API_URL: "https://api.mch.weixin.qq.com" }).length, REQUIRED_WECHATPAY_SETTINGS.length);
  });

  it("names a bad value once, not again as missing, alongside the missing ones", () => {
    const found = problems({ ...ENV, WECHATPAY_APPID: undefined, WECHATPAY_APIV3_KEY: "too-short" });
    assert.equal(found.length, 2);
    assert.match(found.find((problem) => problem.startsWith("WECHATPAY_APIV3_KEY"))!, /must be the 32-character APIv3 key/);
    assert.match(found.find((problem) => problem.startsWith("WECHATPAY_APPID"))!, /is required/);
  });

  it("refuses malformed ids and keys with a message naming the variable and holding no key material", () => {
    const rsa1024 = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const cases: [Record<string, string>, RegExp][] = [
      [{ WECHATPAY_MCHID: "19x" }, /^WECHATPAY_MCHID must be the merchant id/],
      [{ WECHATPAY_APPID: "wx123" }, /^WECHATPAY_APPID must be/],
      [{ WECHATPAY_MERCHANT_SERIAL: "not-hex" }, /^WECHATPAY_MERCHANT_SERIAL must be/],
      [{ WECHATPAY_MERCHANT_PRIVATE_KEY: keys.merchantPrivateKey.replace("BEGIN PRIVATE", "BEGIN RSA PRIVATE").replace("END PRIVATE", "END RSA PRIVATE") }, /^WECHATPAY_MERCHANT_PRIVATE_KEY is not a PKCS#8 PEM/],
      [{ WECHATPAY_MERCHANT_PRIVATE_KEY: keys.merchantPrivateKey.replace(/\n[^\n]+\n/, "\n") }, /^WECHATPAY_MERCHANT_PRIVATE_KEY does not parse/],
      [{ WECHATPAY_MERCHANT_PRIVATE_KEY: rsa1024 }, /^WECHATPAY_MERCHANT_PRIVATE_KEY is a 1024-bit RSA key/],
      [{ WECHATPAY_APIV3_KEY: `${keys.apiV3Key}x` }, /^WECHATPAY_APIV3_KEY must be the 32-character/],
      [{ WECHATPAY_API_URL: "ftp://api.mch.weixin.qq.com" }, /^WECHATPAY_API_URL must be an http\(s\) URL/],
      [{ WECHATPAY_API_URL: "https://api.mch.weixin.qq.com/?x=1" }, /^WECHATPAY_API_URL must be/],
    ];
    for (const [change, message] of cases) {
      const found = problems({ ...ENV, ...change });
      assert.equal(found.length, 1, JSON.stringify(found));
      assert.match(found[0], message);
      assert.equal(leaksKeyMaterial(found[0], rsa1024), false);
    }
  });

  it("refuses WECHATPAY_PLATFORM_KEYS that is not a JSON object of known ids to matching PEMs", () => {
    const cases: [string, RegExp][] = [
      [`{"${keys.publicKeyId}": ${JSON.stringify(publicKeyPem)}`, /must be a JSON object .*; it is not valid JSON$/],
      [JSON.stringify([publicKeyPem]), /with at least one key$/],
      ["{}", /with at least one key$/],
      [JSON.stringify({ "my-key": publicKeyPem }), /key "my-key" must be a PUB_KEY_ID_… id or a platform certificate serial/],
      [JSON.stringify({ [keys.publicKeyId]: 42 }), new RegExp(`${keys.publicKeyId} must map to a PEM string`)],
      [JSON.stringify({ [keys.publicKeyId]: keys.certificate }), /must map to the WeChat Pay public key .*, not a certificate/],
      [JSON.stringify({ ABCDEF0123456789: keys.certificate }), new RegExp(`ABCDEF0123456789 maps to a certificate whose serial is ${keys.certificateSerial}`)],
      [JSON.stringify({ [keys.publicKeyId]: keys.publicKeyPrivateKey }), /is not a PEM public key .* or certificate/],
      [JSON.stringify({ [keys.certificateSerial]: keys.certificate, [keys.certificateSerial.toLowerCase()]: keys.certificate }), /appears twice/],
      [JSON.stringify({ [keys.merchantSerial]: createPublicKey(createPrivateKey(keys.merchantPrivateKey)).export({ type: "spki", format: "pem" }) }), /must not hold the merchant's own certificate serial/],
    ];
    for (const [value, message] of cases) {
      const found = problems({ ...ENV, WECHATPAY_PLATFORM_KEYS: value });
      assert.equal(found.length, 1, JSON.stringify(found));
      assert.match(found[0], /^WECHATPAY_PLATFORM_KEYS /);
      assert.match(found[0], message);
      assert.equal(leaksKeyMaterial(found[0]), false);
    }
  });
});
