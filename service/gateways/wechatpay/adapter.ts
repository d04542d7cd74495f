// The WeChat Pay APIv3 adapter (Native payments and domestic refunds). Every request is signed
// with the merchant key; every response, including 204s and errors, must carry a gateway
// signature that verifies within ±300 s before anything in it is believed.
import { type KeyObject } from "node:crypto";

import { z } from "zod";

import {
  type CloseResult,
  GatewayResponseError,
  ORDER_ID,
  type PaymentCreated,
  type PaymentGateway,
  type PaymentRequest,
  type PaymentStatus,
  type RefundRequest,
  type RefundStatus,
} from "../gateway.ts";
import { parseWechatPayNotification } from "./notification.ts";
import { type PlatformKeys, apiV3KeyFrom, readSignatureHeaders, signRequest, verifySignature } from "./signing.ts";
import { parseRfc3339, toBeijingTime } from "./time.ts";

/** The production APIv3 host. */
export const WECHATPAY_API_URL = "https://api.mch.weixin.qq.com";
const DEFAULT_TIMEOUT_MS = 10_000;
const USER_AGENT = "FiatGas/0.1 (wechatpay-apiv3)";

/** Everything the adapter needs; config.ts builds it from the WECHATPAY_* settings. */
export type WechatPayGatewayOptions = {
  mchid: string;
  appid: string;
  /** Serial of the merchant API certificate whose private key signs our requests. */
  merchantSerial: string;
  merchantPrivateKey: KeyObject;
  /** The 32-character APIv3 key (or it as a secret KeyObject). */
  apiV3Key: string | KeyObject;
  /** Gateway verification keys by serial: `PUB_KEY_ID_…` ids and platform-certificate serials. */
  platformKeys: PlatformKeys;
  /** API origin (plus a path prefix in the sandbox), without a trailing slash. */
  apiUrl: string;
  /** Where WeChat posts payment and refund notifications: http(s), no query string. */
  notifyUrl: string;
  fetch?: typeof fetch;
  /** Per-request timeout; 10 s by default. */
  timeoutMs?: number;
  /** Unix seconds, for response freshness; the system clock by default. */
  now?: () => number;
};

/** The gateway answered, signed, with a refusal (HTTP 4xx/5xx and `{code, message}`). */
export class WechatPayApiError extends Error {
  override name = "WechatPayApiError";
  readonly status: number;
  /** The gateway's error code, e.g. PARAM_ERROR, ORDERPAID, SYSTEM_ERROR. */
  readonly code: string;
  readonly requestId: string | undefined;
  constructor(message: string, { status, code, requestId }: { status: number; code: string; requestId: string | undefined }) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

/** The request got no answer at all (network error, timeout): its outcome at the gateway is unknown. */
export class WechatPayTransportError extends Error {
  override name = "WechatPayTransportError";
}

const REFUND_ID = /^[A-Za-z0-9_\-|*@]{1,64}$/;
const fen = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const errorSchema = z.object({ code: z.string().min(1), message: z.string().optional() });
const nativeSchema = z.object({ code_url: z.string().min(1) });
const queriedTransactionSchema = z.object({
  appid: z.string(),
  mchid: z.string(),
  out_trade_no: z.string(),
  transaction_id: z.string().optional(),
  trade_state: z.enum(["SUCCESS", "REFUND", "NOTPAY", "CLOSED", "REVOKED", "USERPAYING", "PAYERROR"]),
  success_time: z.string().optional(),
  amount: z.object({ total: fen.optional(), currency: z.string().optional() }).optional(),
});
const refundSchema = z.object({
  out_refund_no: z.string(),
  out_trade_no: z.string(),
  status: z.enum(["SUCCESS", "PROCESSING", "ABNORMAL", "CLOSED"]),
  amount: z.object({ refund: fen, total: fen }),
});

type Answer = { status: number; body: unknown; requestId: string | undefined };

/** Creates the WeChat Pay gateway adapter. */
export function createWechatPayGateway(options: WechatPayGatewayOptions): PaymentGateway {
  const { mchid, appid, merchantSerial, merchantPrivateKey, platformKeys, notifyUrl } = options;
  const apiV3Key = apiV3KeyFrom(options.apiV3Key);
  const apiUrl = options.apiUrl.replace(/\/+$/, "");
  const apiPath = new URL(apiUrl).pathname.replace(/\/+$/, "");
  const fetchFn = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  checkNotifyUrl(notifyUrl);
  if (platformKeys.size === 0) throw new RangeError("platformKeys must hold at least one WeChat Pay public key or platform certificate");

  /** One signed call; resolves only with a verified answer (any status), else throws. */
  async function call(method: "GET" | "POST", path: string, payload?: object): Promise<Answer> {
    const body = payload === undefined ? "" : JSON.stringify(payload);
    // The signed path is the one the server sees, including a sandbox prefix.
    const authorization = signRequest({ method, pathAndQuery: `${apiPath}${path}`, body }, { mchid, serial: merchantSerial, privateKey: merchantPrivateKey }, { timestamp: now() });
    const headers: Record<string, string> = { Authorization: authorization, Accept: "application/json", "User-Agent": USER_AGENT };
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    const what = `${method} ${path.split("?")[0]}`;
    let response: Response;
    let raw: Buffer;
    try {
      response = await fetchFn(`${apiUrl}${path}`, { method, headers, body: payload === undefined ? undefined : body, signal: AbortSignal.timeout(timeoutMs) });
      raw = Buffer.from(await response.arrayBuffer());
    } catch (error) {
      const reason = error instanceof Error && error.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : "the request failed";
      throw new WechatPayTransportError(`WeChat Pay ${what}: ${reason}`, { cause: error });
    }
    const requestId = response.headers.get("request-id") ?? undefined;
    const check = verifySignature(readSignatureHeaders((name) => response.headers.get(name) ?? undefined), raw, platformKeys, now());
    if (!check.ok) throw new GatewayResponseError(`WeChat Pay ${what} answered ${response.status} without a valid signature: ${check.reason}${requestId ? ` (Request-ID ${requestId})` : ""}`);
    if (raw.length === 0) return { status: response.status, body: undefined, requestId };
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
    } catch {
      throw new GatewayResponseError(`WeChat Pay ${what} answered ${response.status} with a signed body that is not UTF-8 JSON`);
    }
    return { status: response.status, body: parsed, requestId };
  }

  function read<T>(schema: z.ZodType<T>, answer: Answer, what: string): T {
    const parsed = schema.safeParse(answer.body);
    if (!parsed.success) {
      throw new GatewayResponseError(`WeChat Pay ${what} answered ${answer.status} with an unexpected body: ${parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")}`);
    }
    return parsed.data;
  }

  /** A verified non-2xx answer as an error, with the gateway's code. */
  function refusal(answer: Answer, what: string): WechatPayApiError {
    const error = errorSchema.safeParse(answer.body);
    const code = error.success ? error.data.code : "UNKNOWN";
    const message = error.success && error.data.message ? `: ${error.data.message}` : "";
    return new WechatPayApiError(`WeChat Pay ${what} refused with ${answer.status} ${code}${message}`, { status: answer.status, code, requestId: answer.requestId });
  }

  function errorCode(answer: Answer): string | undefined {
    const error = errorSchema.safeParse(answer.body);
    return error.success ? error.data.code : undefined;
  }

  function refundStatus(answer: Answer, request: { orderId: string; refundId: string }, what: string): RefundStatus {
    const refund = read(refundSchema, answer, what);
    if (refund.out_refund_no !== request.refundId || refund.out_trade_no !== request.orderId) {
      throw new GatewayResponseError(`WeChat Pay ${what} answered for refund ${refund.out_refund_no} of order ${refund.out_trade_no}, not ${request.refundId} of ${request.orderId}`);
    }
    switch (refund.status) {
      case "SUCCESS":
        return { state: "succeeded", refundFen: BigInt(refund.amount.refund) };
      case "PROCESSING":
        return { state: "processing" };
      default:
        return { state: "failed", reason: `WeChat Pay refund ${refund.status}` };
    }
  }

  return {
    channel: "wechatpay",

    async createPayment(request: PaymentRequest): Promise<PaymentCreated> {
      checkOrderId(request.orderId);
      if (request.amountFen <= 0n || request.amountFen > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError("amountFen must be a positive whole number of fen");
      checkCurrency(request.currency);
      const description = request.subject.trim();
      if (description.length === 0 || description.length > 127) throw new RangeError("subject must be 1-127 characters (WeChat `description`)");
      if (!Number.isSafeInteger(request.expiresAt) || request.expiresAt <= now()) throw new RangeError("expiresAt must be unix seconds in the future");
      const answer = await call("POST", "/v3/pay/transactions/native", {
        appid,
        mchid,
        description,
        out_trade_no: request.orderId,
        time_expire: toBeijingTime(request.expiresAt),
        notify_url: notifyUrl,
        amount: { total: Number(request.amountFen), currency: request.currency },
      });
      if (answer.status !== 200) throw refusal(answer, "native order");
      return { codeUrl: read(nativeSchema, answer, "native order").code_url };
    },

    async queryPayment(orderId: string): Promise<PaymentStatus> {
      checkOrderId(orderId);
      const answer = await call("GET", `/v3/pay/transactions/out-trade-no/${encodeURIComponent(orderId)}?mchid=${encodeURIComponent(mchid)}`);
      if (answer.status === 404 && errorCode(answer) === "ORDER_NOT_EXIST") return { state: "notFound" };
      if (answer.status !== 200) throw refusal(answer, "order query");
      const transaction = read(queriedTransactionSchema, answer, "order query");
      if (transaction.mchid !== mchid || transaction.appid !== appid || transaction.out_trade_no !== orderId) {
        throw new GatewayResponseError(`WeChat Pay order query answered for ${transaction.mchid}/${transaction.appid}/${transaction.out_trade_no}, not our order ${orderId}`);
      }
      switch (transaction.trade_state) {
        case "NOTPAY":
        case "USERPAYING":
          return { state: "pending" };
        case "CLOSED":
        case "REVOKED":
        case "PAYERROR":
          return { state: "closed" };
        default: {
          // SUCCESS or REFUND: paid (refunds may have begun since).
          const paidAt = transaction.success_time === undefined ? undefined : parseRfc3339(transaction.success_time);
          const { total, currency } = transaction.amount ?? {};
          if (!transaction.transaction_id || paidAt === undefined || total === undefined || !currency) {
            throw new GatewayResponseError(`WeChat Pay order query: a ${transaction.trade_state} order lacks transaction_id, success_time or amount`);
          }
          return { state: "paid", tradeNo: transaction.transaction_id, amountFen: BigInt(total), currency, paidAt };
        }
      }
    },

    async closePayment(orderId: string): Promise<CloseResult> {
      checkOrderId(orderId);
      const answer = await call("POST", `/v3/pay/transactions/out-trade-no/${encodeURIComponent(orderId)}/close`, { mchid });
      if (answer.status === 204 || answer.status === 200) return "closed";
      const code = errorCode(answer);
      if (code === "ORDERPAID") return "paid";
      // No order at the gateway, or one already closed: either way it can never be paid.
      if ((answer.status === 404 && code === "ORDER_NOT_EXIST") || code === "ORDER_CLOSED" || code === "ORDERCLOSED") return "closed";
      throw refusal(answer, "close");
    },

    async refund(request: RefundRequest): Promise<RefundStatus> {
      checkOrderId(request.orderId);
      if (!REFUND_ID.test(request.refundId)) throw new RangeError("refundId must be 1-64 of A-Z, a-z, 0-9 and _-|*@ (WeChat `out_refund_no`)");
      if (request.totalFen <= 0n || request.totalFen > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError("totalFen must be a positive whole number of fen");
      if (request.refundFen <= 0n || request.refundFen > request.totalFen) throw new RangeError("refundFen must be from 1 fen to totalFen");
      checkCurrency(request.currency);
      const reason = request.reason.trim();
      if (reason.length > 80) throw new RangeError("reason must be at most 80 characters (WeChat `reason`)");
      let answer: Answer;
      try {
        answer = await call("POST", "/v3/refund/domestic/refunds", {
          out_trade_no: request.orderId,
          out_refund_no: request.refundId,
          ...(reason ? { reason } : {}),
          notify_url: notifyUrl,
          amount: { refund: Number(request.refundFen), total: Number(request.totalFen), currency: request.currency },
        });
      } catch (error) {
        // No trustworthy answer: the refund may or may not exist; the caller asks again with the same id.
        if (error instanceof WechatPayTransportError || error instanceof GatewayResponseError) return { state: "processing" };
        throw error;
      }
      if (answer.status === 200) {
        try {
          return refundStatus(answer, request, "refund");
        } catch (error) {
          if (error instanceof GatewayResponseError) return { state: "processing" };
          throw error;
        }
      }
      // 5xx and rate limiting say nothing final; other signed 4xx refusals moved no money.
      if (answer.status >= 500 || answer.status === 429 || errorCode(answer) === "FREQUENCY_LIMITED" || errorCode(answer) === "SYSTEM_ERROR") return { state: "processing" };
      return { state: "failed", reason: refusal(answer, "refund").message };
    },

    async queryRefund(orderId: string, refundId: string): Promise<RefundStatus> {
      checkOrderId(orderId);
      if (!REFUND_ID.test(refundId)) throw new RangeError("refundId must be 1-64 of A-Z, a-z, 0-9 and _-|*@ (WeChat `out_refund_no`)");
      const answer = await call("GET", `/v3/refund/domestic/refunds/${encodeURIComponent(refundId)}`);
      if (answer.status === 404 && errorCode(answer) === "RESOURCE_NOT_EXISTS") return { state: "notFound" };
      if (answer.status !== 200) throw refusal(answer, "refund query");
      return refundStatus(answer, { orderId, refundId }, "refund query");
    },

    parseNotification(request, at) {
      return parseWechatPayNotification(request, at, { mchid, appid, apiV3Key, platformKeys });
    },
  };
}

function checkOrderId(orderId: string): void {
  // Also keeps the id safe to put in a URL path.
  if (!ORDER_ID.test(orderId)) throw new RangeError("orderId must be 6-32 of A-Z, a-z, 0-9, _ and - (WeChat `out_trade_no`)");
}

function checkCurrency(currency: string): void {
  if (currency !== "CNY") throw new RangeError(`WeChat Pay domestic payments are in CNY only, not ${currency}`);
}

function checkNotifyUrl(notifyUrl: string): void {
  let url: URL;
  try {
    url = new URL(notifyUrl);
  } catch {
    throw new RangeError("notifyUrl must be an absolute http(s) URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new RangeError("notifyUrl must be an absolute http(s) URL");
  if (url.search || url.hash) throw new RangeError("notifyUrl must not carry a query string or fragment (WeChat refuses it)");
}
