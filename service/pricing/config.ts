// The pricing module's environment settings. Each value is parsed once, at the boundary, into the
// exact type the module computes with (bigint wei and fen, checksummed address, integer percentiles).
import { type Address, getAddress, isAddress } from "viem";
import { z } from "zod";

/** A decimal price read exactly: "25000.50" is { answer: 2500050n, decimals: 2 }. */
export type DecimalPrice = { answer: bigint; decimals: number };

/** At most as many decimals as a wei amount has; anything finer is a typo, not a price. */
const MAX_PRICE_DECIMALS = 18;

/** Parses a plain decimal string without ever going through a float. */
export function parseDecimalPrice(text: string): DecimalPrice {
  const [whole, fraction = ""] = text.split(".");
  return { answer: BigInt(whole + fraction), decimals: fraction.length };
}

/** A whole-number setting given as a string, checked against [min, max]. */
function integer(name: string, { min, max, unit, fallback }: { min: number; max: number; unit: string; fallback: string }) {
  const message = `${name} must be a whole number of ${unit} from ${min} to ${max}`;
  return z
    .string({ error: message })
    .trim()
    .regex(/^\d+$/, { error: message })
    .transform(Number)
    .refine((value) => value >= min && value <= max, { error: message })
    .prefault(fallback);
}

/** A non-negative wei or fen amount given as a string of digits. */
function amount(name: string, unit: string, fallback: string) {
  const message = `${name} must be a whole number of ${unit} (digits only, no decimal point)`;
  return z.string({ error: message }).trim().regex(/^\d+$/, { error: message }).transform(BigInt).prefault(fallback);
}

const feePercentilesMessage =
  "FEE_PERCENTILES must be three whole percentiles from 0 to 100 in ascending order, for slow, standard and fast (e.g. 10,50,90)";

/**
 * The pricing settings, keyed by environment variable. Cross-field checks live in the superRefine,
 * so merge this into a larger schema with `.safeExtend()` (which keeps them) rather than `.shape`.
 */
export const pricingConfigSchema = z
  .object({
    PRICE_SOURCE: z
      .enum(["chainlink", "static"], { error: 'PRICE_SOURCE must be "chainlink" (an on-chain feed) or "static" (STATIC_PRICE)' })
      .prefault("chainlink"),
    PRICE_FEED_ADDRESS: z
      .string()
      .trim()
      .refine((value) => isAddress(value), {
        error: "PRICE_FEED_ADDRESS must be a 0x-prefixed 20-byte address with a valid checksum (or all lower case)",
      })
      .transform((value): Address => getAddress(value))
      .optional(),
    PRICE_MAX_AGE_SECONDS: integer("PRICE_MAX_AGE_SECONDS", { min: 1, max: 7 * 86_400, unit: "seconds", fallback: "3900" }),
    STATIC_PRICE: z
      .string()
      .trim()
      .regex(new RegExp(`^\\d+(\\.\\d{1,${MAX_PRICE_DECIMALS}})?$`), {
        error: `STATIC_PRICE must be a plain decimal number of fiat units per ETH, such as 25000.50 (no sign, commas or exponent; at most ${MAX_PRICE_DECIMALS} decimals)`,
      })
      .transform(parseDecimalPrice)
      .refine((price) => price.answer > 0n, { error: "STATIC_PRICE must be greater than zero" })
      .optional(),
    FIAT_CURRENCY: z
      .string()
      .trim()
      .regex(/^[A-Z]{3}$/, { error: "FIAT_CURRENCY must be a three-letter ISO 4217 code in capitals, such as CNY" })
      .prefault("CNY"),
    FIAT_DECIMALS: integer("FIAT_DECIMALS", { min: 0, max: 6, unit: "decimal places of the currency's minor unit", fallback: "2" }),
    MARKUP_BPS: integer("MARKUP_BPS", { min: 0, max: 100_000, unit: "basis points (1000 = 10%)", fallback: "0" }),
    FIXED_FEE_FEN: amount("FIXED_FEE_FEN", "minor units (fen)", "0"),
    FEE_PERCENTILES: z
      .string({ error: feePercentilesMessage })
      .trim()
      .regex(/^\d{1,3}(,\d{1,3}){2}$/, { error: feePercentilesMessage })
      .transform((value) => value.split(",").map(Number) as [number, number, number])
      .refine(([slow, standard, fast]) => slow <= standard && standard <= fast && fast <= 100, { error: feePercentilesMessage })
      .prefault("10,50,90"),
    FEE_HISTORY_BLOCKS: integer("FEE_HISTORY_BLOCKS", { min: 1, max: 1024, unit: "blocks", fallback: "10" }),
    BASE_FEE_HEADROOM_BPS: integer("BASE_FEE_HEADROOM_BPS", { min: 10_000, max: 100_000, unit: "basis points of the base fee (10000 = none)", fallback: "12657" }),
    MIN_PRIORITY_FEE_WEI: amount("MIN_PRIORITY_FEE_WEI", "wei", "1000000"),
    FEE_MAX_AGE_SECONDS: integer("FEE_MAX_AGE_SECONDS", { min: 1, max: 3600, unit: "seconds", fallback: "30" }),
    PRICING_POLL_INTERVAL_MS: integer("PRICING_POLL_INTERVAL_MS", { min: 10, max: 60_000, unit: "milliseconds", fallback: "1000" }),
  })
  .superRefine((config, context) => {
    const issue = (path: string, message: string) => context.addIssue({ code: "custom", path: [path], message });
    if (config.PRICE_SOURCE === "chainlink") {
      if (!config.PRICE_FEED_ADDRESS) issue("PRICE_FEED_ADDRESS", "PRICE_FEED_ADDRESS is required when PRICE_SOURCE is chainlink");
      // A STATIC_PRICE that is silently ignored would look like it was in force.
      if (config.STATIC_PRICE) issue("STATIC_PRICE", "STATIC_PRICE is set but PRICE_SOURCE is chainlink: set PRICE_SOURCE=static to use it, or remove it");
    } else {
      if (!config.STATIC_PRICE) issue("STATIC_PRICE", "STATIC_PRICE is required when PRICE_SOURCE is static");
      if (config.PRICE_FEED_ADDRESS) issue("PRICE_FEED_ADDRESS", "PRICE_FEED_ADDRESS is set but PRICE_SOURCE is static: set PRICE_SOURCE=chainlink to use it, or remove it");
    }
    // Fees are re-confirmed once per poll; a shorter max age would expire them between polls.
    if (config.FEE_MAX_AGE_SECONDS * 1000 <= config.PRICING_POLL_INTERVAL_MS) {
      issue("FEE_MAX_AGE_SECONDS", "FEE_MAX_AGE_SECONDS must be longer than PRICING_POLL_INTERVAL_MS, or fees would expire between polls");
    }
  },
  // Only once every setting parsed: a malformed value is reported once, not again as missing.
  { when: (payload) => payload.issues.length === 0 });

/** Parsed pricing settings. */
export type PricingConfig = z.output<typeof pricingConfigSchema>;
