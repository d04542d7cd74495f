// Account sessions: Sign-In with Ethereum (EIP-4361) proves control of an account once, and a
// short-lived signed token then stands for it. A fiat balance is real money, so only a session
// for the sender may spend or inspect it (see README.md).
import { randomBytes } from "node:crypto";

import type { Redis } from "ioredis";
import { type Address, type Hex, type PublicClient, getAddress, isAddress } from "viem";
import { z } from "zod";

import { ServiceError } from "../errors.ts";
import type { SessionsConfig } from "./config.ts";
import { proveControl } from "./control.ts";
import { checkSiweMessage } from "./siwe.ts";
import { newSessionId, signSessionToken, verifySessionToken } from "./tokens.ts";

/** A string field; `what` completes "must be …" when it is something else. */
const text = (what: string) => z.string({ error: (issue) => (issue.input === undefined ? "is required" : `must be ${what}`) });

/** 0x-prefixed hex of 1 to `maxBytes` bytes. */
const hexBytes = (maxBytes: number) =>
  text("0x-prefixed hex bytes")
    .regex(/^0x(?:[0-9a-fA-F]{2})+$/, "must be 0x-prefixed hex bytes")
    .max(2 + 2 * maxBytes, `must be at most ${maxBytes} bytes`)
    .transform((value) => value as Hex);
const address = text("a 20-byte 0x address")
  .refine((value) => isAddress(value, { strict: false }), "must be a 20-byte 0x address")
  .transform((value) => getAddress(value));

/** The body of a sign-in: the EIP-4361 message, its signature and, for owner-signed accounts, how to check the owner. */
export const signInParametersSchema = z
  .strictObject(
    {
      message: text("the EIP-4361 message text").min(1, "must not be empty").max(4096, "must be at most 4096 characters"),
      // ERC-6492 signatures carry the factory call, hence the generous bound.
      signature: hexBytes(8192),
      owner: address.optional(),
      factory: address.optional(),
      factoryData: hexBytes(4096).optional(),
    },
    { error: (issue) => (issue.code === "invalid_type" ? "must be a JSON object with message and signature" : undefined) },
  )
  .superRefine((body, context) => {
    if ((body.factory === undefined) !== (body.factoryData === undefined)) {
      const missing = body.factory === undefined ? "factory" : "factoryData";
      context.addIssue({ code: "custom", path: [missing], message: "factory and factoryData go together" });
    }
    if (body.factory !== undefined && body.owner === undefined) {
      context.addIssue({
        code: "custom",
        path: ["owner"],
        message:
          "is required with factory: factory and factoryData are for owner-signed accounts; wrap an ERC-1271 account's signature per ERC-6492 instead",
      });
    }
  });

export type SignInParameters = z.output<typeof signInParametersSchema>;

/** A signed-in session. */
export type SignInResult = { token: string; address: Address; expiresAt: Date };

/** What a valid, unrevoked token stands for. */
export type VerifiedSession = { address: Address; chainId: number; expiresAt: Date; sessionId: string };

export type CreateSessionsParameters = {
  config: SessionsConfig;
  redis: Redis;
  publicClient: PublicClient;
  /** The chain sessions are for; messages and tokens for another chain are refused. */
  chainId: number;
  /** Namespace of every Redis key, e.g. "fg". */
  keyPrefix: string;
  /** The current time in ms; tests inject a clock. */
  now?: () => number;
};

export type Sessions = {
  /** A fresh single-use sign-in nonce. */
  issueNonce(): Promise<string>;
  /** Checks a signed EIP-4361 message and opens a session for its account. */
  signIn(parameters: SignInParameters): Promise<SignInResult>;
  /** The session a token stands for, or UNAUTHENTICATED saying why not. */
  verifySession(token: unknown): Promise<VerifiedSession>;
  /** As verifySession, and FORBIDDEN unless the session is for `address`. */
  requireSessionFor(token: unknown, address: Address): Promise<VerifiedSession>;
  /** Ends a session before it expires. */
  revoke(session: Pick<VerifiedSession, "address" | "sessionId">): Promise<void>;
  /** Boot-time checks: the RPC serves `chainId` and every allowed factory has code. */
  preflight(): Promise<void>;
};

/** Sign-in, session tokens and their revocation list, over Redis and the chain. */
export function createSessions({ config, redis, publicClient, chainId, keyPrefix, now = Date.now }: CreateSessionsParameters): Sessions {
  const secret = config.SESSION_SECRET;
  const ttl = config.SESSION_TTL_SECONDS;
  const nonceKey = (nonce: string) => `${keyPrefix}:siwe-nonce:${nonce}`;
  // The braces are a Redis Cluster hash tag: all of one account's keys land in one slot.
  const sessionKey = (account: Address, sessionId: string) => `${keyPrefix}:{${account}}:session:${sessionId}`;

  async function store<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw new ServiceError("DEPENDENCY_UNAVAILABLE", "the session store is unavailable: retry shortly", { cause: error });
    }
  }

  async function verifySession(token: unknown): Promise<VerifiedSession> {
    const claims = verifySessionToken(token, { secret, chainId, now: now() });
    // One Redis round trip per verification buys immediate sign-out; the MAC alone could not.
    const live = await store(() => redis.exists(sessionKey(claims.sub, claims.sid)));
    if (live === 0) throw new ServiceError("UNAUTHENTICATED", "session has been signed out or revoked: sign in again");
    return { address: claims.sub, chainId: claims.chainId, expiresAt: new Date(claims.exp * 1000), sessionId: claims.sid };
  }

  return {
    async issueNonce() {
      const nonce = randomBytes(16).toString("hex");
      await store(() => redis.set(nonceKey(nonce), "1", "EX", config.SIWE_NONCE_TTL_SECONDS));
      return nonce;
    },

    async signIn({ message, signature, owner, factory, factoryData }) {
      const { address, nonce } = checkSiweMessage(message, { domain: config.SIWE_DOMAIN, uri: config.SIWE_URI, chainId, now: now() });
      // Consumed before the signature is checked: single use whatever the outcome, and a replay costs no RPC call.
      const issued = await store(() => redis.getdel(nonceKey(nonce)));
      if (issued === null)
        throw new ServiceError("UNAUTHENTICATED", "message nonce is unknown, expired or already used: get a new one from GET /v1/auth/nonce");
      await proveControl(
        { address, message, signature, owner, factory, factoryData },
        { publicClient, accountFactories: config.SIWE_ACCOUNT_FACTORIES },
      );

      const iat = Math.floor(now() / 1000);
      const sid = newSessionId();
      const token = signSessionToken({ v: 1, sub: address, chainId, iat, exp: iat + ttl, sid }, secret);
      // Relative expiry (EX), so the key lives exactly as long as the token whatever Redis's clock says.
      await store(() => redis.set(sessionKey(address, sid), "1", "EX", ttl));
      return { token, address, expiresAt: new Date((iat + ttl) * 1000) };
    },

    verifySession,

    async requireSessionFor(token, account) {
      if (typeof account !== "string" || !isAddress(account, { strict: false }))
        throw new ServiceError("INVALID_PARAMS", "account is not a valid address");
      const session = await verifySession(token);
      // Whose session it is stays unsaid: the caller may not be its holder.
      if (session.address !== getAddress(account)) throw new ServiceError("FORBIDDEN", "session is for another account");
      return session;
    },

    async revoke({ address: account, sessionId }) {
      await store(() => redis.del(sessionKey(getAddress(account), sessionId)));
    },

    async preflight() {
      const served = await publicClient.getChainId();
      if (served !== chainId) throw new Error(`sessions: the RPC serves chain ${served}, not ${chainId}`);
      for (const factory of config.SIWE_ACCOUNT_FACTORIES) {
        const code = await publicClient.getCode({ address: factory });
        if (code === undefined || code === "0x") throw new Error(`SIWE_ACCOUNT_FACTORIES: no contract at ${factory} on chain ${chainId}`);
      }
    },
  };
}
