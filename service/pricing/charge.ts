// Wei → fiat, written once. A rate is locked when a sponsorship is reserved and stored with the
// reservation, so settlement charges the actual cost on exactly the terms the user was quoted.
import { z } from "zod";

/** Where a locked price came from. */
export type PriceSource = "chainlink" | "static";

/** An ETH price and the operator's terms, frozen at reservation time. */
export type LockedRate = {
  /** Fiat units per 1 ETH, scaled by 10^decimals: ¥25,000.50 on an 8-decimal feed is 2_500_050_000_000n. */
  answer: bigint;
  /** Decimals of `answer` (the feed's, or those written in STATIC_PRICE). */
  decimals: number;
  /** ISO 4217 code of the fiat currency, e.g. "CNY". */
  currency: string;
  /** Decimals of the currency's minor unit: 2 for CNY, so amounts are in fen. */
  fiatDecimals: number;
  /** Markup over cost in basis points (1000 = 10%). */
  markupBps: number;
  /** Flat fee per operation, in minor units. */
  fixedFeeFen: bigint;
  source: PriceSource;
  /** Unix seconds when the price was published (feed round) or loaded (static price). */
  updatedAt: number;
  /** Unix seconds when the rate was locked. */
  lockedAt: number;
};

const BPS = 10_000n;
const WEI_PER_ETH = 10n ** 18n;

/** `numerator / denominator`, rounded up; both non-negative, denominator positive. */
function divideRoundingUp(numerator: bigint, denominator: bigint): bigint {
  return (numerator + denominator - 1n) / denominator;
}

/**
 * The fiat charge, in minor units (fen), for `wei` of gas at `rate`:
 * ceil(wei × answer × (10000 + markupBps) × 10^fiatDecimals / (10^18 × 10^decimals × 10000)) + fixedFeeFen.
 * One division, rounded up once, so the operator never loses a fraction of a fen.
 */
export function chargeFen({ wei, rate }: { wei: bigint; rate: LockedRate }): bigint {
  if (wei < 0n) throw new RangeError(`wei must not be negative, got ${wei}`);
  const numerator = wei * rate.answer * (BPS + BigInt(rate.markupBps)) * 10n ** BigInt(rate.fiatDecimals);
  const denominator = WEI_PER_ETH * 10n ** BigInt(rate.decimals) * BPS;
  return divideRoundingUp(numerator, denominator) + rate.fixedFeeFen;
}

const unsignedInteger = z.string().regex(/^\d+$/).transform(BigInt);
const seconds = z.number().int().nonnegative();

/** The JSON shape of a LockedRate: bigints as decimal strings, so it survives JSON.stringify and Redis. */
export const lockedRateJsonSchema = z.object({
  answer: unsignedInteger.refine((answer) => answer > 0n),
  // A feed's decimals() is a uint8.
  decimals: z.number().int().min(0).max(255),
  currency: z.string().regex(/^[A-Z]{3}$/),
  fiatDecimals: z.number().int().min(0).max(18),
  markupBps: z.number().int().nonnegative(),
  fixedFeeFen: unsignedInteger,
  source: z.enum(["chainlink", "static"]),
  updatedAt: seconds,
  lockedAt: seconds,
});

/** A LockedRate as stored. */
export type LockedRateJson = z.input<typeof lockedRateJsonSchema>;

/** A LockedRate ready for JSON.stringify. */
export function lockedRateToJson(rate: LockedRate): LockedRateJson {
  return { ...rate, answer: rate.answer.toString(), fixedFeeFen: rate.fixedFeeFen.toString() };
}

/** A LockedRate back from storage; throws a ZodError when the stored value is not one. */
export function lockedRateFromJson(value: unknown): LockedRate {
  return lockedRateJsonSchema.parse(value);
}
