// Fiat top-ups: gateway orders, payment and refund notifications, refunds of unused balance, and
// the recovery of notifications that never came. Every money effect goes through the order book's
// atomic scripts, so however events arrive (twice, concurrently, out of order, after a crash) an
// order is credited once and a refund debited once.
import type { Address } from "viem";

import { ServiceError } from "../errors.ts";
import type { Channel, GatewayNotification, PaymentGateway, RefundStatus } from "../gateways/gateway.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { type Order, type OrderBook, type Refund, newOrderId, newRefundId } from "./orders.ts";

type Log = (fields: Record<string, unknown>, message: string) => void;
export type TopUpsLogger = { info: Log; warn: Log; error: Log };

export type TopUpsOptions = {
  orders: OrderBook;
  ledger: Ledger;
  gateways: Partial<Record<Channel, PaymentGateway>>;
  currency: string;
  minFen: bigint;
  maxFen: bigint;
  expirySeconds: number;
  subject: string;
  logger: TopUpsLogger;
  now: () => number;
};

/** What a notification handler tells the gateway: acknowledge it, or have it sent again. */
export type NotificationOutcome = { acknowledge: boolean; outcome: string };

/** A refund this service started through a gateway's refund API. */
export type RefundResult = { refundId: string; orderId: string; channel: Channel; fen: bigint; state: Refund["state"] };

/** How many of the account's newest orders a refund may go back through. */
const REFUNDABLE_ORDERS_SCANNED = 100;

export function createTopUps(options: TopUpsOptions) {
  const { orders, ledger, gateways, currency, minFen, maxFen, expirySeconds, subject, logger, now } = options;

  function gatewayFor(channel: Channel): PaymentGateway {
    const gateway = gateways[channel];
    if (!gateway) {
      throw new ServiceError("CHANNEL_UNAVAILABLE", `the ${channel} channel is not configured on this service`, {
        data: { channel, available: Object.keys(gateways) },
      });
    }
    return gateway;
  }

  /** A gateway call that failed: the caller sees a retryable error, the log keeps the cause. */
  function gatewayFailure(channel: Channel, what: string, error: unknown): ServiceError {
    return new ServiceError("GATEWAY_UNAVAILABLE", `the ${channel} gateway did not answer ${what}; retry later`, { data: { channel }, cause: error });
  }

  /** Applies a payment the gateway vouches for; a locally closed order is credited only if a query confirms it. */
  async function settlePayment(order: Order, payment: { amountFen: bigint; currency: string; tradeNo: string; paidAt: number }): Promise<boolean> {
    const result = await orders.applyPayment(order, { channel: order.channel, ...payment }, { now: now(), fromClosed: false });
    switch (result.outcome) {
      case "credited":
        logger.info({ orderId: order.orderId, account: order.account, fen: payment.amountFen.toString(), from: result.stateBefore }, "top-up credited");
        return true;
      case "unchanged":
        if (result.stateBefore !== "closed") return true;
        return settleClosedOrder(order);
      case "mismatch":
        logger.error(
          { orderId: order.orderId, orderFen: order.amountFen.toString(), notifiedFen: payment.amountFen.toString(), orderCurrency: order.currency, notifiedCurrency: payment.currency },
          "payment refused: amount or currency differs from the order",
        );
        return false;
      default:
        logger.error({ orderId: order.orderId, outcome: result.outcome }, "payment refused");
        return false;
    }
  }

  /** A payment reported for an order we closed: credit it only when the gateway's own query says paid. */
  async function settleClosedOrder(order: Order): Promise<boolean> {
    const status = await gatewayFor(order.channel).queryPayment(order.orderId);
    if (status.state !== "paid") {
      logger.warn({ orderId: order.orderId, gatewayState: status.state }, "payment for a closed order not confirmed by the gateway's query; left closed");
      return false;
    }
    const result = await orders.applyPayment(order, { channel: order.channel, amountFen: status.amountFen, currency: status.currency, tradeNo: status.tradeNo, paidAt: status.paidAt }, { now: now(), fromClosed: true });
    if (result.outcome === "credited") logger.warn({ orderId: order.orderId, account: order.account, fen: status.amountFen.toString() }, "top-up credited after the order was closed locally");
    return result.outcome === "credited" || (result.outcome === "unchanged" && result.stateBefore !== "closed");
  }

  /** Makes sure a refunded order's payment is on the books first: a refund event may beat the payment's. */
  async function ensurePaid(order: Order): Promise<Order | undefined> {
    if (order.state !== "pending" && order.state !== "closed") return order;
    const status = await gatewayFor(order.channel).queryPayment(order.orderId);
    if (status.state !== "paid") return undefined;
    const result = await orders.applyPayment(order, { channel: order.channel, ...status }, { now: now(), fromClosed: true });
    if (result.outcome !== "credited" && result.outcome !== "unchanged") return undefined;
    logger.info({ orderId: order.orderId, outcome: result.outcome }, "payment applied from the gateway's query before its refund");
    return orders.get(order.orderId);
  }

  /** Brings a refund we started to its final outcome, if the gateway has one. */
  async function finishFromStatus(order: Order, refund: Pick<Refund, "refundId" | "fen">, status: RefundStatus): Promise<Refund["state"]> {
    if (status.state === "succeeded" || status.state === "failed") {
      const outcome = await orders.finishRefund(order, refund.refundId, { outcome: status.state, reason: status.state === "failed" ? status.reason : "", now: now() });
      logger.info({ orderId: order.orderId, refundId: refund.refundId, fen: refund.fen.toString(), state: status.state, outcome }, "refund finished");
      return status.state;
    }
    return "pending";
  }

  /**
   * Reconciles the cumulative refunded amount the gateway reports (Alipay `refund_fee`) with the
   * order: our own refunds complete, and anything left is a refund made at the gateway.
   */
  async function applyCumulativeRefund(order: Order, cumulativeFen: bigint, refundId: string | undefined): Promise<boolean> {
    const gateway = gatewayFor(order.channel);
    for (const refund of await orders.refunds(order)) {
      if (refund.origin !== "api" || refund.state !== "pending") continue;
      // Our refund named by this notification succeeded; other pending ones are asked, so none is counted twice.
      const status: RefundStatus = refund.refundId === refundId ? { state: "succeeded", refundFen: refund.fen } : await gateway.queryRefund(order.orderId, refund.refundId);
      await finishFromStatus(order, refund, status);
    }
    const current = await orders.get(order.orderId);
    if (!current) return false;
    const unexplained = cumulativeFen - current.refundedFen - current.pendingRefundFen;
    if (unexplained <= 0n) return true;
    const id = refundId ?? `${order.channel}-cumulative-${cumulativeFen}`;
    const outcome = await orders.finishRefund(current, id, { outcome: "succeeded", fen: unexplained, reason: "refunded at the gateway", now: now() });
    logger.warn({ orderId: order.orderId, account: order.account, refundId: id, fen: unexplained.toString(), outcome }, "refund made at the gateway debited from the balance");
    return outcome !== "unknown" && outcome !== "notPaid";
  }

  async function handle(order: Order, notification: GatewayNotification): Promise<NotificationOutcome> {
    switch (notification.kind) {
      case "payment": {
        if (!(await settlePayment(order, notification))) return { acknowledge: false, outcome: "paymentRefused" };
        if (notification.refundedFen > 0n) {
          const paid = await orders.get(order.orderId);
          if (!paid || !(await applyCumulativeRefund(paid, notification.refundedFen, notification.refundId))) return { acknowledge: false, outcome: "refundUnresolved" };
          return { acknowledge: true, outcome: "refund" };
        }
        return { acknowledge: true, outcome: "payment" };
      }
      case "closed": {
        if (notification.refundedFen > 0n) {
          // A full refund of a paid trade: its payment first, if that notification has not come yet.
          // The trade now queries as closed, so the signed notification itself is the proof of payment.
          if (order.state === "pending" || order.state === "closed") {
            const { amountFen, currency: paidCurrency, tradeNo = "" } = notification;
            const result = await orders.applyPayment(order, { channel: order.channel, amountFen, currency: paidCurrency, tradeNo, paidAt: now() }, { now: now(), fromClosed: true });
            if (result.outcome !== "credited" && result.outcome !== "unchanged") {
              logger.error({ orderId: order.orderId, outcome: result.outcome }, "full refund of a payment that does not match the order");
              return { acknowledge: false, outcome: "paymentRefused" };
            }
          }
          const paid = await orders.get(order.orderId);
          if (!paid || !(await applyCumulativeRefund(paid, notification.refundedFen, notification.refundId))) return { acknowledge: false, outcome: "refundUnresolved" };
          return { acknowledge: true, outcome: "fullRefund" };
        }
        const result = await orders.close(order, now());
        if (result.outcome === "closed" || result.stateBefore === "closed") return { acknowledge: true, outcome: "closed" };
        // Closing a paid order unrefunded is not a legal transition: the gateway's query decides.
        const status = await gatewayFor(order.channel).queryPayment(order.orderId);
        logger.warn({ orderId: order.orderId, state: result.stateBefore, gatewayState: status.state }, "illegal transition refused: a close notification for a paid order");
        return { acknowledge: status.state === "paid", outcome: "illegalTransition" };
      }
      case "refund": {
        const paid = await ensurePaid(order);
        if (!paid) {
          logger.warn({ orderId: order.orderId, refundId: notification.refundId }, "refund notification for an order the gateway does not report paid");
          return { acknowledge: false, outcome: "refundBeforePayment" };
        }
        const outcome = await orders.finishRefund(paid, notification.refundId, {
          outcome: notification.status,
          fen: notification.refundFen,
          reason: notification.reason ?? (notification.status === "succeeded" ? "" : "refund failed at the gateway"),
          now: now(),
        });
        if (outcome === "gatewayRefund") logger.warn({ orderId: order.orderId, account: order.account, refundId: notification.refundId, fen: notification.refundFen.toString() }, "refund made at the gateway debited from the balance");
        else logger.info({ orderId: order.orderId, refundId: notification.refundId, status: notification.status, outcome }, "refund notification applied");
        return { acknowledge: outcome !== "unknown" && outcome !== "notPaid", outcome };
      }
    }
  }

  return {
    /** Persists a pending order, then opens it at the gateway; returns it with what the payer scans. */
    async create({ account, amountFen, currency: requested, channel }: { account: Address; amountFen: bigint; currency: string; channel: Channel }): Promise<Order> {
      const gateway = gatewayFor(channel);
      if (requested !== currency) throw new ServiceError("INVALID_PARAMS", `currency must be ${currency}`, { data: { issues: [{ path: "currency", message: `must be ${currency}` }] } });
      if (amountFen < minFen || amountFen > maxFen) {
        throw new ServiceError("INVALID_PARAMS", `amount must be between ${minFen} and ${maxFen} fen`, {
          data: { issues: [{ path: "amount", message: `must be between ${minFen} and ${maxFen} fen` }], minFen: minFen.toString(), maxFen: maxFen.toString() },
        });
      }
      const createdAt = now();
      const order = await orders.create({ orderId: newOrderId(), account, channel, amountFen, currency, subject, createdAt, expiresAt: createdAt + expirySeconds });
      let code;
      try {
        code = await gateway.createPayment({ orderId: order.orderId, amountFen, currency, subject, expiresAt: order.expiresAt });
      } catch (error) {
        // The order stays pending: the gateway may have opened it anyway, and the recovery job settles or closes it.
        throw gatewayFailure(channel, "the order creation", error);
      }
      await orders.setPaymentCode(order, code);
      logger.info({ orderId: order.orderId, account, channel, fen: amountFen.toString() }, "top-up order created");
      return { ...order, ...code };
    },

    get: (orderId: string) => orders.get(orderId),

    /** Applies a verified notification; acknowledge only once its effect is stored. */
    async handleNotification(channel: Channel, notification: GatewayNotification): Promise<NotificationOutcome> {
      const order = await orders.get(notification.orderId);
      if (!order) {
        // Perhaps created on another instance a moment ago: fail, so the gateway sends it again.
        logger.warn({ channel, orderId: notification.orderId, kind: notification.kind }, "notification for an unknown order");
        return { acknowledge: false, outcome: "unknownOrder" };
      }
      if (order.channel !== channel) {
        logger.error({ channel, orderId: order.orderId, orderChannel: order.channel }, "notification from another channel than the order's");
        return { acknowledge: false, outcome: "wrongChannel" };
      }
      return handle(order, notification);
    },

    /**
     * Refunds unused available balance (all of it by default) back through the account's paid
     * orders, newest first. Each part is debited at once as a pending refund; a refused refund
     * gives its fen back.
     */
    async refundBalance(account: Address, requestedFen?: bigint): Promise<{ refunds: RefundResult[]; refundedFen: bigint; pendingFen: bigint }> {
      const { availableFen } = await ledger.balance(account);
      const wanted = requestedFen ?? availableFen;
      if (wanted <= 0n || wanted > availableFen) {
        throw new ServiceError("REFUND_NOT_POSSIBLE", wanted <= 0n ? "there is no available balance to refund" : "the refund exceeds the available balance", {
          data: { requestedFen: wanted.toString(), availableFen: availableFen.toString() },
        });
      }
      const candidates = (await orders.ofAccount(account, REFUNDABLE_ORDERS_SCANNED)).filter((order) => order.state === "paid" || order.state === "partially_refunded");
      const refundableFen = candidates.reduce((sum, order) => sum + order.amountFen - order.refundedFen - order.pendingRefundFen, 0n);
      if (refundableFen < wanted) {
        throw new ServiceError("REFUND_NOT_POSSIBLE", "the paid orders cannot take this refund: balance not from top-ups cannot be refunded", {
          data: { requestedFen: wanted.toString(), refundableFen: refundableFen.toString() },
        });
      }
      const refunds: RefundResult[] = [];
      let left = wanted;
      for (const order of candidates) {
        if (left === 0n) break;
        const fen = [left, order.amountFen - order.refundedFen - order.pendingRefundFen].reduce((a, b) => (a < b ? a : b));
        if (fen <= 0n) continue;
        const refundId = newRefundId();
        const started = await orders.startRefund(order, refundId, fen, now());
        if (started.outcome !== "started") {
          logger.warn({ orderId: order.orderId, account, outcome: started.outcome }, "refund part not started");
          if (started.outcome === "insufficient") break;
          continue;
        }
        left -= fen;
        let status: RefundStatus;
        try {
          status = await gatewayFor(order.channel).refund({ orderId: order.orderId, refundId, refundFen: fen, totalFen: order.amountFen, currency: order.currency, reason: "unused gas balance" });
        } catch (error) {
          // Unknown outcome: the refund stays pending and the recovery job asks again with the same id.
          logger.warn({ orderId: order.orderId, refundId, err: { name: (error as Error).name, message: (error as Error).message } }, "refund call failed; left pending");
          status = { state: "processing" };
        }
        const state = await finishFromStatus(order, { refundId, fen }, status);
        refunds.push({ refundId, orderId: order.orderId, channel: order.channel, fen, state });
      }
      if (refunds.length === 0) {
        // Spent meanwhile (a concurrent sponsorship reserved it): nothing was debited.
        const { availableFen: stillAvailable } = await ledger.balance(account);
        throw new ServiceError("REFUND_NOT_POSSIBLE", "the refund exceeds the available balance", { data: { requestedFen: wanted.toString(), availableFen: stillAvailable.toString() } });
      }
      const sum = (state: Refund["state"]) => refunds.filter((refund) => refund.state === state).reduce((total, refund) => total + refund.fen, 0n);
      return { refunds, refundedFen: sum("succeeded"), pendingFen: sum("pending") };
    },

    /**
     * One pass of the recovery job: pending orders older than `olderThan` seconds are asked at
     * their gateway (and closed there once expired); pending refunds are asked for their outcome.
     */
    async recover({ olderThan, batch = 100 }: { olderThan: number; batch?: number }) {
      const summary = { ordersChecked: 0, credited: 0, closed: 0, refundsChecked: 0, refundsFinished: 0, errors: 0 };
      const time = now();
      for (const orderId of await orders.pendingIds(time - olderThan, batch)) {
        summary.ordersChecked++;
        try {
          const order = await orders.get(orderId);
          if (!order || order.state !== "pending") {
            await orders.forgetPending(orderId);
            continue;
          }
          const gateway = gatewayFor(order.channel);
          let status = await gateway.queryPayment(orderId);
          if ((status.state === "pending" || status.state === "notFound") && time >= order.expiresAt) {
            // Closed at the gateway first, so the payer cannot pay an order we consider closed.
            const closed = await gateway.closePayment(orderId);
            status = closed === "paid" ? await gateway.queryPayment(orderId) : { state: "closed" };
          }
          if (status.state === "paid") {
            if (await settlePayment(order, status)) summary.credited++;
          } else if (status.state === "closed") {
            if ((await orders.close(order, time)).outcome === "closed") summary.closed++;
          }
        } catch (error) {
          summary.errors++;
          logger.warn({ orderId, err: { name: (error as Error).name, message: (error as Error).message } }, "recovery of a pending order failed; retried next pass");
        }
      }
      for (const { orderId, refundId } of await orders.pendingRefunds(time - 10, batch)) {
        summary.refundsChecked++;
        try {
          const order = await orders.get(orderId);
          const refund = order && (await orders.refunds(order)).find((candidate) => candidate.refundId === refundId);
          if (!order || !refund || refund.state !== "pending") {
            await orders.forgetPendingRefund(orderId, refundId);
            continue;
          }
          const gateway = gatewayFor(order.channel);
          let status = await gateway.queryRefund(orderId, refundId);
          // The refund call never reached the gateway: send it again under the same id.
          if (status.state === "notFound") {
            status = await gateway.refund({ orderId, refundId, refundFen: refund.fen, totalFen: order.amountFen, currency: order.currency, reason: "unused gas balance" });
          }
          if ((await finishFromStatus(order, refund, status)) !== "pending") summary.refundsFinished++;
        } catch (error) {
          summary.errors++;
          logger.warn({ orderId, refundId, err: { name: (error as Error).name, message: (error as Error).message } }, "recovery of a pending refund failed; retried next pass");
        }
      }
      return summary;
    },
  };
}

export type TopUps = ReturnType<typeof createTopUps>;
