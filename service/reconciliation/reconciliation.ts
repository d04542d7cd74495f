// Reconciliation of a period: the gateways against the ledger, the ledger against the chain, and
// the chain against the paymaster's EntryPoint deposit, with every mismatch and its cause. It only
// reads: nothing it finds is corrected here. See README.md beside this file.
import type { Redis } from "ioredis";
import { type Address, BaseError, type PublicClient } from "viem";

import type { EntryPointVersion } from "../chain/entryPoints.ts";
import { ServiceError } from "../errors.ts";
import type { Channel, PaymentGateway } from "../gateways/gateway.ts";
import type { Ledger } from "../ledger/ledger.ts";
import type { Keys } from "../redis.ts";
import type { Anomaly } from "../settlement/anomalies.ts";
import { settlementKeys } from "../settlement/keys.ts";
import type { OrderBook } from "../topups/orders.ts";
import { blockRangeOf } from "./blocks.ts";
import { readChain, reconcileDeposits, reconcileLedger } from "./chain.ts";
import { reconcileGateways } from "./gateways.ts";
import { type Period, periodProblems } from "./period.ts";
import type { Mismatch, ReconciliationReport } from "./report.ts";

export type ReconciliationLogger = { warn(fields: object, message: string): void };

export type CreateReconciliationParameters = {
  redis: Redis;
  keys: Keys;
  /** REDIS_KEY_PREFIX, for settlement's keys. */
  prefix: string;
  ledger: Pick<Ledger, "settledOp" | "settled">;
  orders: OrderBook;
  gateways: Partial<Record<Channel, PaymentGateway>>;
  publicClient: Pick<PublicClient, "getBlock" | "getBlockNumber" | "getLogs" | "readContract">;
  paymasters: Partial<Record<EntryPointVersion, Address>>;
  /** Most blocks per eth_getLogs call (SETTLEMENT_LOG_BLOCK_RANGE). */
  logBlockRange: number;
  currency: string;
  /** Gateway queries in flight at once; the gateways rate-limit merchants. */
  gatewayConcurrency?: number;
  /** Orders one report checks at most. */
  maxOrders?: number;
  logger?: ReconciliationLogger;
  /** Unix seconds. */
  now?: () => number;
};

/** Default for `gatewayConcurrency`. */
export const GATEWAY_CONCURRENCY = 8;
/** Default for `maxOrders`: a month of a busy merchant's top-ups takes minutes of gateway queries. */
export const MAX_ORDERS = 10_000;

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();
const firstLine = (error: unknown) => (error instanceof BaseError ? error.shortMessage : error instanceof Error ? error.message.split("\n")[0] : String(error));

/** The reconciliation report maker. */
export function createReconciliation({
  redis,
  keys,
  prefix,
  ledger,
  orders,
  gateways,
  publicClient,
  paymasters,
  logBlockRange,
  currency,
  gatewayConcurrency = GATEWAY_CONCURRENCY,
  maxOrders = MAX_ORDERS,
  logger,
  now = () => Math.floor(Date.now() / 1000),
}: CreateReconciliationParameters) {
  const settlement = settlementKeys(prefix);

  /** A Redis read; its failure is DEPENDENCY_UNAVAILABLE, with the cause in the log. */
  async function store<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof ServiceError) throw error;
      logger?.warn({ err: { name: (error as Error).name, message: firstLine(error) } }, "reconciliation: Redis read failed");
      throw new ServiceError("DEPENDENCY_UNAVAILABLE", "the ledger's Redis did not answer: retry shortly", { cause: error });
    }
  }

  /** A node call; a JSON-RPC failure is DEPENDENCY_UNAVAILABLE. viem's short message never carries the RPC URL. */
  async function node<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof BaseError)) throw error;
      logger?.warn({ err: { name: error.name, message: error.shortMessage } }, "reconciliation: node call failed");
      throw new ServiceError("DEPENDENCY_UNAVAILABLE", "the chain node did not serve the period's blocks, logs or deposit (an old period needs an archive node): retry shortly", { cause: error });
    }
  }

  return {
    /** Reconciles `period` ([from, to), unix seconds) as things stand now. */
    async report(period: Period): Promise<ReconciliationReport> {
      const asOf = now();
      const problems = periodProblems(period, asOf);
      if (problems.length > 0) {
        throw new ServiceError("INVALID_PARAMS", problems.map(({ path, message }) => `${path} ${message}`).join("; "), { data: { issues: problems } });
      }
      // The chain first, then the ledger: a record settled meanwhile is newer than the events, never older.
      const range = await node(() => blockRangeOf(publicClient, period));
      const chain = await readChain({ client: publicClient, paymasters, logBlockRange, node }, range);
      const [through, storedAnomalies] = await Promise.all([store(() => redis.hget(settlement.through, "block")), store(() => redis.hvals(settlement.anomalies))]);
      const anomalies = new Map<string, Anomaly>();
      for (const json of storedAnomalies) {
        try {
          const anomaly = JSON.parse(json) as Anomaly;
          anomalies.set(`${anomaly.kind}:${anomaly.id}`, anomaly);
        } catch {
          logger?.warn({}, "reconciliation: an unreadable settlement anomaly was skipped");
        }
      }
      const settledThrough = through === null ? null : BigInt(through);
      const ledgerVsChain = await reconcileLedger({ ledger, store, anomalies, settledThrough }, range, chain);
      const deposits = reconcileDeposits(chain);
      const gatewaysVsLedger = await reconcileGateways({ redis, keys, orders, gateways, concurrency: gatewayConcurrency, maxOrders, store, logger }, period);

      const inPeriod = [...anomalies.values()].filter((anomaly) => anomaly.at >= period.from && anomaly.at < period.to).sort((a, b) => a.at - b.at || a.id.localeCompare(b.id));
      const unexplained: Mismatch[] = inPeriod
        .filter((anomaly) => !ledgerVsChain.explained.has(anomaly.id))
        .map((anomaly) => ({
          kind: "settlement_anomaly",
          section: "settlement",
          cause: `settlement recorded ${anomaly.kind} at ${iso(anomaly.at)}: ${anomaly.kind === "reorg" ? "blocks it had read were replaced; charges settled from them may be wrong (see settled_block_mismatch and settled_without_event)" : "see service/settlement/README.md (Anomalies)"}`,
          details: { anomalyKind: anomaly.kind, id: anomaly.id },
        }));

      const mismatches = [...gatewaysVsLedger.mismatches, ...ledgerVsChain.mismatches, ...deposits.mismatches, ...unexplained];
      // Every non-zero difference has mismatches that add up to it; checked anyway, since "clean" is the report's verdict.
      const differences = [
        ...Object.values(gatewaysVsLedger.channels).map((figures) => figures!.differenceFen),
        ...Object.values(gatewaysVsLedger.channels).map((figures) => figures!.paymentsDifferenceFen),
        ...Object.values(gatewaysVsLedger.channels).map((figures) => figures!.refundsDifferenceFen),
        ...Object.values(ledgerVsChain.figures).map((figures) => figures!.differenceWei),
        ...Object.values(deposits.figures).map((figures) => figures!.differenceWei),
      ];
      return {
        period: {
          from: iso(period.from),
          to: iso(period.to),
          fromUnix: period.from,
          toUnix: period.to,
          asOf: iso(asOf),
          complete: period.to <= asOf,
          fromBlock: Number(range.fromBlock),
          toBlock: Number(range.toBlock),
          headBlock: Number(range.head),
        },
        currency,
        gateways: gatewaysVsLedger.channels,
        ledgerVsChain: ledgerVsChain.figures,
        chainVsDeposit: deposits.figures,
        settlement: {
          settledThroughBlock: settledThrough === null ? null : Number(settledThrough),
          anomalies: inPeriod.map((anomaly) => ({ kind: anomaly.kind, id: anomaly.id, at: iso(anomaly.at), details: anomaly.details })),
        },
        mismatches,
        clean: mismatches.length === 0 && differences.every((difference) => difference === "0"),
      };
    },
  };
}

export type Reconciliation = ReturnType<typeof createReconciliation>;
