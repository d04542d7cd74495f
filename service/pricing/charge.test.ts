import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ZodError } from "zod";

import { type LockedRate, chargeFen, lockedRateFromJson, lockedRateToJson } from "./charge.ts";

/** ¥25,000.50 per ETH on an 8-decimal feed, 10% markup, 5 fen per operation. */
const RATE: LockedRate = {
  answer: 2_500_050_000_000n,
  decimals: 8,
  currency: "CNY",
  fiatDecimals: 2,
  markupBps: 1000,
  fixedFeeFen: 5n,
  source: "chainlink",
  updatedAt: 1_700_000_000,
  lockedAt: 1_700_000_030,
};

const bare = (overrides: Partial<LockedRate>): LockedRate => ({ ...RATE, markupBps: 0, fixedFeeFen: 0n, ...overrides });

describe("chargeFen", () => {
  it("charges a hand-computed amount to the fen", () => {
    // 1e15 wei = 0.001 ETH; × ¥25,000.50 = ¥25.0005; × 1.10 = ¥27.50055 = 2750.055 fen → 2751, + 5 fee = 2756.
    assert.equal(chargeFen({ wei: 10n ** 15n, rate: RATE }), 2756n);
    // A sponsored op: 300,000 gas × 2 gwei = 6e14 wei = 0.0006 ETH; × ¥25,000.50 = ¥15.0003; × 1.10 = ¥16.50033
    // = 1650.033 fen → 1651, + 5 = 1656.
    assert.equal(chargeFen({ wei: 300_000n * 2_000_000_000n, rate: RATE }), 1656n);
  });

  it("gives the same fen for the same price on an 18-decimal feed and as a 2-decimal static price", () => {
    const eighteen = { ...RATE, answer: 25_000_500_000_000_000_000_000n, decimals: 18 };
    const twoDecimals = { ...RATE, answer: 2_500_050n, decimals: 2, source: "static" as const };
    for (const wei of [10n ** 15n, 1n, 123_456_789_012_345n]) {
      const expected = chargeFen({ wei, rate: RATE });
      assert.equal(chargeFen({ wei, rate: eighteen }), expected);
      assert.equal(chargeFen({ wei, rate: twoDecimals }), expected);
    }
  });

  it("does not round an exact amount up", () => {
    // 1 ETH at ¥20,000.00 with no markup is exactly 2,000,000 fen.
    assert.equal(chargeFen({ wei: 10n ** 18n, rate: bare({ answer: 2_000_000n, decimals: 2 }) }), 2_000_000n);
    // 0.5 ETH at ¥20,000 plus 10% is ¥11,000 exactly.
    assert.equal(chargeFen({ wei: 5n * 10n ** 17n, rate: bare({ answer: 2_000_000n, decimals: 2, markupBps: 1000 }) }), 1_100_000n);
  });

  it("rounds every fraction of a fen up, however small", () => {
    const rate = bare({ answer: 2_000_000n, decimals: 2 });
    // One wei over 1 ETH is 2e-12 fen over 2,000,000 fen.
    assert.equal(chargeFen({ wei: 10n ** 18n + 1n, rate }), 2_000_001n);
    // A single wei is worth 2.50005e-12 fen and still costs 1 fen.
    assert.equal(chargeFen({ wei: 1n, rate: bare({}) }), 1n);
    // 0.5 fen → 1: 2.5e11 wei at ¥20,000 = ¥0.005.
    assert.equal(chargeFen({ wei: 250_000_000_000n, rate }), 1n);
  });

  it("charges only the fixed fee for zero wei", () => {
    assert.equal(chargeFen({ wei: 0n, rate: RATE }), 5n);
    assert.equal(chargeFen({ wei: 0n, rate: bare({}) }), 0n);
  });

  it("uses the currency's minor unit: 0 decimals for a yen-like currency", () => {
    // 0.001 ETH at 500,000 per ETH = 500 exactly; one wei more rounds up to 501.
    const rate = bare({ answer: 500_000n, decimals: 0, currency: "JPY", fiatDecimals: 0 });
    assert.equal(chargeFen({ wei: 10n ** 15n, rate }), 500n);
    assert.equal(chargeFen({ wei: 10n ** 15n + 1n, rate }), 501n);
  });

  it("stays exact far beyond any real prefund (5 × uint128 gas × uint128 fee)", () => {
    const max128 = 2n ** 128n - 1n;
    const wei = 5n * max128 * max128;
    const charge = chargeFen({ wei, rate: RATE });
    assert.ok(charge > BigInt(Number.MAX_SAFE_INTEGER));
    assert.equal(charge, ceilingOracle(wei, RATE) + RATE.fixedFeeFen);
  });

  it("refuses a negative amount", () => {
    assert.throws(() => chargeFen({ wei: -1n, rate: RATE }), RangeError);
  });

  it("matches an exact rational computation on 2,000 random cases and never undercharges", () => {
    const random = seededRandom(0x5eed);
    for (let i = 0; i < 2000; i++) {
      const rate = bare({
        answer: 1n + random.bigint(80),
        decimals: Number(random.bigint(5) % 19n),
        fiatDecimals: Number(random.bigint(3) % 7n),
        markupBps: Number(random.bigint(17)),
        fixedFeeFen: random.bigint(10),
      });
      const wei = i % 10 === 0 ? 0n : random.bigint(Number(random.bigint(8) % 160n) + 1);
      const charge = chargeFen({ wei, rate });
      const context = `case ${i}: wei=${wei} rate=${JSON.stringify(lockedRateToJson(rate))}`;
      assert.equal(charge, ceilingOracle(wei, rate) + rate.fixedFeeFen, context);
      // The defining property of the ceiling: charge - fee ≥ exact value > charge - fee - 1.
      const { numerator, denominator } = exactFen(wei, rate);
      const variable = charge - rate.fixedFeeFen;
      assert.ok(variable * denominator >= numerator && (variable - 1n) * denominator < numerator, context);
      assert.ok(chargeFen({ wei: wei + 1n, rate }) >= charge, `monotonic, ${context}`);
    }
  });
});

describe("LockedRate JSON", () => {
  it("round-trips through JSON.stringify with bigints as decimal strings", () => {
    const rate = { ...RATE, answer: 2n ** 200n + 7n };
    const text = JSON.stringify(lockedRateToJson(rate));
    assert.match(text, /"answer":"1606938044258990275541962092341162602522202993782792835301383"/);
    assert.match(text, /"fixedFeeFen":"5"/);
    assert.deepEqual(lockedRateFromJson(JSON.parse(text)), rate);
  });

  it("rejects stored values that are not a rate", () => {
    const good = lockedRateToJson(RATE);
    for (const bad of [
      { ...good, answer: "0" },
      { ...good, answer: "25000.50" },
      { ...good, answer: 2_500_050_000_000 },
      { ...good, fixedFeeFen: "-1" },
      { ...good, currency: "cny" },
      { ...good, source: "oracle" },
      { ...good, lockedAt: 1.5 },
      { ...good, decimals: undefined },
    ]) {
      assert.throws(() => lockedRateFromJson(bad), ZodError, JSON.stringify(bad));
    }
  });
});

/** The exact charge before rounding, as a fraction in fen, reduced to lowest terms. */
function exactFen(wei: bigint, rate: LockedRate): { numerator: bigint; denominator: bigint } {
  // Multiply factor by factor, reducing as we go, so the oracle shares no arithmetic shape with chargeFen.
  let numerator = 1n;
  let denominator = 1n;
  const times = (n: bigint, d: bigint) => {
    numerator *= n;
    denominator *= d;
    const divisor = gcd(numerator, denominator);
    if (divisor > 1n) {
      numerator /= divisor;
      denominator /= divisor;
    }
  };
  times(wei, 10n ** 18n); // ETH
  times(rate.answer, 10n ** BigInt(rate.decimals)); // fiat units
  times(BigInt(10_000 + rate.markupBps), 10_000n); // with markup
  times(10n ** BigInt(rate.fiatDecimals), 1n); // minor units
  return { numerator, denominator };
}

function ceilingOracle(wei: bigint, rate: LockedRate): bigint {
  const { numerator, denominator } = exactFen(wei, rate);
  const quotient = numerator / denominator;
  return numerator % denominator === 0n ? quotient : quotient + 1n;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a < 0n ? -a : a;
}

/** A reproducible generator (xorshift64*), so a failing case can be replayed from its index. */
function seededRandom(seed: number) {
  let state = BigInt(seed) || 1n;
  const mask = (1n << 64n) - 1n;
  const next64 = () => {
    state ^= state >> 12n;
    state ^= (state << 25n) & mask;
    state ^= state >> 27n;
    return (state * 0x2545f4914f6cdd1dn) & mask;
  };
  return {
    /** A random bigint below 2^bits. */
    bigint(bits: number): bigint {
      let value = 0n;
      for (let have = 0; have < bits; have += 64) value = (value << 64n) | next64();
      return value & ((1n << BigInt(bits)) - 1n);
    },
  };
}
