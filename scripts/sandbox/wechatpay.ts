// The WeChat Pay APIv3 side of the sandbox: Native orders, query, close, domestic refunds and
// their notifications, signed and encrypted as the real gateway does (../shared/specs/
// payment-gateways.md §2 and §6). It verifies the merchant's Authorization on every call and
// signs every response, including 204s and errors.
import { type KeyObject, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomInt, randomUUID, sign } from "node:crypto";

import { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { z } from "zod";

import {
  PROBE_SIGNATURE_PREFIX,
  RESOURCE_ALGORITHM,
  apiV3KeyFrom,
  encryptResource,
  randomNonce,
  signResponse,
  verifyRequest,
} from "../../service/gateways/wechatpay/signing.ts";
import { parseRfc3339, toBeijingTime } from "../../service/gateways/wechatpay/time.ts";
import { type GatewaySimulator, type NotificationDelivery, type OutgoingNotification, type SandboxOrder } from "./simulator.ts";

/** The simulator's identities and keys, as PEM strings so a restarted sandbox can keep them. */
export type WechatPaySimulatorKeys = {
  mchid: string;
  appid: string;
  /** The 32-character APIv3 key. */
  apiV3Key: string;
  merchantSerial: string;
  /** The merchant's API private key (PKCS#8 PEM); the simulator verifies requests with its public half. */
  merchantPrivateKey: string;
  /** WeChat Pay public-key mode: the `PUB_KEY_ID_…` id and the gateway's private key (PKCS#8 PEM). */
  publicKeyId: string;
  publicKeyPrivateKey: string;
  /** Platform-certificate mode: the certificate's hex serial, its private key and the certificate PEM. */
  certificateSerial: string;
  certificatePrivateKey: string;
  certificate: string;
};

/** Options of the simulator. */
export type WechatPaySimulatorOptions = {
  /** The sandbox's public origin, e.g. http://127.0.0.1:8788 (no trailing slash). */
  baseUrl: string;
  delivery: NotificationDelivery;
  /** Unix seconds; the system clock by default. */
  now?: () => number;
  /** Reuse keys from an earlier run; generated otherwise. */
  keys?: WechatPaySimulatorKeys;
  /** Alternate the signing key (public key, platform certificate, …) on every signature, as during a key migration. */
  rotate?: boolean;
  /** "auto": a refund succeeds right after the API answers PROCESSING; "manual": only through settleRefund(). */
  refundSettlement?: "auto" | "manual";
};

/** The WeChat Pay simulator, plus sandbox-only controls. */
export interface WechatPaySimulator extends GatewaySimulator {
  readonly keys: WechatPaySimulatorKeys;
  /** Ends a PROCESSING refund with a final status and sends its REFUND.* notification. */
  settleRefund(outRefundNo: string, status: "SUCCESS" | "ABNORMAL" | "CLOSED"): void;
}

type TradeState = "NOTPAY" | "SUCCESS" | "REFUND" | "CLOSED";

type Order = {
  orderId: string;
  transactionId: string;
  description: string;
  amountFen: bigint;
  currency: string;
  notifyUrl: string;
  codeUrl: string;
  expiresAt: number;
  state: TradeState;
  paidAt?: number;
  openid: string;
  /** The create request's parameters: a repeat with the same ones gets the same code_url. */
  fingerprint: string;
};

type RefundRecord = {
  outRefundNo: string;
  refundId: string;
  orderId: string;
  amountFen: bigint;
  status: "PROCESSING" | "SUCCESS" | "ABNORMAL" | "CLOSED";
  createdAt: number;
  succeededAt?: number;
  notifyUrl: string;
};

const RESPONSE_STATUS_FOR_ERROR = { PARAM_ERROR: 400, INVALID_REQUEST: 400, APPID_MCHID_NOT_MATCH: 400, ORDERPAID: 400, ORDER_CLOSED: 400, SIGN_ERROR: 401, ORDER_NOT_EXIST: 404, RESOURCE_NOT_EXISTS: 404, NOT_FOUND: 404, SYSTEM_ERROR: 500 } as const;
type ErrorCode = keyof typeof RESPONSE_STATUS_FOR_ERROR;

class ApiError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const digits = (count: number) => Array.from({ length: count }, () => randomInt(10)).join("");

/** Generates a fresh merchant and gateway identity: three RSA-2048 key pairs and a platform certificate. */
export function generateWechatPaySimulatorKeys(now = Math.floor(Date.now() / 1000)): WechatPaySimulatorKeys {
  const pem = () => generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const certificatePrivateKey = pem();
  // A positive 20-byte serial whose hex has no leading zero, like the gateway's 40-hex-digit serials.
  const serial = randomBytes(20);
  serial[0] = (serial[0] & 0x3f) | 0x40;
  const mchid = `19${digits(8)}`;
  return {
    mchid,
    appid: `wx${randomBytes(8).toString("hex")}`,
    apiV3Key: randomNonce(32),
    merchantSerial: randomBytes(20).toString("hex").toUpperCase(),
    merchantPrivateKey: pem(),
    publicKeyId: `PUB_KEY_ID_01${mchid}${digits(14)}`,
    publicKeyPrivateKey: pem(),
    certificateSerial: serial.toString("hex").toUpperCase(),
    certificatePrivateKey,
    certificate: selfSignedCertificate(createPrivateKey(certificatePrivateKey), serial, now),
  };
}

/** Creates the WeChat Pay simulator. */
export function createWechatPaySimulator({ baseUrl, delivery, now = () => Math.floor(Date.now() / 1000), keys = generateWechatPaySimulatorKeys(), rotate = false, refundSettlement = "auto" }: WechatPaySimulatorOptions): WechatPaySimulator {
  const apiV3Key = apiV3KeyFrom(keys.apiV3Key);
  const merchantPublicKey = createPublicKey(createPrivateKey(keys.merchantPrivateKey));
  const signers: { serial: string; privateKey: KeyObject }[] = [
    { serial: keys.publicKeyId, privateKey: createPrivateKey(keys.publicKeyPrivateKey) },
    { serial: keys.certificateSerial, privateKey: createPrivateKey(keys.certificatePrivateKey) },
  ];
  let signatures = 0;
  const orders = new Map<string, Order>();
  const refunds = new Map<string, RefundRecord>();

  function signer() {
    return rotate ? signers[signatures++ % signers.length] : signers[0];
  }

  /** Wechatpay-* headers for `body`, fresh timestamp and nonce every time. */
  function gatewayHeaders(body: string): Record<string, string> {
    const { serial, privateKey } = signer();
    return { ...signResponse(body, { privateKey, serial, timestamp: now() }), "Request-ID": `08${digits(6)}-${randomBytes(8).toString("hex").toUpperCase()}` };
  }

  function respond(reply: FastifyReply, status: number, payload?: object): FastifyReply {
    const body = payload === undefined ? "" : JSON.stringify(payload);
    reply.code(status).headers(gatewayHeaders(body));
    if (payload === undefined) return reply.send();
    return reply.type("application/json; charset=utf-8").send(body);
  }

  function refuse(reply: FastifyReply, error: ApiError): FastifyReply {
    return respond(reply, RESPONSE_STATUS_FOR_ERROR[error.code], { code: error.code, message: error.message });
  }

  function currentState(order: Order): TradeState {
    // An unpaid order past time_expire can no longer be paid.
    if (order.state === "NOTPAY" && now() >= order.expiresAt) order.state = "CLOSED";
    return order.state;
  }

  function refundedFen(orderId: string, statuses: RefundRecord["status"][] = ["SUCCESS"]): bigint {
    let total = 0n;
    for (const refund of refunds.values()) if (refund.orderId === orderId && statuses.includes(refund.status)) total += refund.amountFen;
    return total;
  }

  function sandboxOrder(order: Order): SandboxOrder {
    const refunded = refundedFen(order.orderId);
    const state = currentState(order);
    return {
      channel: "wechatpay",
      orderId: order.orderId,
      amountFen: order.amountFen,
      currency: order.currency,
      subject: order.description,
      qrContent: order.codeUrl,
      state: state === "NOTPAY" ? "pending" : state === "CLOSED" ? "closed" : refunded === order.amountFen ? "refunded" : "paid",
      refundedFen: refunded,
      expiresAt: order.expiresAt,
    };
  }

  function transaction(order: Order): Record<string, unknown> {
    const state = currentState(order);
    const paid = state === "SUCCESS" || state === "REFUND";
    return {
      appid: keys.appid,
      mchid: keys.mchid,
      out_trade_no: order.orderId,
      ...(paid ? { transaction_id: order.transactionId } : {}),
      trade_type: "NATIVE",
      trade_state: state,
      trade_state_desc: { NOTPAY: "未支付", SUCCESS: "支付成功", REFUND: "转入退款", CLOSED: "已关闭" }[state],
      ...(paid ? { bank_type: "OTHERS", success_time: toBeijingTime(order.paidAt!), payer: { openid: order.openid } } : {}),
      attach: "",
      amount: paid
        ? { total: Number(order.amountFen), payer_total: Number(order.amountFen), currency: order.currency, payer_currency: order.currency }
        : { total: Number(order.amountFen), currency: order.currency },
    };
  }

  function refundBody(refund: RefundRecord): Record<string, unknown> {
    const order = orders.get(refund.orderId)!;
    return {
      refund_id: refund.refundId,
      out_refund_no: refund.outRefundNo,
      transaction_id: order.transactionId,
      out_trade_no: order.orderId,
      channel: "ORIGINAL",
      user_received_account: "支付用户零钱",
      ...(refund.succeededAt === undefined ? {} : { success_time: toBeijingTime(refund.succeededAt) }),
      create_time: toBeijingTime(refund.createdAt),
      status: refund.status,
      funds_account: "AVAILABLE",
      amount: {
        total: Number(order.amountFen),
        refund: Number(refund.amountFen),
        from: [],
        payer_total: Number(order.amountFen),
        payer_refund: Number(refund.amountFen),
        settlement_refund: Number(refund.amountFen),
        settlement_total: Number(order.amountFen),
        discount_refund: 0,
        currency: order.currency,
        refund_fee: 0,
      },
      promotion_detail: [],
    };
  }

  /** One notification: its body (and ciphertext) fixed at creation, its signature fresh on every attempt. */
  function notify(url: string, eventType: string, summary: string, originalType: "transaction" | "refund", resource: object): void {
    const nonce = randomNonce(12);
    const id = randomUUID();
    const body = JSON.stringify({
      id,
      create_time: toBeijingTime(now()),
      resource_type: "encrypt-resource",
      event_type: eventType,
      summary,
      resource: {
        original_type: originalType,
        algorithm: RESOURCE_ALGORITHM,
        ciphertext: encryptResource(JSON.stringify(resource), apiV3Key, nonce, originalType),
        associated_data: originalType,
        nonce,
      },
    });
    const notification: OutgoingNotification = {
      channel: "wechatpay",
      id,
      url,
      build: () => ({ headers: { "Content-Type": "application/json", ...gatewayHeaders(body) }, body }),
      buildProbe: () => {
        const headers = gatewayHeaders(body);
        headers["Wechatpay-Signature"] = `${PROBE_SIGNATURE_PREFIX}${randomBytes(192).toString("base64")}`;
        return { headers: { "Content-Type": "application/json", ...headers }, body };
      },
      acknowledged: (status) => status === 200 || status === 204,
    };
    delivery.send(notification);
  }

  function refundNotification(refund: RefundRecord): void {
    const order = orders.get(refund.orderId)!;
    const eventType = `REFUND.${refund.status}`;
    const summary = { SUCCESS: "退款成功", ABNORMAL: "退款异常", CLOSED: "退款关闭", PROCESSING: "" }[refund.status];
    notify(refund.notifyUrl, eventType, summary, "refund", {
      mchid: keys.mchid,
      out_trade_no: order.orderId,
      transaction_id: order.transactionId,
      out_refund_no: refund.outRefundNo,
      refund_id: refund.refundId,
      refund_status: refund.status,
      ...(refund.succeededAt === undefined ? {} : { success_time: toBeijingTime(refund.succeededAt) }),
      user_received_account: "支付用户零钱",
      amount: { total: Number(order.amountFen), refund: Number(refund.amountFen), payer_total: Number(order.amountFen), payer_refund: Number(refund.amountFen) },
    });
  }

  function settle(refund: RefundRecord, status: "SUCCESS" | "ABNORMAL" | "CLOSED"): void {
    if (refund.status !== "PROCESSING") throw new Error(`refund ${refund.outRefundNo} is already ${refund.status}`);
    refund.status = status;
    if (status === "SUCCESS") refund.succeededAt = now();
    refundNotification(refund);
  }

  /** Creates a refund after the gateway's checks; the caller decides when it settles. */
  function createRefund(order: Order, outRefundNo: string, amountFen: bigint, notifyUrl: string): RefundRecord {
    const state = currentState(order);
    if (state !== "SUCCESS" && state !== "REFUND") throw new ApiError("INVALID_REQUEST", "订单未支付，不能退款 (the order is not paid)");
    const committed = refundedFen(order.orderId, ["SUCCESS", "PROCESSING"]);
    if (amountFen <= 0n || committed + amountFen > order.amountFen) {
      throw new ApiError("INVALID_REQUEST", `申请退款金额超过订单可退金额 (refund exceeds the refundable ${order.amountFen - committed} fen)`);
    }
    const refund: RefundRecord = { outRefundNo, refundId: `50${digits(30)}`, orderId: order.orderId, amountFen, status: "PROCESSING", createdAt: now(), notifyUrl };
    refunds.set(outRefundNo, refund);
    order.state = "REFUND";
    return refund;
  }

  const nativeSchema = z.object({
    appid: z.string(),
    mchid: z.string(),
    description: z.string().min(1).max(127),
    out_trade_no: z.string().regex(/^[A-Za-z0-9_\-*]{6,32}$/),
    time_expire: z.string().refine((text) => parseRfc3339(text) !== undefined).optional(),
    notify_url: z.string().refine(isNotifyUrl, "notify_url must be an http(s) URL without a query string"),
    amount: z.object({ total: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER), currency: z.literal("CNY").default("CNY") }),
  });
  const closeSchema = z.object({ mchid: z.string() });
  const refundSchema = z.object({
    out_trade_no: z.string().min(1),
    out_refund_no: z.string().regex(/^[A-Za-z0-9_\-|*@]{1,64}$/),
    reason: z.string().max(80).optional(),
    notify_url: z.string().refine(isNotifyUrl, "notify_url must be an http(s) URL without a query string").optional(),
    amount: z.object({ refund: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER), total: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER), currency: z.literal("CNY") }),
  });

  function parseBody<T>(schema: z.ZodType<T>, request: FastifyRequest): T {
    let json: unknown;
    try {
      json = JSON.parse(typeof request.body === "string" ? request.body : "");
    } catch {
      throw new ApiError("PARAM_ERROR", "请求体不是合法的JSON (the body is not JSON)");
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new ApiError("PARAM_ERROR", `参数错误: ${parsed.error.issues.map((issue) => `${issue.path.join(".")} ${issue.message}`).join("; ")}`);
    return parsed.data;
  }

  function knownOrder(orderId: string): Order {
    const order = orders.get(orderId);
    if (!order) throw new ApiError("ORDER_NOT_EXIST", "订单不存在");
    return order;
  }

  async function routes(scope: FastifyInstance): Promise<void> {
    // The merchant's signature covers the body exactly as sent, so keep it as a string.
    scope.addContentTypeParser("application/json", { parseAs: "string" }, (_request, body, done) => done(null, body));

    // preHandler, not onRequest: the signature covers the body, which is parsed by then.
    scope.addHook("preHandler", async (request, reply) => {
      const check = verifyRequest(
        { authorization: request.headers.authorization, method: request.method, pathAndQuery: request.url, body: typeof request.body === "string" ? request.body : "" },
        { mchid: keys.mchid, serial: keys.merchantSerial, publicKey: merchantPublicKey },
        now(),
      );
      if (!check.ok) return refuse(reply, new ApiError("SIGN_ERROR", `签名错误: ${check.reason}`));
    });

    scope.setNotFoundHandler((request, reply) => refuse(reply, new ApiError("NOT_FOUND", `no such API: ${request.method} ${request.url.split("?")[0]}`)));
    scope.setErrorHandler((error, _request, reply) => {
      if (error instanceof ApiError) return refuse(reply, error);
      // Fastify's own 4xx (unsupported media type, body too large) are the caller's fault.
      const status = (error as { statusCode?: number }).statusCode ?? 500;
      return refuse(reply, status < 500 ? new ApiError("PARAM_ERROR", "参数错误 (the request could not be read)") : new ApiError("SYSTEM_ERROR", "系统错误"));
    });

    scope.post("/v3/pay/transactions/native", async (request, reply) => {
      const body = parseBody(nativeSchema, request);
      if (body.appid !== keys.appid || body.mchid !== keys.mchid) throw new ApiError("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配");
      if (body.time_expire && parseRfc3339(body.time_expire)! <= now()) throw new ApiError("PARAM_ERROR", "time_expire 已过期 (time_expire must be in the future)");
      const fingerprint = createHash("sha256").update(JSON.stringify([body.description, body.time_expire, body.notify_url, body.amount])).digest("hex");
      const existing = orders.get(body.out_trade_no);
      if (existing) {
        const state = currentState(existing);
        if (state === "SUCCESS" || state === "REFUND") throw new ApiError("ORDERPAID", "该订单已支付");
        if (state === "CLOSED") throw new ApiError("ORDER_CLOSED", "订单已关闭");
        if (existing.fingerprint !== fingerprint) throw new ApiError("INVALID_REQUEST", "201 商户订单号重复 (out_trade_no already used with other parameters)");
        return respond(reply, 200, { code_url: existing.codeUrl });
      }
      const order: Order = {
        orderId: body.out_trade_no,
        transactionId: `4200${digits(24)}`,
        description: body.description,
        amountFen: BigInt(body.amount.total),
        currency: body.amount.currency,
        notifyUrl: body.notify_url,
        codeUrl: `${baseUrl}/cashier/wechatpay/${encodeURIComponent(body.out_trade_no)}`,
        expiresAt: body.time_expire ? parseRfc3339(body.time_expire)! : now() + 2 * 3600,
        state: "NOTPAY",
        openid: `oUpF8${randomNonce(23)}`,
        fingerprint,
      };
      orders.set(order.orderId, order);
      return respond(reply, 200, { code_url: order.codeUrl });
    });

    scope.get<{ Params: { outTradeNo: string }; Querystring: { mchid?: string } }>("/v3/pay/transactions/out-trade-no/:outTradeNo", async (request, reply) => {
      if (request.query.mchid !== keys.mchid) throw new ApiError("PARAM_ERROR", "mchid 参数错误 (mchid must be this merchant)");
      return respond(reply, 200, transaction(knownOrder(request.params.outTradeNo)));
    });

    scope.post<{ Params: { outTradeNo: string } }>("/v3/pay/transactions/out-trade-no/:outTradeNo/close", async (request, reply) => {
      const body = parseBody(closeSchema, request);
      if (body.mchid !== keys.mchid) throw new ApiError("PARAM_ERROR", "mchid 参数错误 (mchid must be this merchant)");
      const order = knownOrder(request.params.outTradeNo);
      const state = currentState(order);
      if (state === "SUCCESS" || state === "REFUND") throw new ApiError("ORDERPAID", "订单已支付，不能关单");
      order.state = "CLOSED";
      return respond(reply, 204);
    });

    scope.post("/v3/refund/domestic/refunds", async (request, reply) => {
      const body = parseBody(refundSchema, request);
      const existing = refunds.get(body.out_refund_no);
      if (existing) {
        // Idempotent by out_refund_no: the same request gets the same refund, never a second one.
        if (existing.orderId !== body.out_trade_no || existing.amountFen !== BigInt(body.amount.refund)) {
          throw new ApiError("INVALID_REQUEST", "退款单号已存在但请求参数不一致 (out_refund_no already used with other parameters)");
        }
        return respond(reply, 200, refundBody(existing));
      }
      const order = orders.get(body.out_trade_no);
      if (!order) throw new ApiError("RESOURCE_NOT_EXISTS", "订单不存在");
      if (BigInt(body.amount.total) !== order.amountFen) throw new ApiError("PARAM_ERROR", "订单金额不一致 (amount.total is not the order's total)");
      const refund = createRefund(order, body.out_refund_no, BigInt(body.amount.refund), body.notify_url ?? order.notifyUrl);
      // Answer PROCESSING as the gateway does; the final status comes by notification or query.
      const answer = refundBody(refund);
      if (refundSettlement === "auto") settle(refund, "SUCCESS");
      return respond(reply, 200, answer);
    });

    scope.get<{ Params: { outRefundNo: string } }>("/v3/refund/domestic/refunds/:outRefundNo", async (request, reply) => {
      const refund = refunds.get(request.params.outRefundNo);
      if (!refund) throw new ApiError("RESOURCE_NOT_EXISTS", "退款单不存在");
      return respond(reply, 200, refundBody(refund));
    });
  }

  return {
    channel: "wechatpay",
    keys,

    async register(app: FastifyInstance): Promise<void> {
      await app.register(routes, { prefix: "/wechatpay" });
    },

    order(orderId) {
      const order = orders.get(orderId);
      return order && sandboxOrder(order);
    },

    pay(orderId) {
      const order = orders.get(orderId);
      if (!order) throw new Error(`no WeChat Pay order ${orderId}`);
      const state = currentState(order);
      if (state !== "NOTPAY") throw new Error(`WeChat Pay order ${orderId} cannot be paid: it is ${state}`);
      order.state = "SUCCESS";
      order.paidAt = now();
      notify(order.notifyUrl, "TRANSACTION.SUCCESS", "支付成功", "transaction", transaction(order));
      return sandboxOrder(order);
    },

    refundFromConsole(orderId, refundFen) {
      const order = orders.get(orderId);
      if (!order) throw new Error(`no WeChat Pay order ${orderId}`);
      const refund = createRefund(order, `WXCONSOLE${digits(20)}`, refundFen, order.notifyUrl);
      settle(refund, "SUCCESS");
      return sandboxOrder(order);
    },

    settleRefund(outRefundNo, status) {
      const refund = refunds.get(outRefundNo);
      if (!refund) throw new Error(`no WeChat Pay refund ${outRefundNo}`);
      settle(refund, status);
    },

    merchantEnvironment() {
      return {
        WECHATPAY_MCHID: keys.mchid,
        WECHATPAY_APPID: keys.appid,
        WECHATPAY_MERCHANT_SERIAL: keys.merchantSerial,
        WECHATPAY_MERCHANT_PRIVATE_KEY: keys.merchantPrivateKey,
        WECHATPAY_APIV3_KEY: keys.apiV3Key,
        WECHATPAY_PLATFORM_KEYS: JSON.stringify({
          [keys.publicKeyId]: createPublicKey(createPrivateKey(keys.publicKeyPrivateKey)).export({ type: "spki", format: "pem" }).toString(),
          [keys.certificateSerial]: keys.certificate,
        }),
        WECHATPAY_API_URL: `${baseUrl}/wechatpay`,
      };
    },
  };
}

function isNotifyUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "https:" || url.protocol === "http:") && !url.search;
  } catch {
    return false;
  }
}

// A minimal DER encoder: just enough for a self-signed X.509 v1 platform certificate, so the
// sandbox exercises the certificate mode without an openssl binary.
function der(tag: number, content: Buffer): Buffer {
  const length = content.length;
  const header = length < 0x80 ? [tag, length] : length < 0x100 ? [tag, 0x81, length] : [tag, 0x82, length >> 8, length & 0xff];
  return Buffer.concat([Buffer.from(header), content]);
}
const sequence = (...items: Buffer[]) => der(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => der(0x31, Buffer.concat(items));
const oid = (bytes: number[]) => der(0x06, Buffer.from(bytes));
const utf8 = (text: string) => der(0x0c, Buffer.from(text, "utf8"));
const utcTime = (unixSeconds: number) => der(0x17, Buffer.from(new Date(unixSeconds * 1000).toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d).*$/, "$1$2$3$4$5$6Z")));
const SHA256_WITH_RSA = sequence(oid([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]), Buffer.from([0x05, 0x00]));
const COMMON_NAME = [0x55, 0x04, 0x03];

function selfSignedCertificate(privateKey: KeyObject, serial: Buffer, now: number): string {
  const name = sequence(set(sequence(oid(COMMON_NAME), utf8("Tenpay.com Sandbox Platform Certificate"))));
  const tbs = sequence(
    der(0x02, serial),
    SHA256_WITH_RSA,
    name,
    sequence(utcTime(now - 86_400), utcTime(now + 5 * 365 * 86_400)),
    name,
    createPublicKey(privateKey).export({ type: "spki", format: "der" }),
  );
  const signature = sign("sha256", tbs, privateKey);
  const certificate = sequence(tbs, SHA256_WITH_RSA, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const base64 = certificate.toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${base64}-----END CERTIFICATE-----\n`;
}
