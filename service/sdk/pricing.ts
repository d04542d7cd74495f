// Fee suggestions (`GET /v1/gas-prices`) and quotes (`POST /v1/quotes`).
import type { Address } from "viem";

import type { Transport } from "./http.ts";
import { type UserOperationInput, addressParameter, decimal, formatUserOperation, invalidParameter, string } from "./wire.ts";

export type GasTier = "slow" | "standard" | "fast";

/** EIP-1559 fees per gas, in wei. */
export type FeesPerGas = { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint };

/** The service's fee suggestions from recent blocks, in wei. */
export type GasPrices = { baseFee: bigint } & Record<GasTier, FeesPerGas>;

export type QuoteParameters = {
  /** The op to price; gas limits and fees it lacks count as zero. */
  userOperation: UserOperationInput;
  entryPoint: Address;
  signal?: AbortSignal | undefined;
};

/** What sponsoring an op would reserve and is expected to cost. */
export type Quote = {
  /** The EntryPoint's required prefund: every gas limit × maxFeePerGas. */
  maxWei: bigint;
  /** What `pm_getPaymasterData` would reserve from the balance, in fen. */
  maxChargeFen: bigint;
  expectedWei: bigint;
  /** An upper estimate at current fees, if the op used all its gas, in fen. */
  expectedChargeFen: bigint;
  currency: string;
  /** The ETH price used: fiat units per ETH as a decimal string. */
  rate: { price: string; source: string; updatedAt: Date };
  /** When this price goes stale and sponsorship fails closed; null for a static price. */
  expiresAt: Date | null;
};

const TIERS: readonly GasTier[] = ["slow", "standard", "fast"];

/** The service's slow/standard/fast fee suggestions. */
export async function getGasPrices(transport: Transport, { signal }: { signal?: AbortSignal | undefined } = {}): Promise<GasPrices> {
  const answer = await transport.request<Record<string, Record<string, unknown> | undefined>>("GET", "/v1/gas-prices", { signal });
  const tier = (name: GasTier): FeesPerGas => ({
    maxFeePerGas: decimal(answer?.[name]?.maxFeePerGas, `${name}.maxFeePerGas`),
    maxPriorityFeePerGas: decimal(answer?.[name]?.maxPriorityFeePerGas, `${name}.maxPriorityFeePerGas`),
  });
  return { baseFee: decimal(answer?.baseFee, "baseFee"), slow: tier("slow"), standard: tier("standard"), fast: tier("fast") };
}

/**
 * A fee estimator for viem's and permissionless's `userOperation.estimateFeesPerGas` hook: one tier
 * of the service's suggestions. Without it viem doubles the node's fees, and the paymaster reserves
 * every gas limit × maxFeePerGas, so the doubled fees double every reservation. Concurrent calls
 * share one request.
 */
export function createFeeEstimator(transport: Transport, tier: GasTier = "standard"): () => Promise<FeesPerGas> {
  if (!TIERS.includes(tier)) throw invalidParameter(`tier must be one of ${TIERS.join(", ")}`, "tier");
  let inFlight: Promise<GasPrices> | undefined;
  return async () => {
    inFlight ??= getGasPrices(transport).finally(() => {
      inFlight = undefined;
    });
    const { maxFeePerGas, maxPriorityFeePerGas } = (await inFlight)[tier];
    return { maxFeePerGas, maxPriorityFeePerGas };
  };
}

/** What sponsoring `userOperation` would reserve now (the worst case) and is expected to cost. */
export async function quote(transport: Transport, { userOperation, entryPoint, signal }: QuoteParameters): Promise<Quote> {
  const body = { userOperation: formatUserOperation(userOperation), entryPoint: addressParameter(entryPoint, "entryPoint") };
  const answer = await transport.request<Record<string, unknown>>("POST", "/v1/quotes", { body, signal });
  const rate = (answer?.rate ?? {}) as Record<string, unknown>;
  const expiresAt = answer?.expiresAt;
  return {
    maxWei: decimal(answer?.maxWei, "maxWei"),
    maxChargeFen: decimal(answer?.maxChargeFen, "maxChargeFen"),
    expectedWei: decimal(answer?.expectedWei, "expectedWei"),
    expectedChargeFen: decimal(answer?.expectedChargeFen, "expectedChargeFen"),
    currency: string(answer?.currency, "currency"),
    rate: { price: string(rate.price, "rate.price"), source: string(rate.source, "rate.source"), updatedAt: new Date(Number(rate.updatedAt) * 1000) },
    expiresAt: typeof expiresAt === "number" ? new Date(expiresAt * 1000) : null,
  };
}
