// Alipay's side of the sandbox: the v1 gateway (precreate, query, close, refund, refund query) with
// its own RSA2 keys, and trade notifications signed by the gateway's Java-SDK rules. Fidelity notes
// are in ../shared/specs/payment-gateways.md §6; time comes only from `now()` so tests control it.
import { createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, randomInt } from "node:crypto";

import type { FastifyInstance, FastifyRequest } from "fastify";

import {
  type AlipayForm,
  AlipayProtocolError,
  bareSpki,
  encodeForm,
  fenToYuan,
  formatBeijingTime,
  loadPrivateKey,
  notificationSignContent,
  parseBeijingTime,
  parseForm,
  rsa2Sign,
  signResponse,
  verifyRequestSignature,
  yuanToFen,
} from "../../service/gateways/alipay/signing.ts";
import type { GatewaySimulator, NotificationDelivery, OutgoingNotification, SandboxOrder } from "./simulator.ts";

/** The simulator's keys, as PKCS#8 PEM, so a restarted sandbox can keep the merchant's settings valid. */
export type AlipaySimulatorKeys = {
  /** The gateway's private key; its public half is the merchant's ALIPAY_PUBLIC_KEY. */
  alipayPrivateKey: string;
  /** The merchant app's private key (ALIPAY_APP_PRIVATE_KEY); requests are verified with its public half. */
  appPrivateKey: string;
};

export type AlipaySimulatorOptions = {
  /** The sandbox's own origin, e.g. http://127.0.0.1:8790. */
  baseUrl: string;
  delivery: NotificationDelivery;
  /** Unix seconds; defaults to the wall clock. */
  now?: () => number;
  keys?: AlipaySimulatorKeys;
  appId?: string;
  sellerId?: string;
};

/** The Alipay simulator: the GatewaySimulator contract plus what tests and a restarting sandbox need. */
export type AlipaySimulator = GatewaySimulator & {
  readonly appId: string;
  readonly sellerId: string;
  /** The keys in use, to persist for the next start. */
  readonly keys: AlipaySimulatorKeys;
  /** The payer scans the QR code: the trade now exists at the gateway, WAIT_BUYER_PAY. */
  scan(orderId: string): SandboxOrder;
};

type Refund = { requestNo: string; amountFen: bigint; at: number };

type Order = {
  orderId: string;
  amountFen: bigint;
  subject: string;
  qrContent: string;
  notifyUrl: string | undefined;
  createdAt: number;
  expiresAt: number;
  /** "open" until paid or closed; "refunded" is a paid trade closed by a full refund. */
  phase: "open" | "paid" | "closed" | "refunded";
  /** Set when the payer scans: from then on the trade exists (query, close and refund see it). */
  trade: { tradeNo: string; scannedAt: number; buyerId: string; buyerLogonId: string } | undefined;
  paidAt: number | undefined;
  closedAt: number | undefined;
  refunds: Map<string, Refund>;
  refundedFen: bigint;
};

type Inner = Record<string, string>;

const DEFAULT_APP_ID = "9021000100000001";
const DEFAULT_SELLER_ID = "2088000100000001";
/** Precreate's default when the merchant sends no time_expire: the QR code lives two hours. */
const DEFAULT_EXPIRY_SECONDS = 2 * 3600;
const MAX_TRADE_FEN = 10_000_000_000n;
const OUT_TRADE_NO = /^[A-Za-z0-9_-]{1,64}$/;

const SUCCESS = { code: "10000", msg: "Success" } as const;

/** A business refusal (code 40004), as the gateway words it. */
function refusal(subCode: string, subMsg: string): Inner {
  return { code: "40004", msg: "Business Failed", sub_code: subCode, sub_msg: subMsg };
}

/** A refusal before any business logic: missing or invalid system parameters, bad signature. */
function invalid(code: "40001" | "40002", subCode: string, subMsg: string): Inner {
  return { code, msg: code === "40001" ? "Missing Required Arguments" : "Invalid Arguments", sub_code: subCode, sub_msg: subMsg };
}

const TRADE_NOT_EXIST = refusal("ACQ.TRADE_NOT_EXIST", "交易不存在");

function digits(count: number): string {
  let text = "";
  for (let i = 0; i < count; i++) text += randomInt(10).toString();
  return text;
}

function pkcs8(key: KeyObject): string {
  return key.export({ format: "pem", type: "pkcs8" }).toString();
}

/** Parses the raw query string and form body into one signed parameter set; a name in both is refused. */
function requestForm(request: FastifyRequest): AlipayForm {
  const url = request.raw.url ?? "";
  const query = parseForm(url.includes("?") ? url.slice(url.indexOf("?") + 1) : "");
  const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  // alipay-sdk puts charset in the URL and biz_content in the body.
  const contentType = request.headers["content-type"];
  const queryCharset = query.params.get("charset");
  const form = parseForm(body, queryCharset && !/charset=/i.test(contentType ?? "") ? `${contentType ?? ""}; charset=${queryCharset}` : contentType);
  const params = new Map(query.params);
  const bytes = new Map(query.bytes);
  for (const [name, value] of form.params) {
    if (params.has(name)) throw new AlipayProtocolError(`parameter "${name}" is in both the query string and the body`);
    params.set(name, value);
    bytes.set(name, form.bytes.get(name)!);
  }
  return { charset: form.charset, params, bytes };
}

/** Creates the Alipay simulator; keys are generated (RSA-2048) unless given. */
export function createAlipaySimulator(options: AlipaySimulatorOptions): AlipaySimulator {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const appId = options.appId ?? DEFAULT_APP_ID;
  const sellerId = options.sellerId ?? DEFAULT_SELLER_ID;
  const generate = () => generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  const alipayPrivateKey = options.keys ? loadPrivateKey(options.keys.alipayPrivateKey, "alipayPrivateKey") : generate();
  const appPrivateKey = options.keys ? loadPrivateKey(options.keys.appPrivateKey, "appPrivateKey") : generate();
  const appPublicKey = createPublicKey(appPrivateKey);
  const keys: AlipaySimulatorKeys = { alipayPrivateKey: pkcs8(alipayPrivateKey), appPrivateKey: pkcs8(appPrivateKey) };

  const orders = new Map<string, Order>();

  /** Closes an unpaid order whose time has passed (the gateway does this on its own). */
  function refresh(order: Order): Order {
    if (order.phase === "open" && now() >= order.expiresAt) {
      order.phase = "closed";
      order.closedAt = order.expiresAt;
    }
    return order;
  }

  function find(orderId: string): Order {
    const order = orders.get(orderId);
    if (!order) throw new Error(`no Alipay sandbox order ${orderId}`);
    return refresh(order);
  }

  /** The order behind a biz_content's out_trade_no or trade_no, but only once the trade exists. */
  function tradeOf(biz: Record<string, unknown>): Order | undefined {
    const byOrder = typeof biz.out_trade_no === "string" ? orders.get(biz.out_trade_no) : undefined;
    const order = byOrder ?? (typeof biz.trade_no === "string" ? [...orders.values()].find((candidate) => candidate.trade?.tradeNo === biz.trade_no) : undefined);
    return order && refresh(order).trade ? order : undefined;
  }

  function snapshot(order: Order): SandboxOrder {
    return {
      channel: "alipay",
      orderId: order.orderId,
      amountFen: order.amountFen,
      currency: "CNY",
      subject: order.subject,
      qrContent: order.qrContent,
      state: order.phase === "open" ? "pending" : order.phase,
      refundedFen: order.refundedFen,
      expiresAt: order.expiresAt,
    };
  }

  function scanned(order: Order): NonNullable<Order["trade"]> {
    order.trade ??= {
      tradeNo: `${formatBeijingTime(now()).slice(0, 10).replaceAll("-", "")}22001${digits(15)}`,
      scannedAt: now(),
      buyerId: `2088${digits(12)}`,
      buyerLogonId: `${digits(3)}****${digits(4)}`,
    };
    return order.trade;
  }

  function tradeStatus(order: Order): string {
    if (order.phase === "open") return "WAIT_BUYER_PAY";
    if (order.phase === "paid") return "TRADE_SUCCESS";
    return "TRADE_CLOSED";
  }

  /** A trade notification for the order's current state; `refund` adds the refund fields. */
  function notify(order: Order, refund?: Refund): void {
    const trade = order.trade;
    if (!order.notifyUrl || !trade || order.paidAt === undefined) return;
    const notifyId = randomBytes(17).toString("hex");
    const amount = fenToYuan(order.amountFen);
    const status = tradeStatus(order);
    const params: Record<string, string> = {
      gmt_create: formatBeijingTime(trade.scannedAt),
      charset: "utf-8",
      seller_email: "sandbox-seller@alipay.example",
      subject: order.subject,
      buyer_id: trade.buyerId,
      invoice_amount: amount,
      notify_id: notifyId,
      fund_bill_list: JSON.stringify([{ amount, fundChannel: "ALIPAYACCOUNT" }]),
      notify_type: "trade_status_sync",
      trade_status: status,
      receipt_amount: amount,
      buyer_pay_amount: amount,
      app_id: appId,
      seller_id: sellerId,
      gmt_payment: formatBeijingTime(order.paidAt),
      notify_time: formatBeijingTime(now()),
      version: "1.0",
      out_trade_no: order.orderId,
      total_amount: amount,
      trade_no: trade.tradeNo,
      auth_app_id: appId,
      buyer_logon_id: trade.buyerLogonId,
      point_amount: "0.00",
      ...(refund ? { refund_fee: fenToYuan(order.refundedFen), gmt_refund: `${formatBeijingTime(refund.at)}.000`, out_biz_no: refund.requestNo } : {}),
      ...(status === "TRADE_CLOSED" && order.closedAt !== undefined ? { gmt_close: formatBeijingTime(order.closedAt) } : {}),
      sign_type: "RSA2",
    };
    // alipay-sdk signs empty values where the Java SDK skips them, so the gateway never sends one.
    for (const [name, value] of Object.entries(params)) if (value === "") throw new Error(`notification parameter ${name} is empty`);
    params.sign = rsa2Sign(notificationSignContent(params), alipayPrivateKey);
    const body = encodeForm(params);
    const notification: OutgoingNotification = {
      channel: "alipay",
      id: notifyId,
      url: order.notifyUrl,
      // Every retry is the same message with the same notify_id.
      build: () => ({ headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" }, body }),
      acknowledged: (status, text) => status === 200 && text === "success",
    };
    options.delivery.send(notification);
  }

  function applyRefund(order: Order, requestNo: string, amountFen: bigint): Refund {
    const refund: Refund = { requestNo, amountFen, at: now() };
    order.refunds.set(requestNo, refund);
    order.refundedFen += amountFen;
    if (order.refundedFen === order.amountFen) {
      order.phase = "refunded";
      order.closedAt = refund.at;
    }
    notify(order, refund);
    return refund;
  }

  /** Why a refund of `amountFen` cannot be made now, or undefined when it can. */
  function refundRefusal(order: Order, amountFen: bigint): Inner | undefined {
    if (order.phase === "open") return refusal("ACQ.TRADE_STATUS_ERROR", "交易状态不合法");
    if (order.phase !== "paid") return refusal("ACQ.TRADE_HAS_CLOSE", "交易已经关闭");
    if (amountFen <= 0n) return refusal("ACQ.INVALID_PARAMETER", "退款金额必须大于0");
    if (order.refundedFen + amountFen > order.amountFen) return refusal("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限");
    return undefined;
  }

  const methods: Record<string, (biz: Record<string, unknown>, params: ReadonlyMap<string, string>) => Inner> = {
    "alipay.trade.precreate"(biz, params) {
      const { out_trade_no: orderId, total_amount: total, subject, time_expire: timeExpire } = biz;
      if (typeof orderId !== "string" || !OUT_TRADE_NO.test(orderId)) return refusal("ACQ.INVALID_PARAMETER", "out_trade_no 不合法");
      if (typeof subject !== "string" || subject.trim() === "") return refusal("ACQ.INVALID_PARAMETER", "subject 不能为空");
      let amountFen: bigint;
      let expiresAt = now() + DEFAULT_EXPIRY_SECONDS;
      try {
        amountFen = yuanToFen(String(total));
        if (timeExpire !== undefined) expiresAt = parseBeijingTime(String(timeExpire));
      } catch {
        return refusal("ACQ.INVALID_PARAMETER", "total_amount 或 time_expire 格式不正确");
      }
      if (amountFen <= 0n || amountFen > MAX_TRADE_FEN) return refusal("ACQ.INVALID_PARAMETER", "total_amount 超出范围");
      if (expiresAt <= now()) return refusal("ACQ.INVALID_PARAMETER", "time_expire 已过期");

      const existing = orders.get(orderId);
      if (existing) {
        refresh(existing);
        if (existing.phase === "paid" || existing.phase === "refunded") return refusal("ACQ.TRADE_HAS_SUCCESS", "交易已被支付");
        if (existing.phase === "closed") return refusal("ACQ.TRADE_HAS_CLOSE", "交易已经关闭");
        if (existing.amountFen !== amountFen || existing.subject !== subject) return refusal("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改");
        return { ...SUCCESS, out_trade_no: orderId, qr_code: existing.qrContent };
      }
      const notifyUrl = params.get("notify_url");
      const order: Order = {
        orderId,
        amountFen,
        subject,
        qrContent: `${baseUrl}/cashier/alipay/${encodeURIComponent(orderId)}`,
        notifyUrl: notifyUrl && /^https?:\/\//.test(notifyUrl) ? notifyUrl : undefined,
        createdAt: now(),
        expiresAt,
        phase: "open",
        trade: undefined,
        paidAt: undefined,
        closedAt: undefined,
        refunds: new Map(),
        refundedFen: 0n,
      };
      orders.set(orderId, order);
      return { ...SUCCESS, out_trade_no: orderId, qr_code: order.qrContent };
    },

    "alipay.trade.query"(biz) {
      const order = tradeOf(biz);
      if (!order?.trade) return TRADE_NOT_EXIST;
      const paid = order.paidAt !== undefined;
      const amount = fenToYuan(order.amountFen);
      return {
        ...SUCCESS,
        buyer_logon_id: order.trade.buyerLogonId,
        buyer_pay_amount: paid ? amount : "0.00",
        buyer_user_id: order.trade.buyerId,
        invoice_amount: paid ? amount : "0.00",
        out_trade_no: order.orderId,
        point_amount: "0.00",
        receipt_amount: paid ? amount : "0.00",
        ...(paid ? { send_pay_date: formatBeijingTime(order.paidAt!) } : {}),
        total_amount: amount,
        trade_no: order.trade.tradeNo,
        trade_status: tradeStatus(order),
      };
    },

    "alipay.trade.close"(biz) {
      const order = typeof biz.out_trade_no === "string" ? orders.get(biz.out_trade_no) : undefined;
      if (!order) return TRADE_NOT_EXIST;
      refresh(order);
      if (order.phase === "paid" || order.phase === "refunded") return refusal("ACQ.TRADE_STATUS_ERROR", "交易状态不合法");
      if (order.phase === "open") {
        order.phase = "closed";
        order.closedAt = now();
      }
      // Never scanned: there is no trade to close, but the QR code is dead from now on.
      if (!order.trade) return TRADE_NOT_EXIST;
      return { ...SUCCESS, out_trade_no: order.orderId, trade_no: order.trade.tradeNo };
    },

    "alipay.trade.refund"(biz) {
      const order = tradeOf(biz);
      if (!order?.trade) return TRADE_NOT_EXIST;
      let amountFen: bigint;
      try {
        amountFen = yuanToFen(String(biz.refund_amount));
      } catch {
        return refusal("ACQ.INVALID_PARAMETER", "refund_amount 格式不正确");
      }
      // Without out_request_no a trade can be refunded once, under its own number.
      const requestNo = typeof biz.out_request_no === "string" && biz.out_request_no !== "" ? biz.out_request_no : order.orderId;
      const answer = (refund: Refund, fundChange: "Y" | "N"): Inner => ({
        ...SUCCESS,
        buyer_logon_id: order.trade!.buyerLogonId,
        buyer_user_id: order.trade!.buyerId,
        fund_change: fundChange,
        gmt_refund_pay: formatBeijingTime(refund.at),
        out_trade_no: order.orderId,
        refund_fee: fenToYuan(order.refundedFen),
        ...(fundChange === "Y" ? { send_back_fee: fenToYuan(refund.amountFen) } : {}),
        trade_no: order.trade!.tradeNo,
      });
      const earlier = order.refunds.get(requestNo);
      if (earlier) {
        if (earlier.amountFen !== amountFen) return refusal("ACQ.INVALID_PARAMETER", "同一退款请求号的退款金额不一致");
        return answer(earlier, "N");
      }
      const refused = refundRefusal(order, amountFen);
      if (refused) return refused;
      return answer(applyRefund(order, requestNo, amountFen), "Y");
    },

    "alipay.trade.fastpay.refund.query"(biz) {
      const order = tradeOf(biz);
      if (!order?.trade) return TRADE_NOT_EXIST;
      if (typeof biz.out_request_no !== "string" || biz.out_request_no === "") return invalid("40001", "isv.missing-out-request-no", "缺少 out_request_no");
      const refund = order.refunds.get(biz.out_request_no);
      // Found nothing: success with no refund fields, which the merchant reads as "no such refund".
      if (!refund) return { ...SUCCESS };
      const wantsTime = Array.isArray(biz.query_options) && biz.query_options.includes("gmt_refund_pay");
      return {
        ...SUCCESS,
        out_request_no: refund.requestNo,
        out_trade_no: order.orderId,
        refund_amount: fenToYuan(refund.amountFen),
        refund_status: "REFUND_SUCCESS",
        total_amount: fenToYuan(order.amountFen),
        trade_no: order.trade.tradeNo,
        ...(wantsTime ? { gmt_refund_pay: formatBeijingTime(refund.at) } : {}),
      };
    },
  };

  /** One gateway call: system checks and the merchant's signature first, then the method. */
  function gateway(request: FastifyRequest): string {
    let form: AlipayForm;
    try {
      form = requestForm(request);
    } catch (error) {
      return signResponse("error", invalid("40002", "isv.invalid-parameter", (error as Error).message), alipayPrivateKey);
    }
    const params = form.params;
    const method = params.get("method");
    if (!method) return signResponse("error", invalid("40001", "isv.missing-method", "缺少方法名参数"), alipayPrivateKey);
    const handler = Object.hasOwn(methods, method) ? methods[method] : undefined;
    const respond = (inner: Inner) => signResponse(handler ? method : "error", inner, alipayPrivateKey);
    if (!handler) return respond(invalid("40002", "isv.invalid-method", "不存在的方法名"));
    if (!params.get("app_id")) return respond(invalid("40001", "isv.missing-app-id", "缺少AppID参数"));
    if (params.get("app_id") !== appId) return respond(invalid("40002", "isv.invalid-app-id", "无效的AppID参数"));
    if (!params.get("sign")) return respond(invalid("40001", "isv.missing-signature", "缺少签名参数"));
    if (params.get("sign_type") !== "RSA2") return respond(invalid("40002", "isv.invalid-signature-type", "无效的签名类型"));
    try {
      verifyRequestSignature(form, appPublicKey);
    } catch {
      return respond(invalid("40002", "isv.invalid-signature", "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配"));
    }
    let biz: unknown;
    try {
      biz = JSON.parse(params.get("biz_content") ?? "");
    } catch {
      return respond(invalid("40002", "isv.invalid-parameter", "biz_content 不是 JSON"));
    }
    if (typeof biz !== "object" || biz === null || Array.isArray(biz)) return respond(invalid("40002", "isv.invalid-parameter", "biz_content 不是 JSON 对象"));
    return respond(handler(biz as Record<string, unknown>, params));
  }

  return {
    channel: "alipay",
    appId,
    sellerId,
    keys,

    async register(app: FastifyInstance): Promise<void> {
      await app.register(async (scope) => {
        // Raw bytes: the signature covers the values as sent, decoded once in their charset.
        const form = "application/x-www-form-urlencoded";
        if (scope.hasContentTypeParser(form)) scope.removeContentTypeParser(form);
        scope.addContentTypeParser(form, { parseAs: "buffer" }, (_request, body, done) => done(null, body));
        scope.post("/alipay/gateway.do", async (request, reply) => reply.type("application/json; charset=utf-8").send(gateway(request)));
      });
    },

    order(orderId: string): SandboxOrder | undefined {
      const order = orders.get(orderId);
      return order && snapshot(refresh(order));
    },

    scan(orderId: string): SandboxOrder {
      const order = find(orderId);
      if (order.phase !== "open") throw new Error(`Alipay sandbox order ${orderId} is ${snapshot(order).state}; its QR code no longer works`);
      scanned(order);
      return snapshot(order);
    },

    pay(orderId: string): SandboxOrder {
      const order = find(orderId);
      if (order.phase !== "open") throw new Error(`Alipay sandbox order ${orderId} is ${snapshot(order).state}; it cannot be paid`);
      scanned(order);
      order.phase = "paid";
      order.paidAt = now();
      notify(order);
      return snapshot(order);
    },

    refundFromConsole(orderId: string, refundFen: bigint): SandboxOrder {
      const order = find(orderId);
      const refused = refundRefusal(order, refundFen);
      if (refused) throw new Error(`Alipay sandbox cannot refund ${refundFen} fen of ${orderId}: ${refused.sub_code} ${refused.sub_msg}`);
      // A console refund has a gateway-made request number, which comes back as out_biz_no.
      applyRefund(order, `RF${formatBeijingTime(now()).replace(/\D/g, "")}${digits(6)}`, refundFen);
      return snapshot(order);
    },

    merchantEnvironment(): Record<string, string> {
      return {
        ALIPAY_APP_ID: appId,
        ALIPAY_APP_PRIVATE_KEY: appPrivateKey.export({ format: "der", type: "pkcs8" }).toString("base64"),
        ALIPAY_PUBLIC_KEY: bareSpki(createPublicKey(alipayPrivateKey)),
        ALIPAY_SELLER_ID: sellerId,
        ALIPAY_GATEWAY_URL: `${baseUrl}/alipay/gateway.do`,
      };
    },
  };
}
