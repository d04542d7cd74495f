// WeChat Pay APIv3 notifications (TRANSACTION.SUCCESS, REFUND.*): verified over the raw body,
// decrypted, validated and checked against our merchant identity before any fact leaves here.
import { type KeyObject } from "node:crypto";

import { z } from "zod";

import { type GatewayNotification, NotificationRejected } from "../gateway.ts";
import { type PlatformKeys, RESOURCE_ALGORITHM, decryptResource, readSignatureHeaders, verifySignature } from "./signing.ts";
import { parseRfc3339 } from "./time.ts";

/** The merchant identity and keys a notification is checked against. */
export type NotificationKeys = { mchid: string; appid: string; apiV3Key: KeyObject; platformKeys: PlatformKeys };

const fen = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const rfc3339 = z.string().refine((text) => parseRfc3339(text) !== undefined, "must be an RFC 3339 date-time with an offset");

const envelopeSchema = z.object({
  id: z.string().min(1),
  create_time: z.string(),
  resource_type: z.literal("encrypt-resource"),
  event_type: z.string(),
  summary: z.string().optional(),
  resource: z.object({
    original_type: z.string(),
    algorithm: z.string(),
    ciphertext: z.string().min(1),
    associated_data: z.string().optional(),
    nonce: z.string(),
  }),
});

/** The decrypted `transaction` resource (fields we rely on; others are ignored). */
export const transactionSchema = z.object({
  appid: z.string(),
  mchid: z.string(),
  out_trade_no: z.string(),
  transaction_id: z.string().min(1),
  trade_state: z.string(),
  success_time: rfc3339,
  amount: z.object({ total: fen, currency: z.string().regex(/^[A-Z]{3}$/) }),
});

/** The decrypted `refund` resource (it carries mchid but no appid). */
export const refundResourceSchema = z.object({
  mchid: z.string(),
  out_trade_no: z.string(),
  out_refund_no: z.string().min(1),
  refund_id: z.string().min(1),
  refund_status: z.enum(["SUCCESS", "CLOSED", "ABNORMAL"]),
  amount: z.object({ total: fen, refund: fen }),
});

const EVENTS = {
  "TRANSACTION.SUCCESS": { originalType: "transaction" },
  "REFUND.SUCCESS": { originalType: "refund", refundStatus: "SUCCESS" },
  "REFUND.ABNORMAL": { originalType: "refund", refundStatus: "ABNORMAL" },
  "REFUND.CLOSED": { originalType: "refund", refundStatus: "CLOSED" },
} as const;

type EventType = keyof typeof EVENTS;

const FAILED_REFUND_REASONS = {
  ABNORMAL: "ABNORMAL: the refund could not reach the payer's account; retry it in the merchant platform or refund offline",
  CLOSED: "CLOSED: the refund was closed by the gateway",
} as const;

/** A request header by lower-case name; a repeated header is refused rather than guessed at. */
function headerReader(headers: Record<string, string | string[] | undefined>): (name: string) => string | undefined {
  const lower = new Map(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
  return (name) => {
    const value = lower.get(name);
    if (Array.isArray(value)) throw new NotificationRejected(`header ${name} appears more than once`);
    return value;
  };
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new NotificationRejected(`${what} is not UTF-8 JSON`);
  }
}

function describe(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`).join("; ");
}

/**
 * Verifies and reads one APIv3 notification; `now` is unix seconds. Throws NotificationRejected
 * (with `probe` for SIGNTEST probes) for anything forged, stale, undecryptable, unknown or not ours.
 */
export function parseWechatPayNotification(
  { headers, rawBody }: { headers: Record<string, string | string[] | undefined>; rawBody: Buffer },
  now: number,
  keys: NotificationKeys,
): GatewayNotification {
  const check = verifySignature(readSignatureHeaders(headerReader(headers)), rawBody, keys.platformKeys, now);
  if (!check.ok) throw new NotificationRejected(`WeChat Pay notification refused: ${check.reason}`, { probe: check.probe });

  const envelope = envelopeSchema.safeParse(parseJson(rawBody, "notification body"));
  if (!envelope.success) throw new NotificationRejected(`notification envelope is malformed: ${describe(envelope.error)}`);
  const { event_type: eventType, resource } = envelope.data;
  if (!Object.hasOwn(EVENTS, eventType)) throw new NotificationRejected(`event_type ${JSON.stringify(eventType)} is not one we handle`);
  const event = EVENTS[eventType as EventType];
  if (resource.original_type !== event.originalType) {
    throw new NotificationRejected(`${eventType} carries a ${JSON.stringify(resource.original_type)} resource, not ${event.originalType}`);
  }
  if (resource.algorithm !== RESOURCE_ALGORITHM) throw new NotificationRejected(`resource algorithm ${JSON.stringify(resource.algorithm)} is not ${RESOURCE_ALGORITHM}`);

  let plaintext: Buffer;
  try {
    plaintext = decryptResource(resource, keys.apiV3Key);
  } catch {
    throw new NotificationRejected("resource does not decrypt: wrong APIv3 key, or the ciphertext, nonce or associated_data was altered");
  }
  const content = parseJson(plaintext, "decrypted resource");

  if (eventType === "TRANSACTION.SUCCESS") {
    const parsed = transactionSchema.safeParse(content);
    if (!parsed.success) throw new NotificationRejected(`transaction resource is malformed: ${describe(parsed.error)}`);
    const transaction = parsed.data;
    if (transaction.mchid !== keys.mchid) throw new NotificationRejected(`transaction mchid ${transaction.mchid} is not ours`);
    if (transaction.appid !== keys.appid) throw new NotificationRejected(`transaction appid ${transaction.appid} is not ours`);
    if (transaction.trade_state !== "SUCCESS") throw new NotificationRejected(`TRANSACTION.SUCCESS with trade_state ${transaction.trade_state}`);
    return {
      kind: "payment",
      orderId: transaction.out_trade_no,
      tradeNo: transaction.transaction_id,
      amountFen: BigInt(transaction.amount.total),
      currency: transaction.amount.currency,
      paidAt: parseRfc3339(transaction.success_time)!,
      refundedFen: 0n,
    };
  }

  const parsed = refundResourceSchema.safeParse(content);
  if (!parsed.success) throw new NotificationRejected(`refund resource is malformed: ${describe(parsed.error)}`);
  const refund = parsed.data;
  if (refund.mchid !== keys.mchid) throw new NotificationRejected(`refund mchid ${refund.mchid} is not ours`);
  const expected = (event as { refundStatus: string }).refundStatus;
  if (refund.refund_status !== expected) throw new NotificationRejected(`${eventType} with refund_status ${refund.refund_status}`);
  const base = {
    kind: "refund" as const,
    orderId: refund.out_trade_no,
    refundId: refund.out_refund_no,
    refundFen: BigInt(refund.amount.refund),
    totalFen: BigInt(refund.amount.total),
  };
  return refund.refund_status === "SUCCESS" ? { ...base, status: "succeeded" } : { ...base, status: "failed", reason: FAILED_REFUND_REASONS[refund.refund_status] };
}
