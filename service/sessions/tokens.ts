// Session tokens: base64url(JSON payload) "." base64url(HMAC-SHA256(secret, first part)).
// Stateless to check; revocation is the caller's extra Redis lookup (sessions.ts).
// `crypto` is imported whole so a test can observe that the MAC check uses timingSafeEqual.
import crypto, { type KeyObject } from "node:crypto";

import { type Address, getAddress, isAddress } from "viem";
import { z } from "zod";

import { ServiceError } from "../errors.ts";

/** What a token asserts; times are unix seconds. */
export type SessionClaims = {
  v: 1;
  /** The checksummed account address the session is for. */
  sub: Address;
  chainId: number;
  iat: number;
  exp: number;
  /** Random id, the handle for revocation. */
  sid: string;
};

/** A random session id: 128 bits as 22 base64url characters. */
export function newSessionId(): string {
  return crypto.randomBytes(16).toString("base64url");
}

const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;
// A payload is ~190 characters; the bound keeps a hostile header from costing a large HMAC and decode.
const TOKEN = /^([A-Za-z0-9_-]{1,512})\.([A-Za-z0-9_-]{43})$/;

const claimsSchema = z.strictObject({
  v: z.literal(1),
  sub: z.string().refine((value) => isAddress(value) && value === getAddress(value)),
  chainId: z.number().int().positive(),
  iat: z.number().int().nonnegative(),
  exp: z.number().int().positive(),
  sid: z.string().regex(SESSION_ID),
});

function mac(encodedPayload: string, secret: KeyObject): Buffer {
  return crypto.createHmac("sha256", secret).update(encodedPayload).digest();
}

/** Signs `claims` into a compact token. */
export function signSessionToken(claims: SessionClaims, secret: KeyObject): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  return `${payload}.${mac(payload, secret).toString("base64url")}`;
}

const unauthenticated = (message: string) => new ServiceError("UNAUTHENTICATED", message);

/**
 * The claims of a token this service signed for `chainId` that has not expired at `now` (ms);
 * otherwise UNAUTHENTICATED saying which check failed. Revocation is not checked here.
 */
export function verifySessionToken(token: unknown, { secret, chainId, now }: { secret: KeyObject; chainId: number; now: number }): SessionClaims {
  if (token === undefined || token === null || token === "") throw unauthenticated("session token is missing: sign in at POST /v1/auth/sign-in");
  const parts = typeof token === "string" ? TOKEN.exec(token) : null;
  if (!parts) throw unauthenticated("session token is malformed");
  const [, payload, signature] = parts;
  // The MAC is checked before the payload is parsed: nothing an attacker wrote is decoded unauthenticated.
  const expected = mac(payload, secret);
  const given = Buffer.from(signature, "base64url");
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) throw unauthenticated("session token signature is invalid");
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    throw unauthenticated("session token payload is malformed");
  }
  const parsed = claimsSchema.safeParse(json);
  // Only reachable with a genuine MAC: a token from another format version signed with this secret.
  if (!parsed.success) throw unauthenticated("session token payload is malformed");
  const claims = parsed.data as SessionClaims;
  if (claims.chainId !== chainId) throw unauthenticated(`session token is for chain ${claims.chainId}, not ${chainId}: sign in again`);
  if (claims.exp * 1000 <= now) throw unauthenticated(`session token expired at ${new Date(claims.exp * 1000).toISOString()}: sign in again`);
  return claims;
}
