// Gateways against the ledger, for the orders created in a period (a cohort): what each gateway
// says was paid and refunded, against the credits and refund debits in the accounts' journals.
// The gateways are asked first and the journals read after, so a notification applied while the
// report runs makes the journal newer than the gateway's answer, never older.
import type { Redis } from "ioredis";
import type { Address } from "viem";

import { ServiceError } from "../errors.ts";
import type { Channel, PaymentGateway, PaymentStatus, RefundStatus } from "../gateways/gateway.ts";
import type { Keys } from "../redis.ts";
import type { Order, OrderBook, Refund } from "../topups/orders.ts";
import { mapLimit } from "./limit.ts";
import type { ChannelFigures, Mismatch } from "./report.ts";
import type { Period } from "./period.ts";

/** Journal entries read per Redis call. */
const JOURNAL_PAGE = 1_000;
/** Journal ids are the Redis server's clock and orders the service's: read from this much before the oldest order. */
const JOURNAL_CLOCK_MARGIN_SECONDS = 86_400;
/** Concurrent Redis reads of orders and journals. */
const STORE_CONCURRENCY = 32;

export type GatewaysParameters = {
  redis: Redis;
  keys: Keys;
  orders: OrderBook;
  gateways: Partial<Record<Channel, PaymentGateway>>;
  /** Gateway queries in flight at once. */
  concurrency: number;
  /** More orders than this in one period is refused: split the period. */
  maxOrders: number;
  /** Runs a Redis call, turning its failure into DEPENDENCY_UNAVAILABLE. */
  store: <T>(call: () => Promise<T>) => Promise<T>;
  logger?: { warn(fields: object, message: string): void };
};

/** One order's money in the journal: credits, and the net debit of each refund id. */
type OrderJournal = { creditedFen: bigint; refunds: Map<string, bigint> };

/** What the gateway said about one refund: the fen it paid out and its state (`notified`: learnt from a signed notification; `failedHere`: final as failed, not asked). */
type RefundFact = { fen: bigint; state: RefundStatus["state"] | "notified" | "failedHere" };

type GatewaySide =
  | { verified: false; reason: string }
  | { verified: true; payment: PaymentStatus | { state: "notAsked" }; refunds: Map<string, RefundFact> };

/**
 * The gateway's word on a refund that needs no query: one made at the gateway was learnt from its
 * signed notification, and one final as failed was failed by the gateway and its debit given back.
 */
function knownFact(refund: Refund): RefundFact | null {
  if (refund.origin === "gateway") return { fen: refund.fen, state: "notified" };
  return refund.state === "failed" ? { fen: 0n, state: "failedHere" } : null;
}

type Totals = { orders: number; unverifiedOrders: number; paidFen: bigint; creditedFen: bigint; refundedFen: bigint; debitedFen: bigint };

const emptyTotals = (): Totals => ({ orders: 0, unverifiedOrders: 0, paidFen: 0n, creditedFen: 0n, refundedFen: 0n, debitedFen: 0n });

/** The channel figures as the report shows them. */
function figures(totals: Totals): ChannelFigures {
  const payments = totals.creditedFen - totals.paidFen;
  const refunds = totals.debitedFen - totals.refundedFen;
  return {
    orders: totals.orders,
    unverifiedOrders: totals.unverifiedOrders,
    paidFen: totals.paidFen.toString(),
    creditedFen: totals.creditedFen.toString(),
    refundedFen: totals.refundedFen.toString(),
    debitedFen: totals.debitedFen.toString(),
    paymentsDifferenceFen: payments.toString(),
    refundsDifferenceFen: refunds.toString(),
    differenceFen: (payments - refunds).toString(),
  };
}

const field = (fields: string[], name: string) => {
  for (let index = 0; index + 1 < fields.length; index += 2) if (fields[index] === name) return fields[index + 1];
  return undefined;
};

/** Compares the gateways with the ledger for the orders created in `period`. */
export async function reconcileGateways({ redis, keys, orders, gateways, concurrency, maxOrders, store, logger }: GatewaysParameters, period: Period) {
  const count = await store(() => redis.zcount(keys.ordersByTime(), period.from, `(${period.to}`));
  if (count > maxOrders) {
    throw new ServiceError("INVALID_PARAMS", `the period holds ${count} top-up orders, more than the ${maxOrders} one report checks: reconcile shorter periods`, {
      data: { issues: [{ path: "to", message: `the period holds ${count} orders; at most ${maxOrders}` }], orders: count, maxOrders },
    });
  }
  const ids = await store(() => redis.zrangebyscore(keys.ordersByTime(), period.from, `(${period.to}`));
  // An index entry without its order (a crash between the two writes) is no order: nobody could pay it.
  const cohort = (await mapLimit(ids, STORE_CONCURRENCY, (orderId) => store(() => orders.get(orderId)))).filter((order): order is Order => order !== undefined);
  const refundsOf = await mapLimit(cohort, STORE_CONCURRENCY, (order) => store(() => orders.refunds(order)));

  /** Asks the order's gateway about its payment and its refunds; never throws. */
  async function askGateway(order: Order, refunds: Refund[]): Promise<GatewaySide> {
    const facts = new Map<string, RefundFact>();
    const toAsk: Refund[] = [];
    for (const refund of refunds) {
      const known = knownFact(refund);
      if (known) facts.set(refund.refundId, known);
      else toAsk.push(refund);
    }
    // Closed here only after the gateway closed it (the recovery job closes at the gateway first).
    const askPayment = order.state !== "closed";
    if (!askPayment && toAsk.length === 0) return { verified: true, payment: { state: "notAsked" }, refunds: facts };
    const gateway = gateways[order.channel];
    if (!gateway) return { verified: false, reason: `the ${order.channel} channel is not configured on this service` };
    try {
      for (const refund of toAsk) {
        const status = await gateway.queryRefund(order.orderId, refund.refundId);
        facts.set(refund.refundId, { fen: status.state === "succeeded" ? status.refundFen : 0n, state: status.state });
      }
      const payment = askPayment ? await gateway.queryPayment(order.orderId) : ({ state: "notAsked" } as const);
      return { verified: true, payment, refunds: facts };
    } catch (error) {
      const name = error instanceof Error ? error.name : "Error";
      logger?.warn({ orderId: order.orderId, channel: order.channel, err: { name, message: error instanceof Error ? error.message.split("\n")[0] : String(error) } }, "reconciliation: gateway query failed");
      return { verified: false, reason: `the ${order.channel} gateway did not answer (${name})` };
    }
  }

  /** Sums each cohort order's credits and refund debits from its account's journal. */
  async function readJournals(list: Order[]): Promise<Map<string, OrderJournal>> {
    const wanted = new Map(list.map((order) => [order.orderId, { creditedFen: 0n, refunds: new Map<string, bigint>() } as OrderJournal]));
    const oldest = new Map<Address, number>();
    for (const order of list) oldest.set(order.account, Math.min(oldest.get(order.account) ?? Infinity, order.createdAt));
    await mapLimit([...oldest], STORE_CONCURRENCY, async ([account, createdAt]) => {
      let start = String(Math.max(0, createdAt - JOURNAL_CLOCK_MARGIN_SECONDS) * 1000);
      for (;;) {
        const entries = (await store(() => redis.xrange(keys.journal(account), start, "+", "COUNT", JOURNAL_PAGE))) as [string, string[]][];
        for (const [id, fields] of entries) {
          const journal = wanted.get(field(fields, "orderId") ?? "");
          if (!journal) continue;
          const fenText = field(fields, "fen") ?? "";
          if (!/^\d+$/.test(fenText)) {
            logger?.warn({ account, entry: id }, "reconciliation: a journal entry without a readable fen amount was skipped");
            continue;
          }
          const fen = BigInt(fenText);
          const refundId = field(fields, "refundId") ?? "";
          const add = (delta: bigint) => journal.refunds.set(refundId, (journal.refunds.get(refundId) ?? 0n) + delta);
          switch (field(fields, "type")) {
            case "credit":
              journal.creditedFen += fen;
              break;
            case "refund":
            case "gatewayRefund":
              add(fen);
              break;
            case "refundReversal":
              add(-fen);
              break;
            default:
              logger?.warn({ account, entry: id, type: field(fields, "type") }, "reconciliation: a journal entry of an unknown type was skipped");
          }
        }
        if (entries.length < JOURNAL_PAGE) break;
        start = `(${entries[entries.length - 1][0]}`;
      }
    });
    return wanted;
  }

  const sides = await mapLimit(cohort, concurrency, (order, index) => askGateway(order, refundsOf[index]));
  const journals = await readJournals(cohort);

  const totals = new Map<Channel, Totals>((Object.keys(gateways) as Channel[]).map((channel) => [channel, emptyTotals()]));
  const mismatches: Mismatch[] = [];
  cohort.forEach((order, index) => {
    const channelTotals = totals.get(order.channel) ?? emptyTotals();
    totals.set(order.channel, channelTotals);
    channelTotals.orders++;
    const side = sides[index];
    const base = { orderId: order.orderId, account: order.account, channel: order.channel, state: order.state };
    if (!side.verified) {
      channelTotals.unverifiedOrders++;
      mismatches.push({
        kind: "gateway_unreachable",
        section: "gateways",
        cause: `${side.reason}: this order's payment and refunds are left out of the figures; run the report again once the gateway answers`,
        details: { ...base, amountFen: order.amountFen.toString() },
      });
      return;
    }
    const journal = journals.get(order.orderId) ?? { creditedFen: 0n, refunds: new Map() };
    const refundedFen = [...side.refunds.values()].reduce((sum, fact) => sum + fact.fen, 0n);
    const { payment } = side;
    // Alipay answers TRADE_CLOSED for a paid trade that was then fully refunded: the refunds prove the payment.
    const paidFen = payment.state === "paid" ? payment.amountFen : payment.state === "closed" && refundedFen > 0n && refundedFen >= order.amountFen ? order.amountFen : 0n;
    channelTotals.paidFen += paidFen;
    channelTotals.creditedFen += journal.creditedFen;
    mismatches.push(...paymentMismatches(order, payment, paidFen, journal.creditedFen, base));

    const records = new Map(refundsOf[index].map((refund) => [refund.refundId, refund]));
    for (const refundId of new Set([...records.keys(), ...journal.refunds.keys()])) {
      const debitedFen = journal.refunds.get(refundId) ?? 0n;
      const fact = side.refunds.get(refundId) ?? { fen: 0n, state: "notFound" as const };
      channelTotals.debitedFen += debitedFen;
      channelTotals.refundedFen += fact.fen;
      const mismatch = refundMismatch(records.get(refundId), refundId, debitedFen, fact, base);
      if (mismatch) mismatches.push(mismatch);
    }
  });
  return { channels: Object.fromEntries([...totals].map(([channel, channelTotals]) => [channel, figures(channelTotals)])) as Partial<Record<Channel, ChannelFigures>>, mismatches };
}

type Details = Record<string, string | number | boolean | null>;

/** The mismatch between an order's payment at the gateway and its credits, if any. */
function paymentMismatches(order: Order, payment: PaymentStatus | { state: "notAsked" }, paidFen: bigint, creditedFen: bigint, base: Details): Mismatch[] {
  const otherCurrency = payment.state === "paid" && payment.currency !== order.currency;
  const otherAmount = payment.state === "paid" && payment.amountFen !== order.amountFen;
  if (paidFen === creditedFen && !otherCurrency) return [];
  const details: Details = {
    ...base,
    orderFen: order.amountFen.toString(),
    gatewayState: payment.state,
    gatewayPaidFen: paidFen.toString(),
    creditedFen: creditedFen.toString(),
    ...(payment.state === "paid" ? { tradeNo: payment.tradeNo, gatewayCurrency: payment.currency } : {}),
  };
  const differenceFen = (creditedFen - paidFen).toString();
  const mismatch = (kind: Mismatch["kind"], cause: string): Mismatch[] => [{ kind, section: "gateways", cause, differenceFen, details }];
  if (otherAmount || otherCurrency || (paidFen > 0n && creditedFen > 0n)) {
    return mismatch(
      "amount_mismatch",
      `the gateway reports ${paidFen} fen${payment.state === "paid" ? ` ${payment.currency}` : ""} paid for an order of ${order.amountFen} fen ${order.currency}, and ${creditedFen} fen were credited: check the trade at the gateway before correcting the balance`,
    );
  }
  if (paidFen > 0n && order.state === "pending") {
    return mismatch(
      "stuck_order",
      "paid at the gateway but still pending here: its payment notification never arrived; the top-up recovery job credits it on its next pass (if it stays, check the notify URL and the gateway's delivery log)",
    );
  }
  if (paidFen > 0n) {
    return mismatch("payment_not_credited", `paid at the gateway but never credited, and ${order.state} here: no job revisits it; credit the account after checking the trade, or refund the payer`);
  }
  return mismatch(
    "credit_without_payment",
    `credited ${creditedFen} fen, but the gateway reports the order ${payment.state === "notAsked" ? "closed" : payment.state}: no payment backs the credit; check the trade and reverse the credit if it was never paid`,
  );
}

/** The mismatch between one refund's debit here and the gateway's refund, if any. */
function refundMismatch(record: Refund | undefined, refundId: string, debitedFen: bigint, fact: RefundFact, base: Details): Mismatch | null {
  if (record ? debitedFen === fact.fen : debitedFen === 0n) return null;
  const details: Details = {
    ...base,
    refundId,
    refundState: record?.state ?? null,
    origin: record?.origin ?? null,
    refundFen: record ? record.fen.toString() : null,
    debitedFen: debitedFen.toString(),
    gatewayState: fact.state,
    gatewayRefundedFen: fact.fen.toString(),
  };
  // The refund's part of the channel's difference: more refunded than debited raises it.
  const differenceFen = (fact.fen - debitedFen).toString();
  const mismatch = (kind: Mismatch["kind"], cause: string): Mismatch => ({ kind, section: "gateways", cause, differenceFen, details });
  if (!record) return mismatch("debit_without_refund", `the journal debits ${debitedFen} fen for refund ${refundId}, which the order does not hold: look for a refund record lost after its debit`);
  if (record.state === "pending" && fact.state !== "succeeded") {
    const why =
      fact.state === "failed"
        ? "failed at the gateway; the top-up recovery job gives the fen back once it applies the outcome"
        : fact.state === "notFound"
          ? "unknown to the gateway: the refund call never reached it; the top-up recovery job sends it again under the same id"
          : "still processing at the gateway; the top-up recovery job applies its outcome";
    return mismatch("refund_pending", `refund ${refundId} of ${record.fen} fen was debited here and is ${why}`);
  }
  if (record.state === "succeeded" && fact.state !== "succeeded" && fact.state !== "notified") {
    return mismatch(
      "refund_not_at_gateway",
      `refund ${refundId} is recorded as succeeded here, but the gateway answers ${fact.state}: the payer may not have been paid back (an unreachable Alipay refund query also reads as processing; ask again)`,
    );
  }
  return mismatch("refund_amount_mismatch", `refund ${refundId} debited ${debitedFen} fen here (recorded ${record.state}), and the gateway refunded ${fact.fen} fen`);
}
