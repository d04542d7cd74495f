// zod schemas for every value the operator CLI takes from flags or the environment. Each parses
// to the type the commands use (checksummed Address, wei bigint, viem account), so nothing
// downstream handles raw strings. Messages are predicates; the CLI prefixes the variable's name.
import { type Address, getAddress, isAddress, parseEther, zeroAddress } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { z } from "zod";

import type { EntryPointVersion } from "../../service/chain/entryPoints.ts";

/** A string input; an absent value reads "is required". */
const text = () => z.string({ error: (issue) => (issue.input === undefined ? "is required" : "must be a string") });

/** An http(s) JSON-RPC endpoint. */
export const rpcUrl = text().refine((value) => {
  try {
    return ["http:", "https:"].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}, "must be an http(s) URL");

/**
 * What of an RPC URL may be printed: scheme, host and port. Credentials hide in the user info,
 * the query, and for Infura- and Alchemy-style URLs in the path, so all three are dropped.
 */
export function redactUrl(url: string): string {
  try {
    const { protocol, host, pathname, search } = new URL(url);
    const hidden = pathname !== "/" || search !== "" ? "/…" : "";
    return `${protocol}//${host}${hidden}`;
  } catch {
    return "(unparseable URL)";
  }
}

/** A secp256k1 private key, 64 hex digits with or without 0x, parsed straight into an account. */
export const privateKey = text().transform((value, context) => {
  const hex = value.startsWith("0x") ? value : `0x${value}`;
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) {
    context.addIssue({ code: "custom", message: "must be a 32-byte hex key (64 hex digits, 0x optional)" });
    return z.NEVER;
  }
  try {
    return privateKeyToAccount(hex as `0x${string}`);
  } catch {
    context.addIssue({ code: "custom", message: "is not a valid secp256k1 private key" });
    return z.NEVER;
  }
});

const ADDRESS_RULE = "must be an address: 0x and 40 hex digits (a mixed-case address needs a valid checksum)";

/** Any address, checksummed. */
export const address = text()
  .refine((value) => isAddress(value), ADDRESS_RULE)
  .transform((value) => getAddress(value));

/** An address that receives a role or funds, so zero is a mistake. */
export const nonZeroAddress = address.refine((value) => value !== zeroAddress, "must not be the zero address");

/** A comma-separated list of distinct non-zero addresses, at least one. */
export const addressList = text().transform((value, context): Address[] => {
  const entries = value.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "");
  if (entries.length === 0) {
    context.addIssue({ code: "custom", message: "must list at least one address, comma-separated" });
    return z.NEVER;
  }
  const addresses: Address[] = [];
  for (const [index, entry] of entries.entries()) {
    if (!isAddress(entry) || getAddress(entry) === zeroAddress) {
      context.addIssue({ code: "custom", message: `entry ${index + 1} ("${entry}") is not a non-zero address` });
      return z.NEVER;
    }
    const checksummed = getAddress(entry);
    if (addresses.includes(checksummed)) {
      context.addIssue({ code: "custom", message: `lists ${checksummed} twice` });
      return z.NEVER;
    }
    addresses.push(checksummed);
  }
  return addresses;
});

/** An amount of ETH as a decimal string (never a float), in wei; zero allowed. */
export const ethAmount = text()
  .regex(/^(\d+(\.\d*)?|\.\d+)$/, "must be an amount of ETH as a decimal string, e.g. 1.5")
  // parseEther would round a 19th decimal away silently; an operator typing one made a mistake.
  .refine((value) => (value.split(".")[1] ?? "").length <= 18, "has more than 18 decimals (1 wei is 1e-18 ETH)")
  .transform((value) => parseEther(value));

/** A non-zero amount of ETH, in wei. */
export const positiveEthAmount = ethAmount.refine((wei) => wei > 0n, "must be more than 0");

/** A non-zero amount of ETH in wei, or "all". */
export const ethAmountOrAll = z.union([z.literal("all"), positiveEthAmount], {
  error: (issue) =>
    issue.input === undefined ? "is required" : 'must be "all" or an amount of ETH as a decimal string, e.g. 1.5',
});

/** Bundlers treat a paymaster with a shorter unstake delay as unstaked (ERC-7562's MIN_UNSTAKE_DELAY). */
export const MIN_UNSTAKE_DELAY_SEC = 86_400;

/** The EntryPoint's unstake delay: whole seconds, at least a day, within its uint32. */
export const unstakeDelaySec = text()
  .regex(/^\d+$/, "must be a whole number of seconds")
  .transform((value) => Number(value))
  .refine(
    (seconds) => seconds >= MIN_UNSTAKE_DELAY_SEC,
    `must be at least ${MIN_UNSTAKE_DELAY_SEC} seconds: bundlers treat a shorter delay as unstaked (ERC-7562)`,
  )
  .refine((seconds) => seconds <= 2 ** 32 - 1, "must fit the EntryPoint's uint32: at most 4294967295 seconds");

/** "0.7" or "0.8". */
export const entryPointVersion = z.enum(["0.7", "0.8"] satisfies EntryPointVersion[], {
  error: (issue) => (issue.input === undefined ? "is required" : 'must be "0.7" or "0.8"'),
});
