import assert from "node:assert/strict";
import crypto from "node:crypto";
import { describe, it, mock } from "node:test";

import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { ServiceError } from "../errors.ts";
import { type SessionClaims, newSessionId, signSessionToken, verifySessionToken } from "./tokens.ts";

const secret = crypto.createSecretKey(crypto.randomBytes(32));
const chainId = 31337;
const iat = 1_750_000_000;
const claims: SessionClaims = { v: 1, sub: privateKeyToAccount(generatePrivateKey()).address, chainId, iat, exp: iat + 900, sid: newSessionId() };
const at = (unixSeconds: number) => ({ secret, chainId, now: unixSeconds * 1000 });

function rejects(token: unknown, message: RegExp, options = at(iat)) {
  assert.throws(
    () => verifySessionToken(token, options),
    (error: unknown) => error instanceof ServiceError && error.code === "UNAUTHENTICATED" && message.test(error.message),
  );
}

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("session tokens", () => {
  it("round-trips: payload.mac, both base64url, carrying v, sub, chainId, iat, exp, sid", () => {
    const token = signSessionToken(claims, secret);
    assert.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString()), claims);
    assert.deepEqual(verifySessionToken(token, at(iat + 899)), claims);
  });

  it("rejects a tampered payload (another account) under the original MAC", () => {
    const [, mac] = signSessionToken(claims, secret).split(".");
    const other = privateKeyToAccount(generatePrivateKey()).address;
    rejects(`${encode({ ...claims, sub: other })}.${mac}`, /^session token signature is invalid$/);
  });

  it("rejects a MAC from another secret, and a flipped MAC bit", () => {
    rejects(signSessionToken(claims, crypto.createSecretKey(crypto.randomBytes(32))), /^session token signature is invalid$/);
    const [payload, mac] = signSessionToken(claims, secret).split(".");
    const flipped = Buffer.from(mac, "base64url");
    flipped[0] ^= 1;
    rejects(`${payload}.${flipped.toString("base64url")}`, /^session token signature is invalid$/);
  });

  it("compares MACs with crypto.timingSafeEqual", () => {
    const spy = mock.method(crypto, "timingSafeEqual");
    try {
      verifySessionToken(signSessionToken(claims, secret), at(iat));
      rejects(signSessionToken(claims, crypto.createSecretKey(crypto.randomBytes(32))), /signature is invalid/);
      assert.equal(spy.mock.callCount(), 2);
      assert.ok(spy.mock.calls.every((call) => call.arguments[0].byteLength === 32 && call.arguments[1].byteLength === 32));
    } finally {
      spy.mock.restore();
    }
  });

  it("rejects an expired token, at the second it expires", () => {
    const token = signSessionToken(claims, secret);
    rejects(token, new RegExp(`^session token expired at ${new Date(claims.exp * 1000).toISOString()}: sign in again$`), at(claims.exp));
  });

  it("rejects a token for another chain", () => {
    rejects(signSessionToken({ ...claims, chainId: 1 }, secret), /^session token is for chain 1, not 31337: sign in again$/);
  });

  it("says when a token is missing or malformed", () => {
    for (const missing of [undefined, null, ""]) rejects(missing, /^session token is missing: sign in at POST \/v1\/auth\/sign-in$/);
    const [payload, mac] = signSessionToken(claims, secret).split(".");
    for (const malformed of [
      42,
      { token: "x" },
      "abc",
      `${payload}.${mac}.x`,
      `${payload}.${mac.slice(1)}`,
      `${payload}=.${mac}`,
      `${"a".repeat(600)}.${mac}`,
    ]) {
      rejects(malformed, /^session token is malformed$/);
    }
  });

  it("rejects a genuinely signed payload of another shape (a future format version)", () => {
    const payload = encode({ ...claims, v: 2 });
    const mac = crypto.createHmac("sha256", secret).update(payload).digest("base64url");
    rejects(`${payload}.${mac}`, /^session token payload is malformed$/);
  });
});
