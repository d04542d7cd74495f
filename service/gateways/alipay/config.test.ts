import assert from "node:assert/strict";
import { generateKeyPairSync, KeyObject } from "node:crypto";
import { describe, it } from "node:test";

import { ConfigError, parseConfig } from "../../config.ts";
import { z } from "zod";

import { ALIPAY_REFINE_OPTIONS, alipayConfigFields, alipayConfigSchema, alipayEnabled, alipayGatewayOptions, checkAlipayConfig, DEFAULT_ALIPAY_GATEWAY_URL } from "./config.ts";

const app = generateKeyPairSync("rsa", { modulusLength: 2048 });
const gateway = generateKeyPairSync("rsa", { modulusLength: 2048 });
const appKeyBare = app.privateKey.export({ format: "der", type: "pkcs8" }).toString("base64");
const appKeyPem = app.privateKey.export({ format: "pem", type: "pkcs1" }).toString();
const gatewayKeyBare = gateway.publicKey.export({ format: "der", type: "spki" }).toString("base64");

const FULL = {
  ALIPAY_APP_ID: "2021000122671080",
  ALIPAY_APP_PRIVATE_KEY: appKeyBare,
  ALIPAY_PUBLIC_KEY: gatewayKeyBare,
  ALIPAY_SELLER_ID: "2088102147948060",
};

/** The messages of a rejected env, as ConfigError lists them. */
function problems(env: Record<string, string>): string[] {
  try {
    parseConfig(alipayConfigSchema, env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail(`expected ${Object.keys(env).join(", ")} to be rejected`);
}

describe("alipayConfigSchema", () => {
  it("leaves the channel off when nothing is set, or only blanks", () => {
    for (const env of [{}, { ALIPAY_APP_ID: "", ALIPAY_APP_PRIVATE_KEY: "  ", ALIPAY_GATEWAY_URL: "" }]) {
      const config = parseConfig(alipayConfigSchema, env);
      assert.equal(alipayEnabled(config), false);
      assert.equal(config.ALIPAY_GATEWAY_URL, DEFAULT_ALIPAY_GATEWAY_URL);
      assert.equal(alipayGatewayOptions(config, { notifyUrl: "https://pay.example/webhooks/alipay" }), undefined);
    }
  });

  it("parses a complete set into KeyObjects and the adapter's options", () => {
    const config = parseConfig(alipayConfigSchema, { ...FULL, ALIPAY_APP_PRIVATE_KEY: appKeyPem.replaceAll("\n", "\\n"), ALIPAY_GATEWAY_URL: "https://openapi-sandbox.dl.alipaydev.com/gateway.do" });
    assert.equal(alipayEnabled(config), true);
    assert.ok(config.ALIPAY_APP_PRIVATE_KEY instanceof KeyObject && config.ALIPAY_APP_PRIVATE_KEY.equals(app.privateKey));
    assert.ok(config.ALIPAY_PUBLIC_KEY instanceof KeyObject && config.ALIPAY_PUBLIC_KEY.equals(gateway.publicKey));
    assert.ok(!JSON.stringify(config).includes(appKeyBare.slice(40, 80)), "serialising the config shows no key material");
    const options = alipayGatewayOptions(config, { notifyUrl: "https://pay.example/webhooks/alipay", timeoutMs: 5000 });
    assert.deepEqual(options, {
      appId: FULL.ALIPAY_APP_ID,
      appPrivateKey: config.ALIPAY_APP_PRIVATE_KEY,
      alipayPublicKey: config.ALIPAY_PUBLIC_KEY,
      sellerId: FULL.ALIPAY_SELLER_ID,
      gatewayUrl: "https://openapi-sandbox.dl.alipaydev.com/gateway.do",
      notifyUrl: "https://pay.example/webhooks/alipay",
      timeoutMs: 5000,
    });
  });

  it("names every missing setting of a partial set", () => {
    assert.deepEqual(
      problems({ ALIPAY_APP_ID: FULL.ALIPAY_APP_ID, ALIPAY_PUBLIC_KEY: FULL.ALIPAY_PUBLIC_KEY }).map((problem) => problem.split(" ")[0]),
      ["ALIPAY_APP_PRIVATE_KEY", "ALIPAY_SELLER_ID"],
    );
    assert.match(problems({ ALIPAY_SELLER_ID: FULL.ALIPAY_SELLER_ID })[0], /^ALIPAY_APP_ID is required when the Alipay channel is configured \(ALIPAY_SELLER_ID is set\); set all of/);
  });

  it("reports an unreadable key once, by name, without the key", () => {
    const garbled = appKeyBare.slice(0, 300);
    const found = problems({ ...FULL, ALIPAY_APP_PRIVATE_KEY: garbled, ALIPAY_SELLER_ID: "" });
    assert.deepEqual(found, [
      "ALIPAY_APP_PRIVATE_KEY is not a PKCS#8 or PKCS#1 RSA private key",
      "ALIPAY_SELLER_ID is required when the Alipay channel is configured (ALIPAY_APP_ID, ALIPAY_APP_PRIVATE_KEY, ALIPAY_PUBLIC_KEY are set); set all of ALIPAY_APP_ID, ALIPAY_APP_PRIVATE_KEY, ALIPAY_PUBLIC_KEY, ALIPAY_SELLER_ID, or none to turn Alipay off",
    ]);
    assert.ok(!found.join("\n").includes(garbled.slice(50, 90)));
    assert.deepEqual(problems({ ...FULL, ALIPAY_PUBLIC_KEY: appKeyBare }), ["ALIPAY_PUBLIC_KEY is not an SPKI RSA public key"]);
  });

  it("refuses the app's own public key where Alipay's belongs", () => {
    const appPublic = app.publicKey.export({ format: "der", type: "spki" }).toString("base64");
    assert.deepEqual(problems({ ...FULL, ALIPAY_PUBLIC_KEY: appPublic }), [
      "ALIPAY_PUBLIC_KEY is the public key of ALIPAY_APP_PRIVATE_KEY; it must be Alipay's public key (支付宝公钥) from the open platform, not the app's",
    ]);
  });

  it("checks ids and the gateway URL", () => {
    assert.deepEqual(problems({ ...FULL, ALIPAY_APP_ID: "12345" }), ["ALIPAY_APP_ID must be the app's 16-digit APPID from the Alipay open platform"]);
    assert.deepEqual(problems({ ...FULL, ALIPAY_SELLER_ID: "2021000122671080" }), ["ALIPAY_SELLER_ID must be the merchant's 16-digit PID starting with 2088"]);
    for (const url of ["http://openapi.alipay.com/gateway.do", "https://user:pass@openapi.alipay.com/gateway.do", "openapi.alipay.com"]) {
      assert.deepEqual(problems({ ...FULL, ALIPAY_GATEWAY_URL: url }), ["ALIPAY_GATEWAY_URL must be an https URL without credentials (http only for a loopback sandbox)"], url);
    }
    assert.equal(parseConfig(alipayConfigSchema, { ...FULL, ALIPAY_GATEWAY_URL: "http://127.0.0.1:8790/alipay/gateway.do" }).ALIPAY_GATEWAY_URL, "http://127.0.0.1:8790/alipay/gateway.do");
  });

  it("keeps its checks inside a larger schema that spreads the fields", () => {
    const service = z.object({ PORT: z.string() }).safeExtend(alipayConfigFields.shape).superRefine(checkAlipayConfig, ALIPAY_REFINE_OPTIONS);
    const result = service.safeParse({ ALIPAY_APP_ID: FULL.ALIPAY_APP_ID });
    assert.deepEqual(
      result.error?.issues.map((issue) => issue.path[0]),
      ["PORT", "ALIPAY_APP_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY", "ALIPAY_SELLER_ID"],
      "the partial set is named even while another setting is bad",
    );
  });
});
