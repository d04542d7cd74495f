// The operator's API under /admin: the risk policy (read, change against a version, history,
// rollback) and single accounts (freeze, unfreeze, look up). Every call needs ADMIN_TOKEN and is
// logged with its actor, route and outcome; errors go through the app's one handler.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { type ZodTypeProvider, serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import type { Address } from "viem";
import { z } from "zod";

import { accountBalanceSchema } from "../accounts/routes.ts";
import { ServiceError } from "../errors.ts";
import type { Ledger } from "../ledger/ledger.ts";
import type { Reconciliation } from "../reconciliation/reconciliation.ts";
import { reconciliationRoutes } from "../reconciliation/routes.ts";
import { policySchema, policyToJson } from "../risk/policy.ts";
import type { OrderBook } from "../topups/orders.ts";
import { topUpSchema, topUpToJson } from "../topups/routes.ts";
import type { PolicyStore, VersionedPolicy } from "../risk/policyStore.ts";
import { address } from "../rpc/schemas.ts";
import { type StatsRoutesOptions, statsRoutes } from "../console/stats.ts";
import { actorHeader, adminActor, authenticateAdmin } from "./auth.ts";
import type { AccountFreezes, Freeze } from "./freezes.ts";

export type AdminRoutesOptions = {
  policies: PolicyStore;
  ledger: Ledger;
  freezes: AccountFreezes;
  orders: OrderBook;
  /** SHA-256 of ADMIN_TOKEN, as the config holds it. */
  adminTokenDigest: Buffer;
  currency: string;
  /** Serves GET /admin/reconciliation when given. */
  reconciliation?: Reconciliation;
  /** Serves GET /admin/stats (the operator console's live figures) when given. */
  stats?: StatsRoutesOptions;
};

/** A full policy document is at most ~9 MB (100,000 denied senders and targets); only an authenticated call gets this far. */
const POLICY_BODY_LIMIT = 16 * 1024 * 1024;

const AUTH = "Needs `Authorization: Bearer <ADMIN_TOKEN>`; `X-Admin-Actor` may name the operator.";

/** Fen as a decimal string: JSON numbers are doubles, and money is never a float. */
const fen = z.string().regex(/^-?\d+$/).describe("integer amount in fen (1/100 of the currency unit)");
const isoTime = z.iso.datetime();

const headers = z.looseObject({ "x-admin-actor": actorHeader.optional() });
const conditionalHeaders = z.looseObject({
  "x-admin-actor": actorHeader.optional(),
  "if-match": z.string().optional().describe('Required: the ETag of the version the change is made against, from GET /admin/policy, e.g. `"3"`.'),
});

const policyResponse = z.object({
  version: z.number().int().describe("0 until the first change, while DEFAULT_POLICY is in force"),
  etag: z.string().describe("send it back as If-Match to change the policy"),
  policy: z.record(z.string(), z.unknown()).describe("the whole policy document with defaults filled in: the shape PUT /admin/policy takes"),
});

const change = z.object({
  path: z.string().describe("dotted path of the changed field, e.g. perAccount.maxOperationsPerDay"),
  from: z.unknown().optional().describe("the value before; absent if the field is new"),
  to: z.unknown().optional().describe("the value after; absent if the field was removed"),
});

const historyEntry = z.object({
  version: z.number().int(),
  time: isoTime,
  actor: z.string(),
  diff: z.array(change).describe("what changed against the version before (DEFAULT_POLICY for version 1)"),
  rollbackOf: z.number().int().optional().describe("set when this version re-applied an older one"),
});

const reason = z.string().trim().min(1, "must not be empty").max(500, "must be at most 500 characters");
const freezeBody = z.strictObject({ reason });
const freeze = z.object({ reason: z.string(), actor: z.string(), at: isoTime });

const freezeResponse = z.object({
  address: z.string(),
  frozen: freeze.nullable().describe("the freeze in force, or null"),
  changed: z.boolean().describe("false if the account already was in the requested state"),
});

/** How many of an account's newest orders and settled sponsorships the lookup shows. */
const RECENT_ORDERS = 20;
const RECENT_SETTLED = 20;

const accountResponse = accountBalanceSchema.extend({
  frozen: freeze.nullable().describe("null unless an operator froze the account; a frozen account gets no new sponsorship"),
  freezeLog: z.array(freeze.extend({ action: z.enum(["freeze", "unfreeze"]) })).describe("the latest freezes and unfreezes, newest first"),
  reservations: z
    .array(
      z.object({
        entryPointVersion: z.string(),
        nonce: z.string().describe("the UserOperation nonce, decimal"),
        paymaster: z.string(),
        chargeFen: fen,
        validUntil: z.number().int().describe("unix seconds"),
        createdAt: z.number().int().describe("unix seconds"),
        userOpHashes: z.array(z.string()),
      }),
    )
    .describe("live reservations: fen held until the op settles or its signature expires"),
  recentSponsorships: z
    .array(
      z.object({
        userOpHash: z.string(),
        entryPointVersion: z.string(),
        nonce: z.string(),
        chargeFen: fen.describe("the worst-case charge reserved for this op"),
        maxWei: z.string(),
        validUntil: z.number().int(),
        status: z.literal("reserved"),
      }),
    )
    .describe("The ops signed for the live reservations, newest first; landed ones are in settledSponsorships."),
  settledSponsorships: z
    .array(
      z.object({
        userOpHash: z.string(),
        entryPointVersion: z.string(),
        nonce: z.string(),
        success: z.boolean().describe("false: the op reverted, and was charged all the same (the paymaster paid)"),
        actualGasCostWei: z.string(),
        chargedFen: fen.describe("what settlement charged: actualGasCost at the rate locked when the op was signed"),
        heldFen: fen.describe("what the reservation held; the rest went back to the available balance"),
        blockNumber: z.string(),
        transactionHash: z.string(),
        settledAt: isoTime,
      }),
    )
    .describe(`The ${RECENT_SETTLED} most recently settled sponsorships, newest first.`),
  orders: z.array(topUpSchema).describe(`The account's ${RECENT_ORDERS} newest top-up orders, with their refunds.`),
});

const etag = (version: number) => `"${version}"`;
const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString();
const freezeJson = (value: Freeze) => ({ reason: value.reason, actor: value.actor, at: iso(value.at) });

/** The version an If-Match header names: 428 if there is none, 400 unless it is one strong ETag. `*` is refused: a change must name the version it was made against. */
function expectedVersion(header: string | undefined): number {
  if (header === undefined || header.trim() === "") {
    throw new ServiceError("PRECONDITION_REQUIRED", 'If-Match is required: send the ETag of the version you changed, from GET /admin/policy (e.g. If-Match: "3")');
  }
  const match = /^\s*"(\d{1,15})"\s*$/.exec(header);
  if (!match) {
    const message = 'must be one ETag from GET /admin/policy, e.g. "3"';
    throw new ServiceError("INVALID_PARAMS", `If-Match ${message}`, { data: { issues: [{ path: "if-match", message }] } });
  }
  return Number(match[1]);
}

/** The /admin routes; register with `app.register(adminRoutes, options)`. */
export const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (fastify, { policies, ledger, freezes, orders, adminTokenDigest, currency, reconciliation, stats }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // What each call's log line needs: the actor once authenticated, the error code once answered.
  const calls = new WeakMap<FastifyRequest, { actor: string | null; code?: string }>();
  const actorOf = (request: FastifyRequest) => calls.get(request)?.actor ?? "admin";

  // onRequest runs before the body is read: an unauthenticated caller never gets a body parsed or validated.
  app.addHook("onRequest", async (request, reply) => {
    reply.header("cache-control", "no-store");
    const call: { actor: string | null; code?: string } = { actor: null };
    calls.set(request, call);
    try {
      authenticateAdmin(request.headers.authorization, adminTokenDigest);
    } catch (error) {
      reply.header("www-authenticate", 'Bearer realm="fiatgas-admin"');
      throw error;
    }
    call.actor = adminActor(request.headers["x-admin-actor"]);
  });
  app.addHook("onSend", async (request, reply, payload) => {
    const call = calls.get(request);
    if (call && reply.statusCode >= 400 && typeof payload === "string") {
      try {
        call.code = (JSON.parse(payload) as { error?: { code?: string } }).error?.code;
      } catch {
        // Not our JSON error body; the status says enough.
      }
    }
    return payload;
  });
  // One line per call, whatever its outcome; never the token or the body.
  app.addHook("onResponse", async (request, reply) => {
    const call = calls.get(request);
    request.log.info(
      {
        actor: call?.actor ?? null,
        route: `${request.method} ${request.routeOptions.url ?? request.url.split("?")[0]}`,
        path: request.url.split("?")[0],
        status: reply.statusCode,
        outcome: reply.statusCode < 400 ? "ok" : (call?.code ?? "error"),
      },
      "admin call",
    );
  });

  const answerPolicy = (reply: FastifyReply, { version, policy }: VersionedPolicy) => {
    reply.header("etag", etag(version));
    return { version, etag: etag(version), policy: policyToJson(policy) };
  };

  app.get(
    "/admin/policy",
    {
      schema: {
        summary: "The risk policy in force and its version",
        description: `The ETag header (and \`etag\`) is the version; send it as If-Match to change the policy. ${AUTH}`,
        tags: ["admin"],
        headers,
        response: { 200: policyResponse },
      },
    },
    async (_request, reply) => answerPolicy(reply, policies.current()),
  );

  app.put(
    "/admin/policy",
    {
      bodyLimit: POLICY_BODY_LIMIT,
      schema: {
        summary: "Replace the risk policy",
        description:
          "The body is the whole policy document, validated whole: a document with any bad field is refused (400, `data.issues` per field) and the policy in force stays. " +
          "`If-Match` must name the current version (428 without it, 412 with `data.currentVersion` if another change came first). " +
          `Every instance applies the new version within a second. ${AUTH}`,
        tags: ["admin"],
        headers: conditionalHeaders,
        body: policySchema,
        response: { 200: policyResponse },
      },
    },
    async (request, reply) => {
      const expected = expectedVersion(request.headers["if-match"]);
      return answerPolicy(reply, await policies.put(policyToJson(request.body), { expectedVersion: expected, actor: actorOf(request) }));
    },
  );

  app.get(
    "/admin/policy/history",
    {
      schema: {
        summary: "Past versions of the risk policy, newest first",
        description: `Each version with when, who, and what changed against the one before. ${AUTH}`,
        tags: ["admin"],
        headers,
        querystring: z.object({
          limit: z
            .string()
            .regex(/^\d{1,3}$/, "must be a whole number from 1 to 100")
            .transform(Number)
            .pipe(z.number().min(1, "must be at least 1").max(100, "must be at most 100"))
            .default(20)
            .describe("how many versions, 1 to 100 (default 20)"),
        }),
        response: { 200: z.array(historyEntry) },
      },
    },
    async (request) =>
      (await policies.history(request.query.limit)).map(({ version, time, actor, diff, rollbackOf }) => ({
        version,
        time: new Date(time).toISOString(),
        actor,
        diff,
        ...(rollbackOf === undefined ? {} : { rollbackOf }),
      })),
  );

  app.post(
    "/admin/policy/rollback",
    {
      schema: {
        summary: "Re-apply an earlier version of the risk policy",
        description: `Writes version \`toVersion\`'s document (0: the defaults) as a new version; history keeps both. \`If-Match\` as for PUT. ${AUTH}`,
        tags: ["admin"],
        headers: conditionalHeaders,
        body: z.strictObject({ toVersion: z.number().int("must be a whole number").min(0, "must not be negative").describe("the version to re-apply; 0 restores the defaults") }),
        response: { 200: policyResponse },
      },
    },
    async (request, reply) => {
      const expected = expectedVersion(request.headers["if-match"]);
      return answerPolicy(reply, await policies.rollback(request.body.toVersion, { expectedVersion: expected, actor: actorOf(request) }));
    },
  );

  for (const action of ["freeze", "unfreeze"] as const) {
    app.post(
      `/admin/accounts/:address/${action}`,
      {
        schema: {
          summary: action === "freeze" ? "Freeze an account: it gets no new sponsorship" : "Lift an account's freeze",
          description: `${action === "freeze" ? "Reservations already signed stay; new ones are refused with ACCOUNT_FROZEN. Freezing a frozen account replaces the reason." : "Unfreezing an account that is not frozen changes nothing."} ${AUTH}`,
          tags: ["admin"],
          headers,
          params: z.object({ address }),
          body: freezeBody,
          response: { 200: freezeResponse },
        },
      },
      async (request) => {
        const account = request.params.address;
        const actor = actorOf(request);
        const { reason } = request.body;
        if (action === "freeze") {
          const { freeze: current, changed } = await freezes.freeze(account, { reason, actor });
          request.log.info({ actor, account, reason, changed }, "account frozen");
          return { address: account, frozen: freezeJson(current), changed };
        }
        const { changed } = await freezes.unfreeze(account, { reason, actor });
        request.log.info({ actor, account, reason, changed }, "account unfrozen");
        return { address: account, frozen: null, changed };
      },
    );
  }

  app.get(
    "/admin/accounts/:address",
    {
      schema: {
        summary: "An account as the operator sees it",
        description: `Balance, reserved and available fen, live reservations, freeze status, and recent sponsorships and orders. ${AUTH}`,
        tags: ["admin"],
        headers,
        params: z.object({ address }),
        response: { 200: accountResponse },
      },
    },
    async (request) => {
      const account: Address = request.params.address;
      const [balance, reservations, frozen, freezeLog, accountOrders, settled] = await Promise.all([
        accountStore(() => ledger.balance(account)),
        accountStore(() => ledger.reservations(account)),
        freezes.status(account),
        freezes.log(account),
        accountStore(() => orders.ofAccount(account, RECENT_ORDERS)),
        accountStore(() => ledger.settled(account)),
      ]);
      const refunds = await accountStore(() => Promise.all(accountOrders.map((order) => orders.refunds(order))));
      const newestFirst = [...reservations].sort((a, b) => b.createdAt - a.createdAt || (b.nonce > a.nonce ? 1 : b.nonce < a.nonce ? -1 : 0));
      return {
        address: account,
        currency,
        balanceFen: balance.balanceFen.toString(),
        reservedFen: balance.reservedFen.toString(),
        availableFen: balance.availableFen.toString(),
        frozen: frozen === null ? null : freezeJson(frozen),
        freezeLog: freezeLog.map((event) => ({ action: event.action, ...freezeJson(event) })),
        reservations: newestFirst.map((reservation) => ({
          entryPointVersion: reservation.entryPointVersion,
          nonce: reservation.nonce.toString(),
          paymaster: reservation.paymaster,
          chargeFen: reservation.chargeFen.toString(),
          validUntil: reservation.validUntil,
          createdAt: reservation.createdAt,
          userOpHashes: reservation.ops.map((op) => op.userOpHash),
        })),
        recentSponsorships: newestFirst.flatMap((reservation) =>
          [...reservation.ops].reverse().map((op) => ({
            userOpHash: op.userOpHash,
            entryPointVersion: reservation.entryPointVersion,
            nonce: reservation.nonce.toString(),
            chargeFen: op.chargeFen.toString(),
            maxWei: op.maxWei.toString(),
            validUntil: op.validUntil,
            status: "reserved" as const,
          })),
        ),
        settledSponsorships: [...settled]
          .sort((a, b) => b.settledAt - a.settledAt || (b.blockNumber > a.blockNumber ? 1 : b.blockNumber < a.blockNumber ? -1 : 0))
          .slice(0, RECENT_SETTLED)
          .map((op) => ({
            userOpHash: op.userOpHash,
            entryPointVersion: op.entryPointVersion,
            nonce: op.nonce.toString(),
            success: op.success,
            actualGasCostWei: op.actualGasCost.toString(),
            chargedFen: op.chargedFen.toString(),
            heldFen: op.heldFen.toString(),
            blockNumber: op.blockNumber.toString(),
            transactionHash: op.transactionHash,
            settledAt: iso(op.settledAt),
          })),
        orders: accountOrders.map((order, index) => ({
          ...topUpToJson(order),
          refunds: refunds[index].map((refund) => ({
            refundId: refund.refundId,
            fen: refund.fen.toString(),
            origin: refund.origin,
            state: refund.state,
            createdAt: iso(refund.createdAt),
            ...(refund.finishedAt ? { finishedAt: iso(refund.finishedAt) } : {}),
            ...(refund.reason ? { reason: refund.reason } : {}),
          })),
        })),
      };
    },
  );

  // A child of this plugin, after its hooks: it inherits the token check, the audit line and no-store.
  if (reconciliation) await app.register(reconciliationRoutes, { reconciliation });
  if (stats) await app.register(statsRoutes, stats);
};

/** Ledger reads for the lookup: Redis failing is DEPENDENCY_UNAVAILABLE, not an internal error. */
async function accountStore<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ServiceError) throw error;
    throw new ServiceError("DEPENDENCY_UNAVAILABLE", "the account store is unavailable: retry shortly", { cause: error });
  }
}
