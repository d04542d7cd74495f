import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { FeeHistory } from "viem";

import { type FeeRules, gasPricesFromFeeHistory } from "./networkFees.ts";

const GWEI = 1_000_000_000n;
const RULES: FeeRules = { BASE_FEE_HEADROOM_BPS: 12_657, MIN_PRIORITY_FEE_WEI: 1_000_000n };

/** A history of blocks given as [gasUsedRatio, [p10, p50, p90] rewards]; the next block's base fee last. */
function history(blocks: [number, bigint[]][], nextBaseFee: bigint): FeeHistory {
  return {
    oldestBlock: 100n,
    baseFeePerGas: [...blocks.map(() => 7n * GWEI), nextBaseFee],
    gasUsedRatio: blocks.map(([ratio]) => ratio),
    reward: blocks.map(([, reward]) => reward),
  };
}

describe("gasPricesFromFeeHistory", () => {
  it("takes the next block's base fee times 12657 bps, rounded up, plus each tier's median tip", () => {
    const { baseFee, gasPrices } = gasPricesFromFeeHistory(
      history(
        [
          [0.5, [1n * GWEI, 2n * GWEI, 9n * GWEI]],
          [0.9, [3n * GWEI, 4n * GWEI, 5n * GWEI]],
          [0.2, [2n * GWEI, 3n * GWEI, 4n * GWEI]],
        ],
        10n * GWEI + 1n,
      ),
      RULES,
    );
    assert.equal(baseFee, 10n * GWEI + 1n);
    // ceil((10e9 + 1) × 12657 / 10000) = ceil(12,657,000,001.2657) = 12,657,000,002.
    const headroom = 12_657_000_002n;
    assert.deepEqual(gasPrices, {
      slow: { maxPriorityFeePerGas: 2n * GWEI, maxFeePerGas: headroom + 2n * GWEI },
      standard: { maxPriorityFeePerGas: 3n * GWEI, maxFeePerGas: headroom + 3n * GWEI },
      fast: { maxPriorityFeePerGas: 5n * GWEI, maxFeePerGas: headroom + 5n * GWEI },
    });
  });

  it("ignores empty blocks, whose zero rewards say nothing, and takes the upper median of an even count", () => {
    const { gasPrices } = gasPricesFromFeeHistory(
      history(
        [
          [0, [0n, 0n, 0n]],
          [0.3, [2n * GWEI, 2n * GWEI, 6n * GWEI]],
          [0, [0n, 0n, 0n]],
          [0.4, [1n * GWEI, 3n * GWEI, 8n * GWEI]],
        ],
        GWEI,
      ),
      RULES,
    );
    assert.deepEqual(
      [gasPrices.slow.maxPriorityFeePerGas, gasPrices.standard.maxPriorityFeePerGas, gasPrices.fast.maxPriorityFeePerGas],
      [2n * GWEI, 3n * GWEI, 8n * GWEI],
    );
  });

  it("falls back to MIN_PRIORITY_FEE_WEI when every block is empty, the reward list is missing, or tips are lower", () => {
    const expected = { maxPriorityFeePerGas: 1_000_000n, maxFeePerGas: 1_265_700_000n + 1_000_000n };
    const empty = gasPricesFromFeeHistory(history([[0, [0n, 0n, 0n]], [0, [0n, 0n, 0n]]], GWEI), RULES);
    assert.deepEqual(empty.gasPrices, { slow: expected, standard: expected, fast: expected });

    const noRewards = gasPricesFromFeeHistory({ ...history([[0.5, [5n, 5n, 5n]]], GWEI), reward: undefined }, RULES);
    assert.deepEqual(noRewards.gasPrices.fast, expected);

    const cheap = gasPricesFromFeeHistory(history([[0.5, [1n, 999_999n, 3_000_000n]]], GWEI), RULES);
    assert.deepEqual(cheap.gasPrices.slow, expected);
    assert.deepEqual(cheap.gasPrices.standard, expected);
    assert.equal(cheap.gasPrices.fast.maxPriorityFeePerGas, 3_000_000n);
  });

  it("applies no headroom at 10000 bps", () => {
    const { gasPrices } = gasPricesFromFeeHistory(history([[0.5, [GWEI, GWEI, GWEI]]], 3n * GWEI), { ...RULES, BASE_FEE_HEADROOM_BPS: 10_000 });
    assert.equal(gasPrices.standard.maxFeePerGas, 4n * GWEI);
  });

  it("refuses a history without a base fee", () => {
    assert.throws(() => gasPricesFromFeeHistory({ oldestBlock: 0n, baseFeePerGas: [], gasUsedRatio: [], reward: [] }, RULES), /no base fee/);
  });
});
