// The operator's risk policy: one zod schema, validated whole on every change. `null` means "no
// limit". Amounts are decimal strings (fen or wei) so JSON never carries money as a float.
import { type Address, type Hex, getAddress, isAddress } from "viem";
import { z } from "zod";

const count = (what: string) => z.number({ error: `${what} must be a whole number` }).int(`${what} must be a whole number`).min(0, `${what} must not be negative`);
const amount = (unit: string) =>
  z
    .string({ error: `must be a whole number of ${unit}, as a decimal string` })
    .regex(/^\d{1,30}$/, `must be a whole number of ${unit}, as a decimal string`)
    .transform(BigInt);
const address = z
  .string()
  .refine((value) => isAddress(value, { strict: false }), "must be a 20-byte hex address")
  .transform((value) => getAddress(value) as Address);
const selector = z
  .string()
  .regex(/^0x[0-9a-fA-F]{8}$/, "must be a 4-byte function selector like 0xa9059cbb")
  .transform((value) => value.toLowerCase() as Hex);
const unixSeconds = z.number().int().min(0, "must be unix seconds");

/** A contract the policy lets accounts call, optionally only through some functions. */
const allowedTarget = z.object({
  address,
  /** Function selectors allowed on this target; null allows every function. "0x00000000" allows a plain ETH transfer (empty data). */
  selectors: z.array(selector).max(256).nullable().default(null),
});

export const policySchema = z
  .object({
    perOperation: z
      .object({
        /** Most one op may reserve (its worst-case charge), in fen. */
        maxChargeFen: amount("fen").nullable().default(null),
        maxCallGasLimit: count("maxCallGasLimit").nullable().default(2_000_000),
        maxVerificationGasLimit: count("maxVerificationGasLimit").nullable().default(1_000_000),
        maxPreVerificationGas: count("maxPreVerificationGas").nullable().default(500_000),
        maxPaymasterVerificationGasLimit: count("maxPaymasterVerificationGasLimit").nullable().default(100_000),
        maxPaymasterPostOpGasLimit: count("maxPaymasterPostOpGasLimit").nullable().default(0),
        /** maxFeePerGas may be at most this many basis points of the current base fee (30000 = 3×). */
        maxFeeToBaseFeeBps: count("maxFeeToBaseFeeBps").min(10_000, "maxFeeToBaseFeeBps must be at least 10000 (1× the base fee)").nullable().default(30_000),
        maxPriorityFeePerGasWei: amount("wei").nullable().default(null),
      })
      .strict()
      .prefault({}),
    perAccount: z
      .object({
        maxOperationsPerMinute: count("maxOperationsPerMinute").nullable().default(null),
        maxOperationsPerDay: count("maxOperationsPerDay").nullable().default(null),
        maxSpendFenPerDay: amount("fen").nullable().default(null),
        /** Seconds after a top-up before its funds can be spent (chargeback risk); 0 turns it off. */
        topUpCoolingSeconds: count("topUpCoolingSeconds").max(30 * 86_400, "topUpCoolingSeconds must be at most 30 days").default(0),
      })
      .strict()
      .prefault({}),
    global: z
      .object({
        maxSpendFenPerDay: amount("fen").nullable().default(null),
        /** In-flight reserved wei may use at most the paymaster's EntryPoint deposit minus this floor. */
        depositFloorWei: amount("wei").default(0n),
        /** Sponsoring stops while the base fee is above this (circuit breaker). */
        baseFeeCeilingWei: amount("wei").nullable().default(null),
      })
      .strict()
      .prefault({}),
    calls: z
      .object({
        /** Contracts accounts may call; null allows any. With a list, undecodable callData is refused. */
        allowedTargets: z.array(allowedTarget).max(1_000).nullable().default(null),
        deniedSenders: z.array(address).max(100_000).default([]),
        deniedTargets: z.array(address).max(100_000).default([]),
      })
      .strict()
      .prefault({}),
    time: z
      .object({
        /** How long a signed sponsorship stays valid. */
        signatureValiditySeconds: count("signatureValiditySeconds").min(30).max(3_600).default(300),
        /** The policy sponsors nothing before this moment (unix seconds), if set. */
        activeFrom: unixSeconds.nullable().default(null),
        /** The policy sponsors nothing from this moment (unix seconds), if set. */
        activeUntil: unixSeconds.nullable().default(null),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((policy, context) => {
    const { activeFrom, activeUntil } = policy.time;
    if (activeFrom !== null && activeUntil !== null && activeUntil <= activeFrom) {
      context.addIssue({ code: "custom", path: ["time", "activeUntil"], message: "activeUntil must be after activeFrom" });
    }
  });

/** A validated policy, as the service evaluates it. */
export type Policy = z.output<typeof policySchema>;
/** A policy document as operators write it (JSON). */
export type PolicyDocument = z.input<typeof policySchema>;

/** The policy in force until an operator sets one: generous gas caps, no fiat limits. */
export const DEFAULT_POLICY: Policy = policySchema.parse({});

/** A policy as JSON: bigints as decimal strings, the inverse of policySchema. */
export function policyToJson(policy: Policy): PolicyDocument {
  return JSON.parse(JSON.stringify(policy, (_key, value) => (typeof value === "bigint" ? value.toString() : value)));
}
