// The top-up API: create an order, read it, and refund unused balance back through paid orders.
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";

import { bearerToken } from "../accounts/routes.ts";
import { ServiceError } from "../errors.ts";
import { CHANNELS, ORDER_ID } from "../gateways/gateway.ts";
import { address } from "../rpc/schemas.ts";
import type { SessionsPort } from "../sponsorship/sponsorship.ts";
import { ORDER_STATES, type Order } from "./orders.ts";
import type { TopUps } from "./topups.ts";

const fen = z.string().regex(/^-?\d+$/).describe("integer amount in fen (1/100 of the currency unit)");
const isoTime = z.iso.datetime();
const orderId = z.string().regex(ORDER_ID, "must be an order id as POST /v1/topups returned it");

/** A decimal amount of the currency, e.g. "50.00", read as integer fen without ever passing through a float. */
const amount = z
  .string()
  .regex(/^\d{1,9}(\.\d{1,2})?$/, 'must be a decimal amount of the currency such as "50" or "50.00": at most 2 decimals, no sign or exponent')
  .transform((value) => {
    const [units, cents = ""] = value.split(".");
    return BigInt(units) * 100n + BigInt(cents.padEnd(2, "0"));
  });

/** An order as the API shows it; the admin lookup adds its refunds. */
const topUpView = z.object({
  orderId: z.string(),
  account: z.string(),
  channel: z.enum(CHANNELS),
  state: z.enum(ORDER_STATES).describe("pending → paid → partially_refunded → refunded, or pending → closed"),
  amountFen: fen,
  currency: z.string(),
  refundedFen: fen,
  pendingRefundFen: fen,
  createdAt: isoTime,
  expiresAt: isoTime,
  paidAt: isoTime.optional(),
  qrCode: z.string().optional().describe("Alipay: the QR code's content"),
  codeUrl: z.string().optional().describe("WeChat Pay: the code_url to show as a QR code"),
});

/** The admin account lookup's view of an order: the public view and the order's refunds. */
export const topUpSchema = topUpView.extend({
  refunds: z.array(
    z.object({
      refundId: z.string(),
      fen,
      origin: z.enum(["api", "gateway"]).describe("api: asked for through POST /v1/accounts/:address/refunds; gateway: made at the gateway (merchant console, dispute)"),
      state: z.enum(["pending", "succeeded", "failed"]),
      createdAt: isoTime,
      finishedAt: isoTime.optional(),
      reason: z.string().optional(),
    }),
  ),
});

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

/** An order as the API shows it: money as decimal strings, times in ISO 8601. */
export function topUpToJson(order: Order): z.input<typeof topUpView> {
  return {
    orderId: order.orderId,
    account: order.account,
    channel: order.channel,
    state: order.state,
    amountFen: order.amountFen.toString(),
    currency: order.currency,
    refundedFen: order.refundedFen.toString(),
    pendingRefundFen: order.pendingRefundFen.toString(),
    createdAt: iso(order.createdAt),
    expiresAt: iso(order.expiresAt),
    ...(order.paidAt ? { paidAt: iso(order.paidAt) } : {}),
    ...(order.qrCode ? { qrCode: order.qrCode } : {}),
    ...(order.codeUrl ? { codeUrl: order.codeUrl } : {}),
  };
}

/** `POST /v1/topups`, `GET /v1/topups/:orderId` and `POST /v1/accounts/:address/refunds`. */
export async function topUpRoutes(app: FastifyInstance, { topUps, sessions }: { topUps: TopUps; sessions: SessionsPort }) {
  const routes = app.withTypeProvider<ZodTypeProvider>();

  routes.post(
    "/v1/topups",
    {
      schema: {
        summary: "Create a top-up order at a payment gateway",
        description: "Returns what the payer scans: `qrCode` (Alipay) or `codeUrl` (WeChat Pay). The balance is credited when the gateway reports the payment.",
        tags: ["top-ups"],
        body: z.object({
          account: address,
          amount,
          currency: z.string().regex(/^[A-Z]{3}$/, "must be a three-letter ISO 4217 code such as CNY"),
          channel: z.enum(CHANNELS),
        }),
        response: { 201: topUpView },
      },
    },
    async (request, reply) => {
      const { account, amount: amountFen, currency, channel } = request.body;
      const order = await topUps.create({ account, amountFen, currency, channel });
      return reply.code(201).send(topUpToJson(order));
    },
  );

  routes.get(
    "/v1/topups/:orderId",
    {
      schema: {
        summary: "A top-up order's state",
        tags: ["top-ups"],
        params: z.object({ orderId }),
        response: { 200: topUpView },
      },
    },
    async (request) => {
      const order = await topUps.get(request.params.orderId);
      if (!order) throw new ServiceError("NOT_FOUND", "there is no top-up order with this id", { data: { orderId: request.params.orderId } });
      return topUpToJson(order);
    },
  );

  routes.post(
    "/v1/accounts/:address/refunds",
    {
      schema: {
        summary: "Refund unused balance back through the account's paid top-ups",
        description:
          "Needs the account's session token: `Authorization: Bearer <token>`. Without `amountFen`, refunds all of the available balance. Each part is debited at once; a part the gateway refuses is given back.",
        tags: ["top-ups"],
        params: z.object({ address }),
        body: z.object({ amountFen: z.string().regex(/^[1-9]\d{0,14}$/, "must be a positive integer number of fen").optional() }).default({}),
        response: {
          200: z.object({
            refundedFen: fen.describe("refunds the gateways confirmed"),
            pendingFen: fen.describe("refunds awaiting the gateway's outcome"),
            refunds: z.array(
              z.object({ refundId: z.string(), orderId: z.string(), channel: z.enum(CHANNELS), fen, state: z.enum(["pending", "succeeded", "failed"]) }),
            ),
          }),
        },
      },
    },
    async (request) => {
      const account = request.params.address;
      await sessions.requireSessionFor(bearerToken(request), account);
      const requested = request.body.amountFen === undefined ? undefined : BigInt(request.body.amountFen);
      const { refunds, refundedFen, pendingFen } = await topUps.refundBalance(account, requested);
      return {
        refundedFen: refundedFen.toString(),
        pendingFen: pendingFen.toString(),
        refunds: refunds.map((refund) => ({ ...refund, fen: refund.fen.toString() })),
      };
    },
  );
}
