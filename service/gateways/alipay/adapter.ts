// Alipay face-to-face (当面付) QR payments behind the PaymentGateway port: the v1 gateway over fetch,
// every request RSA2-signed, every response and notification verified before anything is read from it.
import type { KeyObject } from "node:crypto";

import {
  type CloseResult,
  type GatewayNotification,
  GatewayResponseError,
  NotificationRejected,
  ORDER_ID,
  type PaymentCreated,
  type PaymentGateway,
  type PaymentRequest,
  type PaymentStatus,
  type RefundRequest,
  type RefundStatus,
} from "../gateway.ts";
import {
  type AlipayForm,
  AlipayProtocolError,
  encodeForm,
  fenToYuan,
  formatBeijingTime,
  loadPrivateKey,
  loadPublicKey,
  parseBeijingTime,
  parseForm,
  signRequest,
  verifyNotificationSignature,
  verifyResponse,
  yuanToFen,
} from "./signing.ts";

export type AlipayGatewayOptions = {
  /** The app's 16-digit APPID. */
  appId: string;
  /** The app private key that signs requests (KeyObject, PEM or bare base64). */
  appPrivateKey: KeyObject | string;
  /** Alipay's public key (支付宝公钥) that signs responses and notifications. */
  alipayPublicKey: KeyObject | string;
  /** The merchant's PID (2088…), checked on notifications. */
  sellerId: string;
  /** The v1 gateway, e.g. https://openapi.alipay.com/gateway.do. */
  gatewayUrl: string;
  /** Where Alipay posts trade notifications for the orders we create. */
  notifyUrl: string;
  fetch?: typeof globalThis.fetch;
  /** Per request, including reading the body; default 10 s. */
  timeoutMs?: number;
};

/** A verified refusal: the call reached Alipay, and its signed answer says no (code, sub_code). */
export class AlipayApiError extends Error {
  override name = "AlipayApiError";
  readonly code: string;
  readonly subCode: string | undefined;
  /** Alipay-side trouble (20000, isp.*, SYSTEM_ERROR): the same call may succeed later. */
  readonly transient: boolean;
  constructor(method: string, refusal: Refusal) {
    super(`${method} refused: ${describe(refusal)}`);
    this.code = refusal.code;
    this.subCode = refusal.subCode;
    this.transient = refusal.transient;
  }
}

/** The call's outcome is unknown: network failure, timeout, or a non-200 answer from the path to Alipay. */
export class AlipayUnreachableError extends Error {
  override name = "AlipayUnreachableError";
}

type Refusal = { code: string; msg?: string; subCode?: string; subMsg?: string; transient: boolean };
type Answer = { ok: true; data: Record<string, unknown> } | { ok: false; refusal: Refusal };

const DEFAULT_TIMEOUT_MS = 10_000;
/** Alipay's ceiling for one trade: 100,000,000 yuan. */
const MAX_TRADE_FEN = 10_000_000_000n;

function describe(refusal: Refusal): string {
  return [refusal.code, refusal.msg, refusal.subCode, refusal.subMsg].filter(Boolean).join(" ");
}

function isTransient(code: string, subCode: string | undefined): boolean {
  return code === "20000" || (subCode !== undefined && (subCode.startsWith("isp.") || subCode.endsWith("SYSTEM_ERROR")));
}

/** Reads a field of a verified answer; a missing or mistyped one makes the answer unusable. */
function field(method: string, data: Record<string, unknown>, name: string): string {
  const value = data[name];
  if (typeof value !== "string" || value === "") throw new GatewayResponseError(`${method}: response has no ${name}`);
  return value;
}

function optionalField(method: string, data: Record<string, unknown>, name: string): string | undefined {
  const value = data[name];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw new GatewayResponseError(`${method}: response field ${name} is not a string`);
  return value;
}

/** Converts a verified answer's value, turning a format error into GatewayResponseError. */
function convert<T>(method: string, name: string, value: string, parse: (text: string) => T): T {
  try {
    return parse(value);
  } catch (error) {
    throw new GatewayResponseError(`${method}: response field ${name}: ${(error as Error).message}`);
  }
}

function checkOrder(method: string, data: Record<string, unknown>, orderId: string): void {
  const echoed = optionalField(method, data, "out_trade_no");
  if (echoed !== undefined && echoed !== orderId) throw new GatewayResponseError(`${method}: response is for out_trade_no ${echoed.slice(0, 64)}, not ${orderId}`);
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const entry = Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
  return Array.isArray(entry) ? entry[0] : entry;
}

/** Creates the Alipay side of fiat top-ups (precreate QR, query, close, refund, notifications). */
export function createAlipayGateway(options: AlipayGatewayOptions): PaymentGateway {
  const { appId, sellerId, gatewayUrl, notifyUrl } = options;
  const appPrivateKey = loadPrivateKey(options.appPrivateKey, "appPrivateKey");
  const alipayPublicKey = loadPublicKey(options.alipayPublicKey, "alipayPublicKey");
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  /** One signed v1 call; the answer is returned only once its signature verifies. */
  async function call(method: string, biz: Record<string, unknown>, system: Record<string, string> = {}): Promise<Answer> {
    const params: Record<string, string> = {
      app_id: appId,
      method,
      format: "JSON",
      charset: "utf-8",
      sign_type: "RSA2",
      timestamp: formatBeijingTime(Math.floor(Date.now() / 1000)),
      version: "1.0",
      biz_content: JSON.stringify(biz),
      ...system,
    };
    params.sign = signRequest(params, appPrivateKey);

    let status: number;
    let body: Buffer;
    try {
      const response = await fetchImpl(gatewayUrl, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded;charset=utf-8", accept: "application/json" },
        body: encodeForm(params),
        redirect: "error",
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = response.status;
      body = Buffer.from(await response.arrayBuffer());
    } catch (error) {
      throw new AlipayUnreachableError(`${method}: no answer from the Alipay gateway (${(error as Error).name}: ${(error as Error).message})`, { cause: error });
    }
    if (status !== 200) throw new AlipayUnreachableError(`${method}: the Alipay gateway answered HTTP ${status}`);

    let inner: Record<string, unknown>;
    try {
      inner = verifyResponse(new TextDecoder("utf-8", { fatal: true }).decode(body), method, alipayPublicKey);
    } catch (error) {
      throw new GatewayResponseError(`${method}: ${error instanceof AlipayProtocolError ? error.message : "response is not UTF-8"}`);
    }
    const code = field(method, inner, "code");
    if (code === "10000") return { ok: true, data: inner };
    const subCode = optionalField(method, inner, "sub_code");
    return {
      ok: false,
      refusal: { code, msg: optionalField(method, inner, "msg"), subCode, subMsg: optionalField(method, inner, "sub_msg"), transient: isTransient(code, subCode) },
    };
  }

  function checkOrderId(orderId: string): void {
    if (!ORDER_ID.test(orderId)) throw new RangeError(`order id must be 6-32 of [A-Za-z0-9_-]: ${JSON.stringify(orderId.slice(0, 40))}`);
  }

  function checkCny(currency: string): void {
    if (currency !== "CNY") throw new RangeError(`Alipay trades are in CNY, not ${currency}`);
  }

  async function queryRefundAnswer(orderId: string, refundId: string): Promise<RefundStatus> {
    const method = "alipay.trade.fastpay.refund.query";
    let answer: Answer;
    try {
      answer = await call(method, { out_trade_no: orderId, out_request_no: refundId });
    } catch (error) {
      if (error instanceof AlipayUnreachableError) return { state: "processing" };
      throw error;
    }
    if (!answer.ok) {
      if (answer.refusal.subCode === "ACQ.TRADE_NOT_EXIST") return { state: "notFound" };
      if (answer.refusal.transient) return { state: "processing" };
      throw new AlipayApiError(method, answer.refusal);
    }
    checkOrder(method, answer.data, orderId);
    const status = optionalField(method, answer.data, "refund_status");
    // No refund_status: Alipay did not receive this refund request, or it failed (documented).
    if (status === undefined) return { state: "notFound" };
    if (status !== "REFUND_SUCCESS") return { state: "processing" };
    const echoed = optionalField(method, answer.data, "out_request_no");
    if (echoed !== undefined && echoed !== refundId) throw new GatewayResponseError(`${method}: response is for out_request_no ${echoed.slice(0, 64)}, not ${refundId}`);
    return { state: "succeeded", refundFen: convert(method, "refund_amount", field(method, answer.data, "refund_amount"), yuanToFen) };
  }

  return {
    channel: "alipay",

    async createPayment(request: PaymentRequest): Promise<PaymentCreated> {
      const method = "alipay.trade.precreate";
      checkOrderId(request.orderId);
      checkCny(request.currency);
      if (request.amountFen <= 0n || request.amountFen > MAX_TRADE_FEN) throw new RangeError(`amount must be from 1 fen to ${MAX_TRADE_FEN} fen: ${request.amountFen}`);
      const subject = request.subject.trim();
      if (subject === "" || subject.length > 256 || /\p{Cc}/u.test(subject)) throw new RangeError("subject must be 1-256 characters without control characters");
      const answer = await call(
        method,
        { out_trade_no: request.orderId, total_amount: fenToYuan(request.amountFen), subject, time_expire: formatBeijingTime(request.expiresAt) },
        { notify_url: notifyUrl },
      );
      if (!answer.ok) throw new AlipayApiError(method, answer.refusal);
      checkOrder(method, answer.data, request.orderId);
      return { qrCode: field(method, answer.data, "qr_code") };
    },

    async queryPayment(orderId: string): Promise<PaymentStatus> {
      const method = "alipay.trade.query";
      checkOrderId(orderId);
      const answer = await call(method, { out_trade_no: orderId });
      if (!answer.ok) {
        // Precreate trades exist only once the QR code is scanned.
        if (answer.refusal.subCode === "ACQ.TRADE_NOT_EXIST") return { state: "notFound" };
        throw new AlipayApiError(method, answer.refusal);
      }
      const { data } = answer;
      checkOrder(method, data, orderId);
      const tradeStatus = field(method, data, "trade_status");
      switch (tradeStatus) {
        case "WAIT_BUYER_PAY":
          return { state: "pending" };
        case "TRADE_SUCCESS":
        case "TRADE_FINISHED":
          return {
            state: "paid",
            tradeNo: field(method, data, "trade_no"),
            amountFen: convert(method, "total_amount", field(method, data, "total_amount"), yuanToFen),
            currency: "CNY",
            paidAt: convert(method, "send_pay_date", field(method, data, "send_pay_date"), parseBeijingTime),
          };
        // Also a paid trade that was then fully refunded: the query cannot tell them apart.
        case "TRADE_CLOSED":
          return { state: "closed" };
        default:
          throw new GatewayResponseError(`${method}: unknown trade_status ${tradeStatus.slice(0, 32)}`);
      }
    },

    async closePayment(orderId: string): Promise<CloseResult> {
      const method = "alipay.trade.close";
      checkOrderId(orderId);
      const answer = await call(method, { out_trade_no: orderId });
      if (answer.ok) {
        checkOrder(method, answer.data, orderId);
        return "closed";
      }
      // Never scanned: no trade exists, and none can be created from a closed precreate.
      if (answer.refusal.subCode === "ACQ.TRADE_NOT_EXIST") return "closed";
      // Paid (or paid and refunded): the caller re-queries and credits or refunds.
      if (answer.refusal.subCode === "ACQ.TRADE_STATUS_ERROR") return "paid";
      throw new AlipayApiError(method, answer.refusal);
    },

    async refund(request: RefundRequest): Promise<RefundStatus> {
      const method = "alipay.trade.refund";
      checkOrderId(request.orderId);
      checkCny(request.currency);
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(request.refundId)) throw new RangeError(`refund id must be 1-64 of [A-Za-z0-9_-]: ${JSON.stringify(request.refundId.slice(0, 70))}`);
      if (request.refundFen <= 0n) throw new RangeError(`refund must be at least 1 fen: ${request.refundFen}`);
      const reason = request.reason.trim().slice(0, 256);
      let answer: Answer;
      try {
        answer = await call(method, {
          out_trade_no: request.orderId,
          refund_amount: fenToYuan(request.refundFen),
          // The idempotency key: Alipay refunds once per out_request_no, however often it is sent.
          out_request_no: request.refundId,
          ...(reason ? { refund_reason: reason } : {}),
        });
      } catch (error) {
        // Unknown outcome: the caller asks again with the same refundId, which cannot refund twice.
        if (error instanceof AlipayUnreachableError || error instanceof GatewayResponseError) return { state: "processing" };
        throw error;
      }
      if (!answer.ok) return answer.refusal.transient ? { state: "processing" } : { state: "failed", reason: describe(answer.refusal) };
      const { data } = answer;
      try {
        checkOrder(method, data, request.orderId);
        // refund_fee is the trade's cumulative refund, so it covers this one.
        const cumulative = convert(method, "refund_fee", field(method, data, "refund_fee"), yuanToFen);
        if (cumulative < request.refundFen) throw new GatewayResponseError(`${method}: refund_fee ${fenToYuan(cumulative)} is less than this refund`);
        if (field(method, data, "fund_change") === "Y") return { state: "succeeded", refundFen: request.refundFen };
      } catch (error) {
        if (error instanceof GatewayResponseError) return { state: "processing" };
        throw error;
      }
      // fund_change N: a repeat. Report what Alipay holds for this refundId, not what was asked now.
      const earlier = await queryRefundAnswer(request.orderId, request.refundId).catch((): RefundStatus => ({ state: "processing" }));
      return earlier.state === "succeeded" ? earlier : { state: "processing" };
    },

    async queryRefund(orderId: string, refundId: string): Promise<RefundStatus> {
      checkOrderId(orderId);
      return queryRefundAnswer(orderId, refundId);
    },

    parseNotification({ headers, rawBody }, _now: number): GatewayNotification {
      // Alipay notifications carry no freshness field; a replay repeats facts that are already
      // cumulative (refund_fee) and the top-up domain applies them idempotently.
      let form: AlipayForm;
      try {
        form = parseForm(rawBody, header(headers, "content-type"));
        verifyNotificationSignature(form, alipayPublicKey);
      } catch (error) {
        if (error instanceof AlipayProtocolError) throw new NotificationRejected(error.message);
        throw error;
      }
      const params = form.params;
      const get = (name: string) => {
        const value = params.get(name);
        return value === undefined || value === "" ? undefined : value;
      };
      const required = (name: string) => {
        const value = get(name);
        if (value === undefined) throw new NotificationRejected(`notification has no ${name}`);
        return value;
      };
      const parsed = <T>(name: string, value: string, parse: (text: string) => T): T => {
        try {
          return parse(value);
        } catch (error) {
          throw new NotificationRejected(`notification ${name}: ${(error as Error).message}`);
        }
      };

      const notifiedApp = required("app_id");
      if (notifiedApp !== appId) throw new NotificationRejected(`notification app_id ${notifiedApp.slice(0, 32)} is not ours (${appId})`);
      const seller = get("seller_id");
      if (seller !== undefined && seller !== sellerId) throw new NotificationRejected(`notification seller_id ${seller.slice(0, 32)} is not ours (${sellerId})`);
      const notifyType = required("notify_type");
      if (notifyType !== "trade_status_sync") throw new NotificationRejected(`notification notify_type ${notifyType.slice(0, 32)} is not trade_status_sync`);
      const orderId = required("out_trade_no");
      if (!ORDER_ID.test(orderId)) throw new NotificationRejected(`notification out_trade_no ${JSON.stringify(orderId.slice(0, 40))} is not one of our order ids`);

      const amountFen = parsed("total_amount", required("total_amount"), yuanToFen);
      if (amountFen <= 0n) throw new NotificationRejected("notification total_amount is zero");
      const refundFee = get("refund_fee");
      const refundedFen = refundFee === undefined ? 0n : parsed("refund_fee", refundFee, yuanToFen);
      if (refundedFen > amountFen) throw new NotificationRejected(`notification refund_fee ${refundFee} exceeds total_amount ${fenToYuan(amountFen)}`);
      const refundId = get("out_biz_no");

      const tradeStatus = required("trade_status");
      switch (tradeStatus) {
        case "TRADE_SUCCESS":
        case "TRADE_FINISHED":
          return {
            kind: "payment",
            orderId,
            tradeNo: required("trade_no"),
            amountFen,
            currency: "CNY",
            paidAt: parsed("gmt_payment", required("gmt_payment"), parseBeijingTime),
            refundedFen,
            ...(refundId !== undefined ? { refundId } : {}),
          };
        case "TRADE_CLOSED": {
          const tradeNo = get("trade_no");
          return {
            kind: "closed",
            orderId,
            ...(tradeNo !== undefined ? { tradeNo } : {}),
            amountFen,
            currency: "CNY",
            refundedFen,
            ...(refundId !== undefined ? { refundId } : {}),
          };
        }
        default:
          // WAIT_BUYER_PAY is never notified by default, and proves nothing about money.
          throw new NotificationRejected(`notification trade_status ${tradeStatus.slice(0, 32)} is not a payment or a close`);
      }
    },
  };
}
