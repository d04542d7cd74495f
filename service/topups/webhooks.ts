// The gateways' payment notifications. Each is verified over the raw body bytes exactly as its
// gateway specifies, then applied; the answer the gateway reads as "received" goes out only once
// the effect is stored (Redis AOF with fsync on every write).
import type { FastifyInstance, FastifyReply } from "fastify";

import { type Channel, type GatewayNotification, NotificationRejected, type PaymentGateway } from "../gateways/gateway.ts";
import type { NotificationOutcome, TopUps } from "./topups.ts";

/** Notifications are small: Alipay forms and WeChat envelopes are a few KB. */
const WEBHOOK_BODY_LIMIT = 64 * 1024;

/** How each gateway reads an answer: Alipay a bare `success`; WeChat the HTTP status, with a FAIL body otherwise. */
const ANSWERS: Record<Channel, { ok(reply: FastifyReply): FastifyReply; fail(reply: FastifyReply, status: number, message: string): FastifyReply }> = {
  alipay: {
    ok: (reply) => reply.code(200).type("text/plain").send("success"),
    fail: (reply, status) => reply.code(status).type("text/plain").send("fail"),
  },
  wechatpay: {
    ok: (reply) => reply.code(204).send(),
    fail: (reply, status, message) => reply.code(status).type("application/json").send(JSON.stringify({ code: "FAIL", message })),
  },
};

/** `POST /webhooks/alipay` and `POST /webhooks/wechatpay`, for the gateways configured. */
export async function webhookRoutes(
  app: FastifyInstance,
  { topUps, gateways, now }: { topUps: TopUps; gateways: Partial<Record<Channel, PaymentGateway>>; now: () => number },
) {
  // Verification needs the exact bytes: no JSON or form parser may touch the body first.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: WEBHOOK_BODY_LIMIT }, (_request, body, done) => done(null, body));

  for (const [channel, gateway] of Object.entries(gateways) as [Channel, PaymentGateway][]) {
    const answer = ANSWERS[channel];
    app.post(`/webhooks/${channel}`, { schema: { hide: true } }, async (request, reply) => {
      const rawBody = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      let notification: GatewayNotification;
      try {
        notification = gateway.parseNotification({ headers: request.headers, rawBody }, now());
      } catch (error) {
        if (!(error instanceof NotificationRejected)) throw error;
        // Forged, tampered, stale or a probe: nothing changes; the log says why, never the body.
        request.log.warn({ channel, reason: error.message, probe: error.probe, bytes: rawBody.length }, "notification rejected");
        return answer.fail(reply, 401, "signature verification failed");
      }
      let result: NotificationOutcome;
      try {
        result = await topUps.handleNotification(channel, notification);
      } catch (error) {
        request.log.error({ channel, orderId: notification.orderId, err: error }, "notification not applied; the gateway will retry");
        return answer.fail(reply, 500, "temporarily unable to process; retry");
      }
      request.log.info({ channel, orderId: notification.orderId, kind: notification.kind, ...result }, "notification handled");
      return result.acknowledge ? answer.ok(reply) : answer.fail(reply, result.outcome === "unknownOrder" ? 404 : 500, "not processed; retry");
    });
  }
}
