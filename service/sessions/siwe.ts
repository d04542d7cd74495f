// The EIP-4361 checks that need no network: the message is well formed and addressed to this
// service, on this chain, now. viem's parser does the parsing; the checks are written out here
// rather than left to validateSiweMessage, which answers a bare boolean and allows no clock skew.
import { type Address, getAddress, isAddress } from "viem";
import { parseSiweMessage } from "viem/siwe";

import { ServiceError } from "../errors.ts";

/** How far apart the wallet's clock and ours may be when judging a message's times. */
export const CLOCK_SKEW_SECONDS = 60;

/** Nonces are 128 random bits as 32 lowercase hex digits (sessions.ts issues them). */
export const NONCE = /^[0-9a-f]{32}$/;

/** What this service expects a sign-in message to say. */
export type SiweExpectations = {
  domain: string;
  /** The exact URI; when absent, the URI's host must be `domain`. */
  uri: string | undefined;
  chainId: number;
  /** The current time, ms. */
  now: number;
};

/** The facts sign-in goes on with, once the message is accepted. */
export type AcceptedSiweMessage = { address: Address; nonce: string };

const invalid = (message: string) => new ServiceError("INVALID_PARAMS", message);
const rejected = (message: string) => new ServiceError("UNAUTHENTICATED", message);

function hostOf(uri: string): string | null {
  try {
    return new URL(uri).host;
  } catch {
    return null;
  }
}

/** Parses `message` and checks it is a sign-in to this service that is valid now, or throws saying why. */
export function checkSiweMessage(message: string, expected: SiweExpectations): AcceptedSiweMessage {
  const fields = parseSiweMessage(message);
  const required = ["domain", "address", "uri", "version", "chainId", "nonce", "issuedAt"] as const;
  const missing = required.filter((name) => fields[name] === undefined);
  if (missing.length > 0) throw invalid(`message is not an EIP-4361 sign-in message: no ${missing.join(", ")}`);
  const { domain, address, uri, version, chainId, nonce, issuedAt } = fields as Required<Pick<typeof fields, (typeof required)[number]>>;
  const { expirationTime, notBefore } = fields;
  if (version !== "1") throw invalid(`message Version must be 1, not ${version}`);
  if (!isAddress(address, { strict: false })) throw invalid("message address is not a valid address");
  for (const [name, date] of [
    ["Issued At", issuedAt],
    ["Expiration Time", expirationTime],
    ["Not Before", notBefore],
  ] as const) {
    if (date !== undefined && Number.isNaN(date.getTime())) throw invalid(`message ${name} is not an RFC 3339 date-time`);
  }

  if (domain !== expected.domain) throw rejected(`message is for domain ${domain}, not ${expected.domain}`);
  if (expected.uri !== undefined ? uri !== expected.uri : hostOf(uri) !== expected.domain) {
    throw rejected(`message URI ${uri} is not this service's (${expected.uri ?? `a URI on ${expected.domain}`})`);
  }
  if (chainId !== expected.chainId) throw rejected(`message is for chain ${chainId}, not ${expected.chainId}`);
  if (!NONCE.test(nonce)) throw rejected("message nonce was not issued by this service: get one from GET /v1/auth/nonce");

  const skew = CLOCK_SKEW_SECONDS * 1000;
  if (issuedAt.getTime() > expected.now + skew) throw rejected(`message is issued in the future (${issuedAt.toISOString()})`);
  if (notBefore !== undefined && notBefore.getTime() > expected.now + skew) throw rejected(`message is not valid before ${notBefore.toISOString()}`);
  if (expirationTime !== undefined && expirationTime.getTime() <= expected.now - skew)
    throw rejected(`message expired at ${expirationTime.toISOString()}`);

  return { address: getAddress(address), nonce };
}
