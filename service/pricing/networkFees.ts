// Network fees from eth_feeHistory, cached per block. Requests read the cache; only the block poller
// in createPricing talks to the node, and only when the block number has moved.
import type { FeeHistory, PublicClient } from "viem";

import { ServiceError } from "../errors.ts";
import type { PricingConfig } from "./config.ts";

/** EIP-1559 fees for one speed. */
export type FeeTier = { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint };

/** Fees for three speeds, from the priority-fee percentiles in FEE_PERCENTILES. */
export type GasPrices = { slow: FeeTier; standard: FeeTier; fast: FeeTier };

/** How gasPricesFromFeeHistory turns a fee history into tiers. */
export type FeeRules = Pick<PricingConfig, "BASE_FEE_HEADROOM_BPS" | "MIN_PRIORITY_FEE_WEI">;

const TIERS = ["slow", "standard", "fast"] as const;

/**
 * Tiers from a fee history fetched with three reward percentiles. The base fee is the next block's
 * (the last entry of baseFeePerGas). Each tier's priority fee is the median of its percentile over the
 * non-empty blocks, never below MIN_PRIORITY_FEE_WEI: empty blocks report a reward of 0, which says
 * nothing about what inclusion costs, and a test chain reports nothing else.
 *
 * maxFeePerGas = ceil(baseFee × BASE_FEE_HEADROOM_BPS / 10000) + priority. The default 12657 bps covers
 * two full blocks of the EIP-1559 maximum rise of 12.5% (1.125² = 1.265625), so an op quoted now still
 * gets in a block or two later. viem's default doubles both fees instead, which doubles every
 * reservation (requiredPrefund = gas × maxFeePerGas) for headroom that is rarely used.
 */
export function gasPricesFromFeeHistory(history: FeeHistory, rules: FeeRules): { baseFee: bigint; gasPrices: GasPrices } {
  const baseFee = history.baseFeePerGas.at(-1);
  if (baseFee === undefined) throw new Error("eth_feeHistory returned no base fee");
  const rewards = (history.reward ?? []).filter((_, block) => history.gasUsedRatio[block] > 0);
  const headroomBaseFee = (baseFee * BigInt(rules.BASE_FEE_HEADROOM_BPS) + 9_999n) / 10_000n;
  const tier = (index: number): FeeTier => {
    const observed = rewards.map((reward) => reward[index]).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    // The upper median; with no non-empty block there is nothing to take it from.
    const median = observed[Math.floor(observed.length / 2)] ?? 0n;
    const maxPriorityFeePerGas = median > rules.MIN_PRIORITY_FEE_WEI ? median : rules.MIN_PRIORITY_FEE_WEI;
    return { maxFeePerGas: headroomBaseFee + maxPriorityFeePerGas, maxPriorityFeePerGas };
  };
  const [slow, standard, fast] = TIERS.map((_, index) => tier(index));
  return { baseFee, gasPrices: { slow, standard, fast } };
}

type FeeSnapshot = {
  blockNumber: bigint;
  baseFee: bigint;
  gasPrices: GasPrices;
  /** When (ms) the node last confirmed this is still the latest block's data. */
  confirmedAt: number;
};

export type CreateNetworkFeesParameters = {
  publicClient: Pick<PublicClient, "getFeeHistory">;
  config: Pick<PricingConfig, "FEE_PERCENTILES" | "FEE_HISTORY_BLOCKS" | "FEE_MAX_AGE_SECONDS" | "BASE_FEE_HEADROOM_BPS" | "MIN_PRIORITY_FEE_WEI">;
  /** Milliseconds since the epoch. */
  now: () => number;
};

/** The fee cache. */
export function createNetworkFees({ publicClient, config, now }: CreateNetworkFeesParameters) {
  let snapshot: FeeSnapshot | undefined;

  /** The snapshot, or FEES_UNAVAILABLE when there is none or the node has not confirmed it lately. */
  function current(): FeeSnapshot {
    if (!snapshot) {
      throw new ServiceError("FEES_UNAVAILABLE", "Network fees are not known yet; try again shortly");
    }
    const ageSeconds = Math.floor((now() - snapshot.confirmedAt) / 1000);
    // Wall-clock age of the last confirmation, not of the fetch: an idle chain makes no blocks, and its
    // fees stay right as long as the node keeps saying so.
    if (ageSeconds > config.FEE_MAX_AGE_SECONDS) {
      throw new ServiceError("FEES_UNAVAILABLE", `Network fees are out of date: the chain node has not confirmed them for ${ageSeconds} s; try again shortly`, {
        data: { ageSeconds, maxAgeSeconds: config.FEE_MAX_AGE_SECONDS, blockNumber: snapshot.blockNumber.toString() },
      });
    }
    return snapshot;
  }

  return {
    /** Brings the cache up to `blockNumber`, the latest; eth_feeHistory is asked only for a new block. */
    async sync(blockNumber: bigint): Promise<void> {
      if (snapshot?.blockNumber === blockNumber) {
        snapshot.confirmedAt = now();
        return;
      }
      const history = await publicClient.getFeeHistory({
        blockCount: config.FEE_HISTORY_BLOCKS,
        blockNumber,
        rewardPercentiles: [...config.FEE_PERCENTILES],
      });
      snapshot = { blockNumber, ...gasPricesFromFeeHistory(history, config), confirmedAt: now() };
    },
    /** The next block's base fee, in wei. */
    baseFee(): bigint {
      return current().baseFee;
    },
    /** Fee tiers for a UserOperation, in wei. */
    gasPrices(): GasPrices {
      return current().gasPrices;
    },
  };
}
