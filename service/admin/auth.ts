// Who may call /admin: the holder of ADMIN_TOKEN. `crypto` is imported whole so a test can observe
// that the comparison uses timingSafeEqual.
import crypto from "node:crypto";

import { z } from "zod";

import { ServiceError } from "../errors.ts";

// The auth scheme is case-insensitive (RFC 9110 §11.1).
const BEARER = /^Bearer +(\S+)$/i;

/** The actor recorded when a call names none. */
export const DEFAULT_ACTOR = "admin";

/** `X-Admin-Actor`: the human operator behind the shared token, recorded in history and logs. */
export const actorHeader = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/, "must be 1-64 letters, digits or . _ @ + -, starting with a letter or digit")
  .describe("The operator making the change, recorded in the policy history and the logs; `admin` when absent.");

/**
 * Checks `Authorization: Bearer <token>` against the SHA-256 digest of ADMIN_TOKEN. Both sides are
 * hashed to the same length first, so neither the comparison's time nor its length check tells
 * anything about the token. Throws UNAUTHENTICATED.
 */
export function authenticateAdmin(authorization: string | undefined, tokenDigest: Buffer): void {
  const token = BEARER.exec(authorization ?? "")?.[1];
  if (token === undefined) throw new ServiceError("UNAUTHENTICATED", "Authorization header must be `Bearer <admin token>`");
  const presented = crypto.createHash("sha256").update(token).digest();
  if (!crypto.timingSafeEqual(presented, tokenDigest)) throw new ServiceError("UNAUTHENTICATED", "the admin token is not valid");
}

/** The actor a call names in X-Admin-Actor, or DEFAULT_ACTOR; INVALID_PARAMS if the header is malformed. */
export function adminActor(header: string | string[] | undefined): string {
  if (header === undefined) return DEFAULT_ACTOR;
  const parsed = actorHeader.safeParse(header);
  if (!parsed.success) {
    const message = parsed.error.issues[0]?.message ?? "is not valid";
    throw new ServiceError("INVALID_PARAMS", `X-Admin-Actor ${message}`, { data: { issues: [{ path: "x-admin-actor", message }] } });
  }
  return parsed.data;
}
