// Top-up orders in Redis: an order's state machine and its money effects, each transition one
// atomic script in the account's slot, plus the `{orders}` indexes the webhooks and jobs read.
import { randomBytes } from "node:crypto";

import type { Redis } from "ioredis";
import { type Address, getAddress } from "viem";

import type { Channel } from "../gateways/gateway.ts";
import { MAX_COOLING_SECONDS, defineScript } from "../ledger/ledger.ts";
import type { Keys } from "../redis.ts";
import { APPLY_PAYMENT, CLOSE_ORDER, FINISH_REFUND, START_REFUND } from "./scripts.ts";

/** pending → paid → partially_refunded → refunded, or pending → closed (→ paid if the gateway says it was paid). */
export const ORDER_STATES = ["pending", "paid", "partially_refunded", "refunded", "closed"] as const;
export type OrderState = (typeof ORDER_STATES)[number];

export type Order = {
  orderId: string;
  account: Address;
  channel: Channel;
  amountFen: bigint;
  currency: string;
  subject: string;
  state: OrderState;
  createdAt: number;
  expiresAt: number;
  /** What the payer scans, once the gateway order exists. */
  qrCode?: string;
  codeUrl?: string;
  tradeNo?: string;
  paidAt?: number;
  closedAt?: number;
  refundedFen: bigint;
  pendingRefundFen: bigint;
};

export type Refund = {
  refundId: string;
  orderId: string;
  fen: bigint;
  /** `api`: asked for through our refund API; `gateway`: made at the gateway and learnt from it. */
  origin: "api" | "gateway";
  state: "pending" | "succeeded" | "failed";
  createdAt: number;
  finishedAt?: number;
  reason?: string;
};

type StoredRefund = Omit<Refund, "fen" | "orderId"> & { fen: string };

/** A new id for an order: our `out_trade_no`, unguessable, 26 of [A-Za-z0-9_-]. */
export function newOrderId(): string {
  return `TU${randomBytes(18).toString("base64url")}`;
}

/** A new id for a refund: Alipay `out_request_no`, WeChat `out_refund_no`. */
export function newRefundId(): string {
  return `RF${randomBytes(18).toString("base64url")}`;
}

/** A ledger-style script whose replies are arrays of strings (an outcome, then details). */
function defineOutcomeScript(redis: Redis, name: string, lua: string, numberOfKeys: number) {
  const script = defineScript(redis, name, lua, numberOfKeys);
  return (...keysThenArgs: string[]) => script(...keysThenArgs) as Promise<string[]>;
}

function decodeOrder(fields: Record<string, string>): Order | undefined {
  if (!fields.state) return undefined;
  const optionalNumber = (value: string | undefined) => (value === undefined ? undefined : Number(value));
  return {
    orderId: fields.orderId,
    account: fields.account as Address,
    channel: fields.channel as Channel,
    amountFen: BigInt(fields.amountFen),
    currency: fields.currency,
    subject: fields.subject,
    state: fields.state as OrderState,
    createdAt: Number(fields.createdAt),
    expiresAt: Number(fields.expiresAt),
    ...(fields.qrCode ? { qrCode: fields.qrCode } : {}),
    ...(fields.codeUrl ? { codeUrl: fields.codeUrl } : {}),
    ...(fields.tradeNo ? { tradeNo: fields.tradeNo } : {}),
    ...(fields.paidAt ? { paidAt: optionalNumber(fields.paidAt) } : {}),
    ...(fields.closedAt ? { closedAt: optionalNumber(fields.closedAt) } : {}),
    refundedFen: BigInt(fields.refundedFen ?? "0"),
    pendingRefundFen: BigInt(fields.pendingRefundFen ?? "0"),
  };
}

export type PaymentOutcome = "credited" | "unchanged" | "mismatch" | "wrongChannel" | "unknown";
export type StartRefundOutcome =
  | { outcome: "started" }
  | { outcome: "duplicate" }
  | { outcome: "notRefundable"; state: string }
  | { outcome: "exceedsOrder"; refundableFen: bigint }
  | { outcome: "insufficient"; availableFen: bigint };
export type FinishRefundOutcome = "finished" | "gatewayRefund" | "already" | "ignored" | "notPaid" | "unknown";

/** The order book: orders, their transitions and indexes. */
export function createOrderBook({ redis, keys }: { redis: Redis; keys: Keys }) {
  const applyPaymentScript = defineOutcomeScript(redis, "fiatgasApplyPayment", APPLY_PAYMENT, 4);
  const closeOrderScript = defineOutcomeScript(redis, "fiatgasCloseOrder", CLOSE_ORDER, 1);
  const startRefundScript = defineOutcomeScript(redis, "fiatgasStartRefund", START_REFUND, 4);
  const finishRefundScript = defineOutcomeScript(redis, "fiatgasFinishRefund", FINISH_REFUND, 4);

  async function accountOf(orderId: string): Promise<Address | undefined> {
    return ((await redis.hget(keys.orderAccounts(), orderId)) ?? undefined) as Address | undefined;
  }

  async function get(orderId: string): Promise<Order | undefined> {
    const account = await accountOf(orderId);
    if (!account) return undefined;
    return decodeOrder(await redis.hgetall(keys.order(account, orderId)));
  }

  return {
    get,
    accountOf,

    /**
     * Persists a new pending order before any gateway call, so a notification that beats the
     * gateway's answer finds it. The index is written first: an index entry without its order
     * (a crash in between) reads as an unknown order, and the recovery job drops it.
     */
    async create(order: Pick<Order, "orderId" | "account" | "channel" | "amountFen" | "currency" | "subject" | "createdAt" | "expiresAt">): Promise<Order> {
      const account = getAddress(order.account);
      await redis
        .multi()
        .hsetnx(keys.orderAccounts(), order.orderId, account)
        .zadd(keys.pendingOrders(), order.createdAt, order.orderId)
        .zadd(keys.ordersByTime(), order.createdAt, order.orderId)
        .exec();
      await redis
        .multi()
        .hset(keys.order(account, order.orderId), {
          orderId: order.orderId,
          account,
          channel: order.channel,
          amountFen: order.amountFen.toString(),
          currency: order.currency,
          subject: order.subject,
          state: "pending",
          createdAt: String(order.createdAt),
          expiresAt: String(order.expiresAt),
          refundedFen: "0",
          pendingRefundFen: "0",
        })
        .zadd(keys.accountOrders(account), order.createdAt, order.orderId)
        .exec();
      return { ...order, account, state: "pending", refundedFen: 0n, pendingRefundFen: 0n };
    },

    /** Records what the payer scans once the gateway order exists. */
    async setPaymentCode(order: Order, code: { qrCode: string } | { codeUrl: string }): Promise<void> {
      await redis.hset(keys.order(order.account, order.orderId), code);
    },

    /** Credits the order's amount once; a closed order becomes paid only with `fromClosed`. */
    async applyPayment(
      order: Order,
      payment: { channel: Channel; amountFen: bigint; currency: string; tradeNo: string; paidAt: number },
      { now, fromClosed }: { now: number; fromClosed: boolean },
    ): Promise<{ outcome: PaymentOutcome; stateBefore?: OrderState }> {
      const [outcome, stateBefore] = await applyPaymentScript(
        keys.order(order.account, order.orderId),
        keys.balance(order.account),
        keys.credits(order.account),
        keys.journal(order.account),
        payment.channel,
        payment.amountFen.toString(),
        payment.currency,
        payment.tradeNo,
        String(payment.paidAt),
        String(now),
        fromClosed ? "1" : "0",
        order.orderId,
        String(now - MAX_COOLING_SECONDS),
      );
      if (outcome === "credited" || outcome === "unknown") await redis.zrem(keys.pendingOrders(), order.orderId);
      return { outcome: outcome as PaymentOutcome, ...(stateBefore ? { stateBefore: stateBefore as OrderState } : {}) };
    },

    /** Closes an unpaid order. */
    async close(order: Order, now: number): Promise<{ outcome: "closed" | "unchanged" | "unknown"; stateBefore?: OrderState }> {
      const [outcome, stateBefore] = await closeOrderScript(keys.order(order.account, order.orderId), String(now));
      if (outcome !== "unchanged" || stateBefore !== "pending") await redis.zrem(keys.pendingOrders(), order.orderId);
      return { outcome: outcome as "closed" | "unchanged" | "unknown", ...(stateBefore ? { stateBefore: stateBefore as OrderState } : {}) };
    },

    /** Drops an order from the pending index: it is no longer pending, or it does not exist. */
    async forgetPending(orderId: string): Promise<void> {
      await redis.zrem(keys.pendingOrders(), orderId);
    },

    /** Pending order ids created at or before `createdBefore`, oldest first. */
    async pendingIds(createdBefore: number, limit: number): Promise<string[]> {
      return redis.zrangebyscore(keys.pendingOrders(), "-inf", createdBefore, "LIMIT", 0, limit);
    },

    /** Debits `fen` from the available balance as a pending refund of the order. */
    async startRefund(order: Order, refundId: string, fen: bigint, now: number): Promise<StartRefundOutcome> {
      const record: StoredRefund = { refundId, fen: fen.toString(), origin: "api", state: "pending", createdAt: now };
      // Indexed first, so a crash after the debit leaves a refund the recovery job can find.
      await redis.zadd(keys.pendingRefunds(), now, `${order.orderId}/${refundId}`);
      const [outcome, detail] = await startRefundScript(
        keys.order(order.account, order.orderId),
        keys.balance(order.account),
        keys.orderRefunds(order.account, order.orderId),
        keys.journal(order.account),
        refundId,
        fen.toString(),
        String(now),
        order.orderId,
        JSON.stringify(record),
      );
      if (outcome !== "started" && outcome !== "duplicate") await redis.zrem(keys.pendingRefunds(), `${order.orderId}/${refundId}`);
      switch (outcome) {
        case "started":
        case "duplicate":
          return { outcome };
        case "notRefundable":
          return { outcome, state: detail };
        case "exceedsOrder":
          return { outcome, refundableFen: BigInt(detail) };
        default:
          return { outcome: "insufficient", availableFen: BigInt(detail) };
      }
    },

    /** Applies a refund's final outcome once; an unknown successful refund was made at the gateway and debits. */
    async finishRefund(
      order: Order,
      refundId: string,
      { outcome, fen = 0n, reason = "", now }: { outcome: "succeeded" | "failed"; fen?: bigint; reason?: string; now: number },
    ): Promise<FinishRefundOutcome> {
      const [result] = await finishRefundScript(
        keys.order(order.account, order.orderId),
        keys.balance(order.account),
        keys.orderRefunds(order.account, order.orderId),
        keys.journal(order.account),
        refundId,
        outcome,
        fen.toString(),
        String(now),
        order.orderId,
        reason,
      );
      if (result === "finished" || result === "already" || result === "unknown") await redis.zrem(keys.pendingRefunds(), `${order.orderId}/${refundId}`);
      return result as FinishRefundOutcome;
    },

    /** Drops a refund from the pending index: it is final, or was never started. */
    async forgetPendingRefund(orderId: string, refundId: string): Promise<void> {
      await redis.zrem(keys.pendingRefunds(), `${orderId}/${refundId}`);
    },

    /** Refunds awaiting their outcome, started at or before `startedBefore`. */
    async pendingRefunds(startedBefore: number, limit: number): Promise<{ orderId: string; refundId: string }[]> {
      const members = await redis.zrangebyscore(keys.pendingRefunds(), "-inf", startedBefore, "LIMIT", 0, limit);
      return members.map((member) => {
        const [orderId, refundId] = member.split("/");
        return { orderId, refundId };
      });
    },

    /** An order's refunds, oldest first. */
    async refunds(order: Order): Promise<Refund[]> {
      const stored = await redis.hvals(keys.orderRefunds(order.account, order.orderId));
      return stored
        .map((json) => {
          const refund = JSON.parse(json) as StoredRefund;
          return { ...refund, orderId: order.orderId, fen: BigInt(refund.fen) };
        })
        .sort((a, b) => a.createdAt - b.createdAt);
    },

    /** The account's orders, newest first. */
    async ofAccount(account: Address, limit: number): Promise<Order[]> {
      const ids = await redis.zrevrange(keys.accountOrders(getAddress(account)), 0, limit - 1);
      const orders = await Promise.all(ids.map(async (orderId) => decodeOrder(await redis.hgetall(keys.order(getAddress(account), orderId)))));
      return orders.filter((order): order is Order => order !== undefined);
    },
  };
}

export type OrderBook = ReturnType<typeof createOrderBook>;
