// The contract between the sandbox server (cashier, notification delivery) and each gateway's
// simulator (its API, its keys, its notifications).
import type { FastifyInstance } from "fastify";

import type { Channel } from "../../service/gateways/gateway.ts";

/** One notification the gateway owes the merchant, delivered until acknowledged or the schedule ends. */
export type OutgoingNotification = {
  channel: Channel;
  /** For logs and tests: Alipay `notify_id`, WeChat envelope `id`. Stable across retries. */
  id: string;
  /** The merchant's notify URL, given when the order was created. */
  url: string;
  /** Builds one delivery attempt; WeChat signs each attempt afresh (timestamp, nonce). */
  build(): { headers: Record<string, string>; body: string };
  /** A deliberately mis-signed copy (WeChat `WECHATPAY/SIGNTEST/…`), if the gateway sends probes. */
  buildProbe?(): { headers: Record<string, string>; body: string };
  /** Whether the merchant's answer acknowledges it: Alipay a bare `success`, WeChat 200 or 204. */
  acknowledged(status: number, body: string): boolean;
};

/** Sends notifications on the gateway's real retry schedule (its clock may be sped up). */
export interface NotificationDelivery {
  send(notification: OutgoingNotification): void;
}

/** A sandbox order as the cashier page shows it. */
export type SandboxOrder = {
  channel: Channel;
  orderId: string;
  amountFen: bigint;
  currency: string;
  subject: string;
  /** The payload of the QR code: Alipay `qr_code`, WeChat `code_url`. */
  qrContent: string;
  state: "pending" | "paid" | "closed" | "refunded";
  refundedFen: bigint;
  expiresAt: number;
};

/** One gateway's side of the sandbox. */
export interface GatewaySimulator {
  readonly channel: Channel;
  /** Registers the gateway's API routes (precreate/native, query, close, refund, refund query). */
  register(app: FastifyInstance): Promise<void>;
  order(orderId: string): SandboxOrder | undefined;
  /** The cashier's "Pay" button: the order becomes paid and its notification goes out. */
  pay(orderId: string): SandboxOrder;
  /** A refund started at the gateway (merchant console, dispute), not through the refund API. */
  refundFromConsole(orderId: string, refundFen: bigint): SandboxOrder;
  /** The service's settings for this gateway (ids, keys, URLs) as environment variables. */
  merchantEnvironment(): Record<string, string>;
}
