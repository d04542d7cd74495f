import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { inspect } from "node:util";

import { sessionsConfigSchema } from "./config.ts";

const SECRET = "5f".repeat(32);
const valid = { SESSION_SECRET: SECRET, SIWE_DOMAIN: "app.fiatgas.example" };

/** The messages zod reports for `env`, one per issue. */
function messages(env: Record<string, string | undefined>): string[] {
  const result = sessionsConfigSchema.safeParse(env);
  assert.equal(result.success, false, "expected the settings to be refused");
  return result.error!.issues.map((issue) => issue.message);
}

describe("sessionsConfigSchema", () => {
  it("parses the minimum and fills the defaults", () => {
    const config = sessionsConfigSchema.parse(valid);
    assert.equal(config.SESSION_SECRET.symmetricKeySize, 32);
    assert.equal(config.SESSION_TTL_SECONDS, 900);
    assert.equal(config.SIWE_NONCE_TTL_SECONDS, 300);
    assert.equal(config.SIWE_URI, undefined);
    assert.deepEqual(config.SIWE_ACCOUNT_FACTORIES, []);
  });

  it("never shows the secret when the config is logged or serialised", () => {
    const config = sessionsConfigSchema.parse(valid);
    assert.ok(!inspect(config, { depth: 5 }).includes("5f5f"));
    assert.ok(!JSON.stringify(config).includes("5f5f"));
  });

  it("parses every setting, checksums and deduplicates the factories", () => {
    const config = sessionsConfigSchema.parse({
      ...valid,
      SESSION_TTL_SECONDS: "600",
      SIWE_URI: "https://app.fiatgas.example/login",
      SIWE_NONCE_TTL_SECONDS: "120",
      SIWE_ACCOUNT_FACTORIES: " 0x91e60e0613810449d098b0b5ec8b51a0fe8c8985, 0x91E60e0613810449d098b0b5Ec8b51A0FE8c8985 ,",
    });
    assert.equal(config.SESSION_TTL_SECONDS, 600);
    assert.equal(config.SIWE_NONCE_TTL_SECONDS, 120);
    assert.deepEqual(config.SIWE_ACCOUNT_FACTORIES, ["0x91E60e0613810449d098b0b5Ec8b51A0FE8c8985"]);
  });

  it("refuses a missing, short, non-hex or base64 secret", () => {
    assert.deepEqual(messages({ ...valid, SESSION_SECRET: undefined }), [
      "SESSION_SECRET is required: 32+ random bytes as hex (openssl rand -hex 32)",
    ]);
    assert.deepEqual(messages({ ...valid, SESSION_SECRET: "ab".repeat(31) }), ["SESSION_SECRET must be at least 32 bytes (64 hex digits)"]);
    const notHex = ["SESSION_SECRET must be hex digits, an even number of them, with no 0x (openssl rand -hex 32)"];
    assert.deepEqual(messages({ ...valid, SESSION_SECRET: `0x${SECRET}` }), notHex);
    assert.deepEqual(messages({ ...valid, SESSION_SECRET: Buffer.alloc(48, 7).toString("base64") }), notHex);
  });

  it("refuses lifetimes out of range or not whole seconds", () => {
    const ttl = "SESSION_TTL_SECONDS must be a whole number of seconds from 60 to 86400";
    for (const value of ["59", "86401", "1.5", "15m", ""]) assert.deepEqual(messages({ ...valid, SESSION_TTL_SECONDS: value }), [ttl], value);
    assert.deepEqual(messages({ ...valid, SIWE_NONCE_TTL_SECONDS: "5" }), [
      "SIWE_NONCE_TTL_SECONDS must be a whole number of seconds from 30 to 3600",
    ]);
  });

  it("refuses a domain with a scheme or path, a relative URI and a bad factory", () => {
    assert.deepEqual(messages({ ...valid, SIWE_DOMAIN: undefined }), [
      "SIWE_DOMAIN is required: the site's host[:port] that wallets show, e.g. app.fiatgas.example",
    ]);
    for (const domain of ["https://app.fiatgas.example", "app.fiatgas.example/login"]) {
      assert.deepEqual(messages({ ...valid, SIWE_DOMAIN: domain }), [
        "SIWE_DOMAIN must be a host[:port] such as app.fiatgas.example, with no scheme or path",
      ]);
    }
    assert.deepEqual(messages({ ...valid, SIWE_URI: "/login" }), ["SIWE_URI must be an absolute URI such as https://app.fiatgas.example/login"]);
    assert.deepEqual(messages({ ...valid, SIWE_ACCOUNT_FACTORIES: "0x91E60e0613810449d098b0b5Ec8b51A0FE8c8985,0x1234" }), [
      "SIWE_ACCOUNT_FACTORIES must be comma-separated 0x addresses; not an address: 0x1234",
    ]);
  });

  it("accepts a localhost domain with a port, for development", () => {
    assert.equal(sessionsConfigSchema.parse({ ...valid, SIWE_DOMAIN: "localhost:5173" }).SIWE_DOMAIN, "localhost:5173");
  });
});
