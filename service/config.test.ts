import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { inspect } from "node:util";
import { describe, it } from "node:test";

import { ConfigError, SECRET_SETTINGS, configuredPaymasters, loadConfig } from "./config.ts";

const PAYMASTER = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const FACTORY = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512";
const KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const SECRET = "ab".repeat(32);
const ADMIN_TOKEN = "cd".repeat(16);

/** A complete, valid environment; each test changes one thing. */
const ENV: Record<string, string> = {
  RPC_URL: "http://127.0.0.1:8545",
  CHAIN_ID: "31337",
  REDIS_URL: "redis://127.0.0.1:6379",
  PAYMASTER_V07_ADDRESS: PAYMASTER.toLowerCase(),
  SIGNER_PRIVATE_KEY: KEY,
  PRICE_SOURCE: "static",
  STATIC_PRICE: "25000.00",
  SESSION_SECRET: SECRET,
  ADMIN_TOKEN,
  SIWE_DOMAIN: "app.fiatgas.example",
};

/** The problems of a rejected environment. */
function problems(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.message, `invalid configuration:\n${error.problems.map((problem) => `  - ${problem}`).join("\n")}`);
    return error.problems;
  }
  return assert.fail(`expected ${JSON.stringify(env)} to be rejected`);
}

/** The one problem of `ENV` with `changes`, which must name `variable`. */
function problemWith(changes: Record<string, string | undefined>, variable = Object.keys(changes)[0]): string {
  const found = problems({ ...ENV, ...changes });
  assert.equal(found.length, 1, found.join("\n"));
  assert.ok(found[0].startsWith(variable), `"${found[0]}" names ${variable}`);
  return found[0];
}

describe("loadConfig", () => {
  it("parses a valid environment once into a frozen object with defaults filled in", () => {
    const config = loadConfig(ENV);
    assert.ok(Object.isFrozen(config));
    assert.throws(() => {
      (config as { PORT: number }).PORT = 1;
    }, TypeError);
    assert.equal(config.PORT, 8787);
    assert.equal(config.HOST, "127.0.0.1");
    assert.equal(config.CHAIN_ID, 31_337);
    assert.equal(config.PAYMASTER_V07_ADDRESS, PAYMASTER, "addresses are checksummed at the boundary");
    assert.equal(config.PAYMASTER_V08_ADDRESS, undefined);
    assert.deepEqual(configuredPaymasters(config), { "0.7": PAYMASTER });
    assert.equal(config.LOG_LEVEL, "info");
    assert.match(config.SPONSOR_ICON, /^data:image\/svg\+xml;base64,/);
    assert.deepEqual(config.STATIC_PRICE, { answer: 2_500_000n, decimals: 2 });
    assert.equal(config.SESSION_SECRET.symmetricKeySize, 32, "the session secret is a key object, not a string");
    assert.equal(loadConfig({ ...ENV, PORT: "0", RATE_LIMIT_PER_MINUTE: " 5 " }).RATE_LIMIT_PER_MINUTE, 5);
  });

  it("names every missing required setting at once", () => {
    assert.deepEqual(problems({}), [
      "RPC_URL is required",
      "CHAIN_ID is required",
      "REDIS_URL is required",
      "SIGNER_PRIVATE_KEY is required",
      "ADMIN_TOKEN is required: the bearer token of the /admin API, at least 32 characters (openssl rand -hex 32)",
      "SESSION_SECRET is required: 32+ random bytes as hex (openssl rand -hex 32)",
      "SIWE_DOMAIN is required: the site's host[:port] that wallets show, e.g. app.fiatgas.example",
      "PAYMASTER_V07_ADDRESS and/or PAYMASTER_V08_ADDRESS is required: the service needs a paymaster to sign for",
    ]);
  });

  it("names the variable of a bad URL", () => {
    assert.equal(problemWith({ RPC_URL: "127.0.0.1:8545" }), "RPC_URL must be a http or https URL");
    assert.equal(problemWith({ RPC_URL: "ws://127.0.0.1:8545" }), "RPC_URL must be a http or https URL");
    assert.equal(problemWith({ REDIS_URL: "http://127.0.0.1:6379" }), "REDIS_URL must be a redis or rediss URL");
    problemWith({ SIWE_URI: "/login" });
    assert.equal(loadConfig({ ...ENV, REDIS_URL: "rediss://user:pw@redis.example:6380/2" }).REDIS_URL, "rediss://user:pw@redis.example:6380/2");
  });

  it("names a bad signer key with a fixed message that does not repeat it", () => {
    for (const key of [KEY.slice(0, -2), KEY.slice(2), `${KEY.slice(0, -1)}g`]) {
      assert.equal(problemWith({ SIGNER_PRIVATE_KEY: key }), "SIGNER_PRIVATE_KEY must be a 32-byte 0x-prefixed hex key");
    }
    // Outside [1, n): viem would only refuse these at boot, printing the key in decimal.
    for (const key of [`0x${"00".repeat(32)}`, `0x${"ff".repeat(32)}`, "0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"]) {
      assert.equal(problemWith({ SIGNER_PRIVATE_KEY: key }), "SIGNER_PRIVATE_KEY is not a valid secp256k1 private key (it must be from 1 to n-1)");
    }
    const largest = "0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140";
    assert.equal(loadConfig({ ...ENV, SIGNER_PRIVATE_KEY: largest }).SIGNER_PRIVATE_KEY, largest, "n - 1 is a key");
  });

  it("requires an ADMIN_TOKEN of 32+ printable characters, has no default, and keeps only its SHA-256 digest", () => {
    assert.equal(problemWith({ ADMIN_TOKEN: undefined }), "ADMIN_TOKEN is required: the bearer token of the /admin API, at least 32 characters (openssl rand -hex 32)");
    assert.equal(problemWith({ ADMIN_TOKEN: "x".repeat(31) }), "ADMIN_TOKEN must be at least 32 characters (openssl rand -hex 32)");
    assert.equal(problemWith({ ADMIN_TOKEN: `${"x".repeat(16)} ${"x".repeat(16)}` }), "ADMIN_TOKEN must be printable ASCII without spaces (openssl rand -hex 32)");
    const config = loadConfig(ENV);
    assert.deepEqual(config.ADMIN_TOKEN, createHash("sha256").update(ADMIN_TOKEN).digest());
    assert.ok(!inspect(config, { depth: null }).includes(ADMIN_TOKEN), "the token itself is not kept");
  });

  it("names an integer out of bounds, a fraction and a non-number", () => {
    assert.equal(problemWith({ PORT: "65536" }), "PORT must be at most 65535");
    assert.equal(problemWith({ CHAIN_ID: "0" }), "CHAIN_ID must be at least 1");
    assert.equal(problemWith({ PAYMASTER_VERIFICATION_GAS_LIMIT: "19999" }), "PAYMASTER_VERIFICATION_GAS_LIMIT must be at least 20000");
    assert.equal(problemWith({ PAYMASTER_VERIFICATION_GAS_LIMIT: "500001" }), "PAYMASTER_VERIFICATION_GAS_LIMIT must be at most 500000");
    assert.equal(problemWith({ RPC_MAX_BATCH: "101" }), "RPC_MAX_BATCH must be at most 100");
    assert.equal(problemWith({ RATE_LIMIT_PER_MINUTE: "0" }), "RATE_LIMIT_PER_MINUTE must be at least 1");
    assert.equal(problemWith({ MAX_LIVE_RESERVATIONS_PER_SENDER: "1.5" }), "MAX_LIVE_RESERVATIONS_PER_SENDER must be an integer");
    // z.coerce would have read these as 0, 31 and 1000.
    assert.equal(problemWith({ PORT: "" }), "PORT must be an integer");
    assert.equal(problemWith({ CHAIN_ID: "0x1f" }), "CHAIN_ID must be an integer");
    assert.equal(problemWith({ RATE_LIMIT_PER_MINUTE: "1e3" }), "RATE_LIMIT_PER_MINUTE must be an integer");
  });

  it("names a value outside an enumeration", () => {
    assert.equal(problemWith({ LOG_LEVEL: "verbose" }), "LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent");
    assert.match(problemWith({ PRICE_SOURCE: "coingecko" }), /^PRICE_SOURCE must be "chainlink"/);
  });

  it("names a bad address and a bad key prefix", () => {
    assert.equal(problemWith({ PAYMASTER_V08_ADDRESS: "0x1234" }), "PAYMASTER_V08_ADDRESS: must be a 20-byte hex address");
    assert.equal(problemWith({ PAYMASTER_V07_ADDRESS: `${PAYMASTER}00` }), "PAYMASTER_V07_ADDRESS: must be a 20-byte hex address");
    assert.match(problemWith({ SIWE_ACCOUNT_FACTORIES: `${FACTORY}, nope` }), /^SIWE_ACCOUNT_FACTORIES must be comma-separated 0x addresses; not an address: nope$/);
    assert.match(problemWith({ REDIS_KEY_PREFIX: "FG:prod" }), /^REDIS_KEY_PREFIX must be/);
  });

  it("names a sponsor icon that is not a base64 image data URI", () => {
    for (const icon of ["https://fiatgas.example/icon.png", "data:text/html;base64,PGgxPg==", "data:image/png,raw", "data:image/png;base64,<svg>"]) {
      assert.equal(problemWith({ SPONSOR_ICON: icon }), "SPONSOR_ICON must be a base64 data URI of an image (RFC 2397)");
    }
    assert.equal(loadConfig({ ...ENV, SPONSOR_ICON: "data:image/png;base64,iVBORw0KGgo=" }).SPONSOR_ICON, "data:image/png;base64,iVBORw0KGgo=");
    problemWith({ SPONSOR_NAME: "" });
  });

  it("requires a paymaster for at least one EntryPoint", () => {
    assert.match(problemWith({ PAYMASTER_V07_ADDRESS: undefined }, "PAYMASTER_V07_ADDRESS"), /PAYMASTER_V08_ADDRESS is required/);
    const v08Only = loadConfig({ ...ENV, PAYMASTER_V07_ADDRESS: undefined, PAYMASTER_V08_ADDRESS: PAYMASTER });
    assert.deepEqual(configuredPaymasters(v08Only), { "0.8": PAYMASTER });
  });

  it("applies the pricing and sessions cross checks", () => {
    assert.equal(problemWith({ PRICE_SOURCE: "chainlink", STATIC_PRICE: undefined }, "PRICE_FEED_ADDRESS"), "PRICE_FEED_ADDRESS is required when PRICE_SOURCE is chainlink");
    assert.match(problemWith({ PRICE_SOURCE: "chainlink", PRICE_FEED_ADDRESS: PAYMASTER }, "STATIC_PRICE"), /^STATIC_PRICE is set but PRICE_SOURCE is chainlink/);
    assert.equal(problemWith({ STATIC_PRICE: undefined }, "STATIC_PRICE"), "STATIC_PRICE is required when PRICE_SOURCE is static");
    assert.match(problemWith({ FEE_MAX_AGE_SECONDS: "1", PRICING_POLL_INTERVAL_MS: "1000" }, "FEE_MAX_AGE_SECONDS"), /longer than PRICING_POLL_INTERVAL_MS/);
    assert.match(problemWith({ SESSION_SECRET: "ab".repeat(31) }), /^SESSION_SECRET must be at least 32 bytes/);
    assert.match(problemWith({ SIWE_DOMAIN: "https://app.fiatgas.example" }), /^SIWE_DOMAIN must be a host\[:port\]/);
  });

  it("never repeats a secret's value in its messages", () => {
    const badSecrets: Record<(typeof SECRET_SETTINGS)[number], string> = {
      SIGNER_PRIVATE_KEY: KEY.slice(0, 60),
      SESSION_SECRET: SECRET.slice(0, 40),
      ADMIN_TOKEN: "t0ps3cret-t0ps3cret",
      ALIPAY_APP_PRIVATE_KEY: "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7notakey",
      WECHATPAY_MERCHANT_PRIVATE_KEY: "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0Bnotakey\n-----END PRIVATE KEY-----",
      WECHATPAY_APIV3_KEY: "apiv3-secret-but-31-characters!",
    };
    const found = problems({ ...ENV, ...badSecrets });
    for (const name of SECRET_SETTINGS) {
      assert.ok(found.some((problem) => problem.startsWith(name)), `${name} is named: ${found.join("\n")}`);
      const value = badSecrets[name].replace(/^0x/, "");
      assert.ok(found.every((problem) => !problem.includes(value) && !problem.includes(value.slice(0, 24))), `${name}'s value is not repeated`);
    }
  });
});
