// Top-ups (fiat in through a gateway), the account's balance, and refunds of unused balance.
import type { Address } from "viem";

import { type FiatGasError, NetworkError, OverloadedError, RateLimitedError, ServiceUnavailableError, TopUpNotPaidError, UnexpectedResponseError } from "./errors.ts";
import type { Transport } from "./http.ts";
import { type SessionInput, sessionTarget } from "./session.ts";
import { address, addressParameter, decimal, invalidParameter, isoDate, string } from "./wire.ts";

export type TopUpChannel = "alipay" | "wechatpay";

/** `pending → paid → partially_refunded → refunded`, or `pending → closed`. */
export type TopUpState = "pending" | "paid" | "partially_refunded" | "refunded" | "closed";

/** A top-up order; money in fen (the currency's minor unit). */
export type TopUp = {
  orderId: string;
  account: Address;
  channel: TopUpChannel;
  state: TopUpState;
  amountFen: bigint;
  currency: string;
  refundedFen: bigint;
  pendingRefundFen: bigint;
  createdAt: Date;
  /** The order cannot be paid after this. */
  expiresAt: Date;
  paidAt: Date | undefined;
  /** Alipay: the QR code's content, to render for the payer to scan. */
  qrCode: string | undefined;
  /** WeChat Pay: the `code_url` to render as a QR code. */
  codeUrl: string | undefined;
};

export type CreateTopUpParameters = {
  /** The account to credit. */
  account: Address;
  channel: TopUpChannel;
  /** ISO 4217 code; the service's currency (CNY) by default. */
  currency?: string | undefined;
  signal?: AbortSignal | undefined;
} & ({ /** A decimal amount of the currency, e.g. "50.00". */ amount: string; amountFen?: undefined } | { /** The amount in fen. */ amountFen: bigint; amount?: undefined });

export type WaitForTopUpParameters = {
  /** What to wait for: the payment (default), or any condition on the order. */
  until?: "paid" | ((topUp: TopUp) => boolean) | undefined;
  /** Give up after this long, in ms; by default, 5 minutes after the order expires (for a late notification). */
  timeoutMs?: number | undefined;
  /** Time between polls, in ms (default 2,000). */
  intervalMs?: number | undefined;
  /** Called with the order whenever its state changes, the first poll included. */
  onUpdate?: ((topUp: TopUp) => void) | undefined;
  signal?: AbortSignal | undefined;
};

/** An account's money, in fen. */
export type Balance = {
  address: Address;
  currency: string;
  balanceFen: bigint;
  /** Held for sponsorships that have not settled yet. */
  reservedFen: bigint;
  /** What new sponsorships and refunds can use: balance minus reserved. */
  availableFen: bigint;
};

export type GetBalanceParameters = {
  session: SessionInput;
  /** The account; the session's own by default (required with a bare token). */
  account?: Address | undefined;
  signal?: AbortSignal | undefined;
};

export type RequestRefundParameters = {
  session: SessionInput;
  /** The account; the session's own by default (required with a bare token). */
  account?: Address | undefined;
  /** How much to refund, in fen; all of the available balance by default. */
  amountFen?: bigint | undefined;
  signal?: AbortSignal | undefined;
};

export type Refund = { refundId: string; orderId: string; channel: TopUpChannel; fen: bigint; state: "pending" | "succeeded" | "failed" };

export type RefundResult = {
  /** Refunds the gateways confirmed. */
  refundedFen: bigint;
  /** Refunds awaiting the gateway's outcome (WeChat Pay reports it later). */
  pendingFen: bigint;
  refunds: Refund[];
};

/** How long after an order's expiry `waitForTopUp` keeps polling by default: a payment made just before may be reported late. */
export const TOPUP_WAIT_GRACE_MS = 5 * 60_000;
const PAID_STATES: readonly TopUpState[] = ["paid", "partially_refunded", "refunded"];
const CHANNELS: readonly TopUpChannel[] = ["alipay", "wechatpay"];
const STATES: readonly TopUpState[] = ["pending", ...PAID_STATES, "closed"];

function oneOf<T extends string>(values: readonly T[], value: unknown, field: string): T {
  if (!values.includes(value as T)) throw new UnexpectedResponseError({ code: "UNEXPECTED_RESPONSE", message: `the service's answer has an unexpected ${field}: ${String(value)}` });
  return value as T;
}

/** An order as the API sends it, parsed. */
function parseTopUp(json: Record<string, unknown> | undefined): TopUp {
  const order = json ?? {};
  return {
    orderId: string(order.orderId, "orderId"),
    account: address(order.account, "account"),
    channel: oneOf(CHANNELS, order.channel, "channel"),
    state: oneOf(STATES, order.state, "state"),
    amountFen: decimal(order.amountFen, "amountFen"),
    currency: string(order.currency, "currency"),
    refundedFen: decimal(order.refundedFen, "refundedFen"),
    pendingRefundFen: decimal(order.pendingRefundFen, "pendingRefundFen"),
    createdAt: isoDate(order.createdAt, "createdAt"),
    expiresAt: isoDate(order.expiresAt, "expiresAt"),
    paidAt: order.paidAt === undefined ? undefined : isoDate(order.paidAt, "paidAt"),
    qrCode: typeof order.qrCode === "string" ? order.qrCode : undefined,
    codeUrl: typeof order.codeUrl === "string" ? order.codeUrl : undefined,
  };
}

/** Fen as the API's decimal amount ("12.34"): the service reads amounts with exactly this rule, two decimals. */
function fenToAmount(fen: bigint): string {
  return `${fen / 100n}.${(fen % 100n).toString().padStart(2, "0")}`;
}

/** Opens a top-up order at the gateway; show the payer `qrCode` (Alipay) or `codeUrl` (WeChat Pay). */
export async function createTopUp(transport: Transport, parameters: CreateTopUpParameters): Promise<TopUp> {
  const { channel, currency = "CNY", signal } = parameters;
  const account = addressParameter(parameters.account, "account");
  let amount: string;
  if (parameters.amountFen !== undefined) {
    if (typeof parameters.amountFen !== "bigint" || parameters.amountFen <= 0n) throw invalidParameter("amountFen must be a positive bigint", "amountFen");
    amount = fenToAmount(parameters.amountFen);
  } else {
    amount = parameters.amount;
  }
  const answer = await transport.request<Record<string, unknown>>("POST", "/v1/topups", { body: { account, amount, currency, channel }, signal });
  return parseTopUp(answer);
}

/** A top-up order's current state. */
export async function getTopUp(transport: Transport, orderId: string, { signal }: { signal?: AbortSignal | undefined } = {}): Promise<TopUp> {
  if (typeof orderId !== "string" || orderId === "") throw invalidParameter("orderId must be an order id as createTopUp returned it", "orderId");
  return parseTopUp(await transport.request<Record<string, unknown>>("GET", `/v1/topups/${encodeURIComponent(orderId)}`, { signal }));
}

/** Whether polling may go on after `error`: the service or the network is briefly unavailable. */
function isTransient(error: unknown): error is FiatGasError {
  return error instanceof NetworkError || error instanceof ServiceUnavailableError || error instanceof RateLimitedError || error instanceof OverloadedError;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Polls a top-up order until it is paid (or `until` holds) and resolves with it. Throws
 * TopUpNotPaidError `TOPUP_CLOSED` if the order closes unpaid and `WAIT_TIMEOUT` when the time is
 * up; brief outages of the service or the network are waited out.
 */
export async function waitForTopUp(transport: Transport, orderId: string, parameters: WaitForTopUpParameters = {}): Promise<TopUp> {
  const { until = "paid", timeoutMs, intervalMs = 2_000, onUpdate, signal } = parameters;
  const done = until === "paid" ? (topUp: TopUp) => PAID_STATES.includes(topUp.state) : until;
  const started = Date.now();
  // Until the order is known, its expiry is not: the service's longest expiry (2 h) bounds the wait.
  let deadline = timeoutMs !== undefined ? started + timeoutMs : started + 2 * 3_600_000 + TOPUP_WAIT_GRACE_MS;
  let last: TopUp | undefined;
  for (;;) {
    let delay = intervalMs;
    try {
      const topUp = await getTopUp(transport, orderId, { signal });
      if (last?.state !== topUp.state) onUpdate?.(topUp);
      last = topUp;
      if (done(topUp)) return topUp;
      if (until === "paid" && topUp.state === "closed") {
        throw new TopUpNotPaidError({ code: "TOPUP_CLOSED", message: `top-up ${orderId} closed without a payment; create a new one`, data: { orderId, state: topUp.state } });
      }
      if (timeoutMs === undefined) deadline = topUp.expiresAt.getTime() + TOPUP_WAIT_GRACE_MS;
    } catch (error) {
      if (!isTransient(error)) throw error;
      if (error.retryAfter) delay = Math.max(delay, error.retryAfter.getTime() - Date.now());
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new TopUpNotPaidError({
        code: "WAIT_TIMEOUT",
        message: `top-up ${orderId} was not ${until === "paid" ? "paid" : "done"} in time (last state: ${last?.state ?? "unknown"})`,
        data: { orderId, state: last?.state },
      });
    }
    await sleep(Math.min(delay, left), signal);
  }
}

/** An account's balance, reserved and available amounts; needs the account's session. */
export async function getBalance(transport: Transport, { session, account, signal }: GetBalanceParameters): Promise<Balance> {
  const target = sessionTarget(session, account);
  const answer = await transport.request<Record<string, unknown>>("GET", `/v1/accounts/${target.account}`, { token: target.token, signal });
  return {
    address: address(answer?.address, "address"),
    currency: string(answer?.currency, "currency"),
    balanceFen: decimal(answer?.balanceFen, "balanceFen"),
    reservedFen: decimal(answer?.reservedFen, "reservedFen"),
    availableFen: decimal(answer?.availableFen, "availableFen"),
  };
}

/** Refunds unused balance (all of the available balance by default) back through the account's paid top-ups. */
export async function requestRefund(transport: Transport, { session, account, amountFen, signal }: RequestRefundParameters): Promise<RefundResult> {
  const target = sessionTarget(session, account);
  if (amountFen !== undefined && (typeof amountFen !== "bigint" || amountFen <= 0n)) throw invalidParameter("amountFen must be a positive bigint", "amountFen");
  const answer = await transport.request<Record<string, unknown>>("POST", `/v1/accounts/${target.account}/refunds`, {
    body: amountFen === undefined ? {} : { amountFen: amountFen.toString() },
    token: target.token,
    signal,
  });
  const refunds = Array.isArray(answer?.refunds) ? (answer.refunds as Record<string, unknown>[]) : [];
  return {
    refundedFen: decimal(answer?.refundedFen, "refundedFen"),
    pendingFen: decimal(answer?.pendingFen, "pendingFen"),
    refunds: refunds.map((refund) => ({
      refundId: string(refund.refundId, "refunds.refundId"),
      orderId: string(refund.orderId, "refunds.orderId"),
      channel: oneOf(CHANNELS, refund.channel, "refunds.channel"),
      fen: decimal(refund.fen, "refunds.fen"),
      state: oneOf(["pending", "succeeded", "failed"] as const, refund.state, "refunds.state"),
    })),
  };
}
