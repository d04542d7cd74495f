// The port between a payment gateway's protocol (Alipay, WeChat Pay v3) and the top-up domain.
// An adapter speaks the gateway's wire format and signatures; the top-up domain sees only these
// normalised facts, with money in integer fen.

export const CHANNELS = ["alipay", "wechatpay"] as const;

/** Our order ids, which are the gateways' `out_trade_no`: 6-32 characters both gateways accept. */
export const ORDER_ID = /^[A-Za-z0-9_-]{6,32}$/;
export type Channel = (typeof CHANNELS)[number];

/** A gateway order to open for one of our top-up orders. */
export type PaymentRequest = {
  /** Our order id: the gateway's `out_trade_no` (6-32 of [A-Za-z0-9_-]). */
  orderId: string;
  amountFen: bigint;
  /** ISO 4217, e.g. "CNY". */
  currency: string;
  /** Shown to the payer. */
  subject: string;
  /** Unix seconds after which the gateway must refuse payment. */
  expiresAt: number;
};

/** What the payer scans: Alipay precreate's `qr_code`, WeChat Native's `code_url`. */
export type PaymentCreated = { qrCode: string } | { codeUrl: string };

/** What a gateway query says about a payment. */
export type PaymentStatus =
  /** The gateway has no trade: Alipay before the QR code is scanned, WeChat ORDER_NOT_EXIST. */
  | { state: "notFound" }
  /** Open and unpaid: WAIT_BUYER_PAY, NOTPAY, USERPAYING. */
  | { state: "pending" }
  /** The payer paid (TRADE_SUCCESS, TRADE_FINISHED, SUCCESS, or REFUND: paid, then refunds began). */
  | { state: "paid"; tradeNo: string; amountFen: bigint; currency: string; paidAt: number }
  /** Closed unpaid (timeout or our close), or PAYERROR / REVOKED. */
  | { state: "closed" };

/** The result of a close request. */
export type CloseResult = "closed" | "paid";

export type RefundRequest = {
  orderId: string;
  /** Our refund id: Alipay `out_request_no`, WeChat `out_refund_no`; the same on every retry. */
  refundId: string;
  refundFen: bigint;
  /** The paid order's total, which WeChat requires. */
  totalFen: bigint;
  currency: string;
  reason: string;
};

/** Where a refund stands at the gateway. */
export type RefundStatus =
  | { state: "succeeded"; refundFen: bigint }
  /** Accepted but not final (WeChat PROCESSING), or the outcome of the call is unknown: ask again. */
  | { state: "processing" }
  /** Final and no money moved: refused, WeChat ABNORMAL or CLOSED. */
  | { state: "failed"; reason: string }
  /** The gateway has no refund with this id. */
  | { state: "notFound" };

/**
 * A verified payment notification, after the signature, freshness and merchant identity checks
 * (app id / mchid / seller). Amount and currency are checked by the top-up domain against the order.
 */
export type GatewayNotification =
  /**
   * Paid: Alipay TRADE_SUCCESS / TRADE_FINISHED, WeChat TRANSACTION.SUCCESS. Alipay also sends
   * TRADE_SUCCESS after each partial refund, with the cumulative refunded amount.
   */
  | {
      kind: "payment";
      orderId: string;
      tradeNo: string;
      amountFen: bigint;
      currency: string;
      paidAt: number;
      /** Cumulative fen refunded at the gateway (Alipay `refund_fee`); 0n when none or unknown. */
      refundedFen: bigint;
      /** The refund request behind this notification (Alipay `out_biz_no`), if any. */
      refundId?: string;
    }
  /**
   * Alipay TRADE_CLOSED. With `refundedFen` > 0 the trade was paid and is now fully refunded;
   * without, an unpaid trade closed on timeout.
   */
  | { kind: "closed"; orderId: string; tradeNo?: string; amountFen: bigint; currency: string; refundedFen: bigint; refundId?: string }
  /** WeChat REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED. */
  | { kind: "refund"; orderId: string; refundId: string; status: "succeeded" | "failed"; refundFen: bigint; totalFen: bigint; reason?: string };

/** Why a notification was refused; `probe` marks WeChat's deliberate SIGNTEST probes. */
export class NotificationRejected extends Error {
  override name = "NotificationRejected";
  readonly probe: boolean;
  constructor(message: string, { probe = false }: { probe?: boolean } = {}) {
    super(message);
    this.probe = probe;
  }
}

/** A gateway's answer that could not be trusted or understood: unsigned, tampered, malformed. */
export class GatewayResponseError extends Error {
  override name = "GatewayResponseError";
}

/** One gateway, as the top-up domain uses it. Every outbound call verifies the gateway's signature. */
export interface PaymentGateway {
  readonly channel: Channel;
  createPayment(request: PaymentRequest): Promise<PaymentCreated>;
  queryPayment(orderId: string): Promise<PaymentStatus>;
  closePayment(orderId: string): Promise<CloseResult>;
  /** Idempotent by `refundId`: a repeated call never refunds twice. */
  refund(request: RefundRequest): Promise<RefundStatus>;
  queryRefund(orderId: string, refundId: string): Promise<RefundStatus>;
  /**
   * Verifies a notification exactly as the gateway specifies, over the raw body bytes, and
   * returns its facts. Throws NotificationRejected for anything forged, tampered, stale or not ours.
   */
  parseNotification(request: { headers: Record<string, string | string[] | undefined>; rawBody: Buffer }, now: number): GatewayNotification;
}
