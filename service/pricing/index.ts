// Gas pricing: network fees and the ETH price, kept fresh by one block poller, and the quote a
// sponsorship reserves against. Every request-time call is synchronous and reads only the caches.
import { BaseError, type PublicClient } from "viem";

import { ServiceError } from "../errors.ts";
import { type LockedRate, chargeFen } from "./charge.ts";
import type { PricingConfig } from "./config.ts";
import { type PricingLogger, createEthPrice } from "./ethPrice.ts";
import { type UserOperationGas, expectedCostWei, maxPrefundWei } from "./gas.ts";
import { type GasPrices, createNetworkFees } from "./networkFees.ts";

export { type LockedRate, type LockedRateJson, type PriceSource, chargeFen, lockedRateFromJson, lockedRateToJson } from "./charge.ts";
export { type PricingConfig, pricingConfigSchema } from "./config.ts";
export type { PricingLogger } from "./ethPrice.ts";
export { type UserOperationGas, expectedCostWei, maxPrefundWei } from "./gas.ts";
export type { FeeTier, GasPrices } from "./networkFees.ts";

export type CreatePricingParameters = {
  publicClient: Pick<PublicClient, "getBlockNumber" | "getFeeHistory" | "readContract">;
  config: PricingConfig;
  logger?: PricingLogger;
  /** Milliseconds since the epoch; injectable so tests can age fees and prices. */
  now?: () => number;
};

/** What a sponsorship of `op` costs at the current fees and price. */
export type Quote = {
  /** The EntryPoint's required prefund: the most the op can take from the paymaster's deposit. */
  maxWei: bigint;
  /** maxWei in fiat minor units: what to reserve from the user's balance. */
  maxChargeFen: bigint;
  /** Upper estimate of the actual cost at the current base fee (all gas used). */
  expectedWei: bigint;
  expectedChargeFen: bigint;
  /** The rate both charges used; store it with the reservation and settle with it. */
  rate: LockedRate;
};

export type Pricing = ReturnType<typeof createPricing>;

const silentLogger: PricingLogger = { info() {}, warn() {} };

/** The pricing module. Call start() before serving; until the first fetch every request fails closed. */
export function createPricing({ publicClient, config, logger = silentLogger, now = Date.now }: CreatePricingParameters) {
  const fees = createNetworkFees({ publicClient, config, now });
  const price = createEthPrice({ publicClient, config, logger, now });
  const failing = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;

  /** Runs one refresh step, logging when it starts failing and when it recovers, not on every poll. */
  async function attempt(what: string, step: () => Promise<void>): Promise<boolean> {
    try {
      await step();
      if (failing.delete(what)) logger.info({ what }, "pricing refresh recovered");
      return true;
    } catch (error) {
      if (!failing.has(what)) logger.warn({ what, error: loggableError(error) }, "pricing refresh failed; serving the cache until it is too old");
      failing.add(what);
      return false;
    }
  }

  async function poll(): Promise<void> {
    let blockNumber = 0n;
    // cacheTime 0: viem would otherwise answer from its own block-number cache.
    const answered = await attempt("block number", async () => {
      blockNumber = await publicClient.getBlockNumber({ cacheTime: 0 });
    });
    if (answered) await Promise.all([attempt("fees", () => fees.sync(blockNumber)), attempt("price", () => price.sync(blockNumber))]);
  }

  function schedule(): void {
    timer = setTimeout(async () => {
      await poll();
      if (running) schedule();
    }, config.PRICING_POLL_INTERVAL_MS);
    // The poller alone must not keep the process alive.
    timer.unref();
  }

  function lockRate(): LockedRate {
    const { answer, decimals, source, updatedAt } = price.price();
    return {
      answer,
      decimals,
      currency: config.FIAT_CURRENCY,
      fiatDecimals: config.FIAT_DECIMALS,
      markupBps: config.MARKUP_BPS,
      fixedFeeFen: config.FIXED_FEE_FEN,
      source,
      updatedAt,
      lockedAt: Math.floor(now() / 1000),
    };
  }

  return {
    /** Fetches fees and price once, then refreshes them in the background; resolves even if the node is down. */
    async start(): Promise<void> {
      if (running) return;
      running = true;
      await poll();
      if (running) schedule();
    },
    /** Stops the background refresh; the caches then age out. */
    stop(): void {
      running = false;
      clearTimeout(timer);
    },
    /** Whether fees and the price are usable right now (for readiness probes). */
    ready(): { fees: boolean; price: boolean } {
      return { fees: succeeds(() => fees.gasPrices()), price: succeeds(lockRate) };
    },
    /** Fee tiers in wei; throws FEES_UNAVAILABLE. */
    gasPrices(): GasPrices {
      return fees.gasPrices();
    },
    /** The next block's base fee in wei; throws FEES_UNAVAILABLE. */
    baseFee(): bigint {
      return fees.baseFee();
    },
    /** The current rate with the operator's terms; throws PRICE_UNAVAILABLE or PRICE_STALE. */
    lockRate,
    /** Worst-case and expected cost of `op` in wei and fiat; throws FEES_UNAVAILABLE, PRICE_UNAVAILABLE or PRICE_STALE. */
    quote(op: UserOperationGas): Quote {
      const baseFee = fees.baseFee();
      const rate = lockRate();
      const maxWei = maxPrefundWei(op);
      const expectedWei = expectedCostWei(op, baseFee);
      return { maxWei, maxChargeFen: chargeFen({ wei: maxWei, rate }), expectedWei, expectedChargeFen: chargeFen({ wei: expectedWei, rate }), rate };
    },
  };
}

function succeeds(read: () => unknown): boolean {
  try {
    read();
    return true;
  } catch (error) {
    if (error instanceof ServiceError) return false;
    throw error;
  }
}

/**
 * An error for the log, without anything that could carry a credential. viem's full messages and
 * details include the RPC URL, where providers put API keys, and so may a transport's own errors;
 * so the log gets viem's short messages, and of other causes only their names and codes. A top-level
 * error that is not viem's was thrown by this module, and its message is safe.
 */
function loggableError(error: unknown): string {
  if (!(error instanceof BaseError)) return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const parts = [`${error.name}: ${error.shortMessage}`];
  for (let cause = error.cause; cause instanceof Error; cause = cause.cause) {
    const code = (cause as { code?: unknown }).code;
    parts.push(cause instanceof BaseError ? `${cause.name}: ${cause.shortMessage}` : code === undefined ? cause.name : `${cause.name} (${String(code)})`);
  }
  return parts.join(" ← ");
}
