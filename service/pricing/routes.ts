import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";

import { ServiceError } from "../errors.ts";
import { address, rpcUserOperation } from "../rpc/schemas.ts";
import type { Pricing } from "./index.ts";

const wei = z.string().regex(/^\d+$/).describe("integer amount in wei");
const fen = z.string().regex(/^\d+$/).describe("integer amount in the currency's minor unit (fen for CNY)");
const tier = z.object({ maxFeePerGas: wei, maxPriorityFeePerGas: wei });

export type PricingRouteOptions = {
  pricing: Pick<Pricing, "gasPrices" | "baseFee" | "quote">;
  paymasterVerificationGasLimit: bigint;
  priceMaxAgeSeconds: number;
  supportedEntryPoints: readonly string[];
};

/** `GET /v1/gas-prices` and `POST /v1/quotes`, both answered from the pricing caches. */
export async function pricingRoutes(app: FastifyInstance, { pricing, paymasterVerificationGasLimit, priceMaxAgeSeconds, supportedEntryPoints }: PricingRouteOptions) {
  const routes = app.withTypeProvider<ZodTypeProvider>();

  routes.get(
    "/v1/gas-prices",
    {
      schema: {
        summary: "Suggested UserOperation fees",
        description: "slow/standard/fast fees from the chain's fee history. Use them instead of viem's default, which doubles the fees and with them every reservation.",
        tags: ["pricing"],
        response: { 200: z.object({ baseFee: wei, slow: tier, standard: tier, fast: tier }) },
      },
    },
    async () => {
      const prices = pricing.gasPrices();
      const text = (t: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }) => ({ maxFeePerGas: t.maxFeePerGas.toString(), maxPriorityFeePerGas: t.maxPriorityFeePerGas.toString() });
      return { baseFee: pricing.baseFee().toString(), slow: text(prices.slow), standard: text(prices.standard), fast: text(prices.fast) };
    },
  );

  routes.post(
    "/v1/quotes",
    {
      schema: {
        summary: "What sponsoring a UserOperation would reserve and is expected to cost",
        tags: ["pricing"],
        body: z.object({ userOperation: rpcUserOperation, entryPoint: address }),
        response: {
          200: z.object({
            maxWei: wei,
            maxChargeFen: fen.describe("what pm_getPaymasterData would reserve: the worst-case prefund at the current rate"),
            expectedWei: wei,
            expectedChargeFen: fen.describe("upper estimate at current fees, if the op used all its gas"),
            currency: z.string(),
            rate: z.object({ price: z.string().describe("fiat units per ETH"), source: z.enum(["chainlink", "static"]), updatedAt: z.number() }),
            expiresAt: z.number().nullable().describe("unix seconds when this price goes stale and sponsorship fails closed; null for a static price"),
          }),
        },
      },
    },
    async (request) => {
      const { userOperation, entryPoint } = request.body;
      if (!supportedEntryPoints.includes(entryPoint)) {
        throw new ServiceError("UNSUPPORTED_ENTRY_POINT", `EntryPoint ${entryPoint} is not supported`, { data: { supported: supportedEntryPoints } });
      }
      const quote = pricing.quote({
        ...userOperation,
        paymasterVerificationGasLimit: userOperation.paymasterVerificationGasLimit ?? paymasterVerificationGasLimit,
        paymasterPostOpGasLimit: userOperation.paymasterPostOpGasLimit ?? 0n,
      });
      const { rate } = quote;
      const whole = rate.answer.toString().padStart(rate.decimals + 1, "0");
      const price = rate.decimals ? `${whole.slice(0, -rate.decimals)}.${whole.slice(-rate.decimals)}` : whole;
      return {
        maxWei: quote.maxWei.toString(),
        maxChargeFen: quote.maxChargeFen.toString(),
        expectedWei: quote.expectedWei.toString(),
        expectedChargeFen: quote.expectedChargeFen.toString(),
        currency: rate.currency,
        rate: { price, source: rate.source, updatedAt: rate.updatedAt },
        expiresAt: rate.source === "static" ? null : rate.updatedAt + priceMaxAgeSeconds,
      };
    },
  );
}
