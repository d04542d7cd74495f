import type { FastifyInstance } from "fastify";

import type { Metrics } from "./metrics.ts";

/** A dependency readiness depends on: its check resolves to true when it can serve. */
export type ReadinessCheck = { name: string; check: () => Promise<boolean> | boolean };

/** `GET /healthz` (the process is up), `GET /readyz` (every dependency answers) and `GET /metrics`. */
export async function healthRoutes(app: FastifyInstance, { checks, metrics }: { checks: ReadinessCheck[]; metrics: Metrics }) {
  app.get("/healthz", { schema: { hide: true } }, async () => ({ status: "ok" }));

  app.get("/readyz", { schema: { hide: true } }, async (_request, reply) => {
    const results = await Promise.all(
      checks.map(async ({ name, check }) => {
        try {
          return [name, await check()] as const;
        } catch {
          return [name, false] as const;
        }
      }),
    );
    const ready = results.every(([, ok]) => ok);
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not ready", checks: Object.fromEntries(results) });
  });

  app.get("/metrics", { schema: { hide: true } }, async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}
