// `GET /admin/reconciliation`: registered inside the admin plugin, so it shares its token check,
// its audit log line and its Cache-Control.
import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";

import { actorHeader } from "../admin/auth.ts";
import { MAX_PERIOD_SECONDS, periodSchema } from "./period.ts";
import type { Reconciliation } from "./reconciliation.ts";
import { reconciliationReportSchema } from "./report.ts";

export type ReconciliationRoutesOptions = { reconciliation: Reconciliation };

/** The reconciliation report route; register it inside the admin plugin. */
export const reconciliationRoutes: FastifyPluginAsync<ReconciliationRoutesOptions> = async (fastify, { reconciliation }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.get(
    "/admin/reconciliation",
    {
      schema: {
        summary: "Reconcile a period: gateways, ledger, chain and the paymaster's deposit",
        description:
          "For [from, to) (ISO 8601 or unix seconds, at most " +
          `${MAX_PERIOD_SECONDS / 86_400} days): money paid and refunded at the gateways against the credits and debits in the ledger (orders created in the period), ` +
          "the wei charged against our paymasters' UserOperationEvents, and the EntryPoint deposit's movement against them. " +
          "Every mismatch is listed with its cause; `clean` is true when there is none. It queries the gateways and reads the chain, so it can take a while. " +
          "Needs `Authorization: Bearer <ADMIN_TOKEN>`; `X-Admin-Actor` may name the operator.",
        tags: ["admin"],
        headers: z.looseObject({ "x-admin-actor": actorHeader.optional() }),
        querystring: periodSchema(),
        response: { 200: reconciliationReportSchema },
      },
    },
    async (request) => reconciliation.report(request.query),
  );
};
