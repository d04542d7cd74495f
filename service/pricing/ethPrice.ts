// The ETH price in fiat: a Chainlink-compatible feed read once per block by the poller, or a static
// operator price. Requests only read what the last sync stored and judge its age then.
import type { Address, PublicClient } from "viem";

import { ServiceError } from "../errors.ts";
import type { PriceSource } from "./charge.ts";
import type { PricingConfig } from "./config.ts";

/** The parts of Chainlink's AggregatorV3Interface the service reads. */
export const aggregatorV3Abi = [
  { type: "function", name: "decimals", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "uint8" }] },
  { type: "function", name: "description", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "string" }] },
  {
    type: "function",
    name: "latestRoundData",
    stateMutability: "view",
    inputs: [],
    outputs: [
      { name: "roundId", type: "uint80" },
      { name: "answer", type: "int256" },
      { name: "startedAt", type: "uint256" },
      { name: "updatedAt", type: "uint256" },
      { name: "answeredInRound", type: "uint80" },
    ],
  },
] as const;

/** A usable ETH price: fiat units per ETH scaled by 10^decimals. */
export type EthPrice = { answer: bigint; decimals: number; source: PriceSource; updatedAt: number };

/** Where the pricing module logs; a pino or fastify logger fits. */
export type PricingLogger = {
  info(object: Record<string, unknown>, message: string): void;
  warn(object: Record<string, unknown>, message: string): void;
};

export type CreateEthPriceParameters = {
  publicClient: Pick<PublicClient, "readContract">;
  config: Pick<PricingConfig, "PRICE_SOURCE" | "PRICE_FEED_ADDRESS" | "STATIC_PRICE" | "PRICE_MAX_AGE_SECONDS">;
  logger: PricingLogger;
  /** Milliseconds since the epoch. */
  now: () => number;
};

/** The price source createPricing polls: sync reads the chain, price() only reads the cache. */
export type EthPriceSource = { sync(blockNumber: bigint): Promise<void>; price(): EthPrice };

/** The configured price source. */
export function createEthPrice(parameters: CreateEthPriceParameters): EthPriceSource {
  const { config, now } = parameters;
  if (config.PRICE_SOURCE === "static") {
    // The schema's cross-field check guarantees STATIC_PRICE with PRICE_SOURCE=static.
    const price: EthPrice = { ...config.STATIC_PRICE!, source: "static", updatedAt: Math.floor(now() / 1000) };
    return { sync: async () => {}, price: () => price };
  }
  return createChainlinkPrice({ ...parameters, feed: config.PRICE_FEED_ADDRESS! });
}

/**
 * A Chainlink feed. Staleness is judged against the wall clock (`now`), not the chain's latest block
 * time: what matters is how old the price is when a user is charged, and a lagging or stuck node has
 * an old block time that would make an old price look fresh. Tests drive `now` instead, since a test
 * chain's clock moves by time travel.
 *
 * `answeredInRound < roundId` is not checked. Chainlink documents the field as deprecated (OCR feeds
 * always return answeredInRound == roundId), other feeds behind the same interface fill it loosely, and
 * a carried-over answer is caught anyway by its updatedAt, which is what the age is measured from.
 */
function createChainlinkPrice({ publicClient, config, logger, now, feed }: CreateEthPriceParameters & { feed: Address }): EthPriceSource {
  let decimals: number | undefined;
  let round: { blockNumber: bigint; answer: bigint; updatedAt: number } | undefined;

  return {
    async sync(blockNumber) {
      if (round?.blockNumber === blockNumber) return;
      // decimals never change for a feed address, so they are read once.
      if (decimals === undefined) {
        const [feedDecimals, description] = await Promise.all([
          publicClient.readContract({ address: feed, abi: aggregatorV3Abi, functionName: "decimals", blockNumber }),
          publicClient.readContract({ address: feed, abi: aggregatorV3Abi, functionName: "description", blockNumber }),
        ]);
        logger.info({ feed, description, decimals: feedDecimals }, "price feed connected");
        decimals = feedDecimals;
      }
      const [, answer, , updatedAt] = await publicClient.readContract({ address: feed, abi: aggregatorV3Abi, functionName: "latestRoundData", blockNumber });
      round = { blockNumber, answer, updatedAt: Number(updatedAt) };
    },

    price() {
      if (!round || decimals === undefined) {
        throw new ServiceError("PRICE_UNAVAILABLE", "The ETH price has not been read yet; try again shortly");
      }
      const { answer, updatedAt } = round;
      // A round with no timestamp has not been completed; Chainlink's own consumers reject it too.
      if (answer <= 0n || updatedAt === 0) {
        throw new ServiceError("PRICE_UNAVAILABLE", "The price feed reports no usable ETH price; sponsorship is paused until it does", {
          data: { answer: answer.toString(), updatedAt },
        });
      }
      const ageSeconds = Math.floor(now() / 1000) - updatedAt;
      if (ageSeconds > config.PRICE_MAX_AGE_SECONDS) {
        throw new ServiceError("PRICE_STALE", `The ETH price is ${ageSeconds} s old, over the ${config.PRICE_MAX_AGE_SECONDS} s limit; sponsorship resumes when the feed updates`, {
          data: { updatedAt, ageSeconds, maxAgeSeconds: config.PRICE_MAX_AGE_SECONDS },
        });
      }
      return { answer, decimals, source: "chainlink", updatedAt };
    },
  };
}
