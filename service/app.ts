// Builds the fastify app from ready-made parts; nothing here opens connections or listens
// (see service.ts and main.ts), so tests drive the same app with `app.inject`.
import rateLimit from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import underPressure from "@fastify/under-pressure";
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyServerOptions } from "fastify";
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import type { Redis } from "ioredis";

import { ServiceError, toHttpError } from "./errors.ts";
import { sendHttpError } from "./httpErrors.ts";
import { type ReadinessCheck, healthRoutes } from "./observability/health.ts";
import type { Metrics } from "./observability/metrics.ts";

/** Log paths that may carry secrets; pino replaces their values. */
export const REDACTED_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "req.headers[\"wechatpay-signature\"]",
  "*.session",
  "*.token",
  "*.privateKey",
  "*.secret",
];

export type AppOptions = {
  logger: FastifyServerOptions["logger"];
  /** Shared by instances for rate limiting; omitted, each instance counts alone. */
  redis?: Redis;
  rateLimitPerMinute: number;
  /** Shed load once a second's event-loop utilisation exceeds this fraction; 0 turns the check off. */
  maxEventLoopUtilization?: number;
  /** Namespace of the rate limiter's Redis keys (REDIS_KEY_PREFIX). */
  keyPrefix: string;
  metrics: Metrics;
  readiness: ReadinessCheck[];
  /** Domain route plugins, registered in order after the shared infrastructure. */
  routes: { plugin: FastifyPluginAsync<never>; options: unknown }[];
};

/** The service's HTTP app: shared infrastructure, then the domain routes. */
export async function buildApp({ logger, redis, rateLimitPerMinute, maxEventLoopUtilization = 0.98, keyPrefix, metrics, readiness, routes }: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger, bodyLimit: 1024 * 1024, trustProxy: false, return503OnClosing: true });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  await app.register(swagger, {
    openapi: { info: { title: "FiatGas service", version: "0.1.0", description: "REST routes. ERC-7677 JSON-RPC is served at POST /rpc." } },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });

  // Shed load before it queues: 503 with Retry-After while the event loop is saturated (delay or utilisation).
  await app.register(underPressure, {
    maxEventLoopDelay: 1_000,
    maxHeapUsedBytes: 0,
    maxRssBytes: 0,
    maxEventLoopUtilization,
    // Per sample interval: the default, "cumulative", averages since boot and so never trips on a long-running process.
    eventLoopUtilizationMode: "interval",
    retryAfter: 5,
    pressureHandler: (_request, reply, type, value) => {
      const { status, body } = toHttpError(new ServiceError("OVERLOADED", "the service is overloaded; retry shortly", { data: { pressure: type, value } }));
      reply.header("retry-after", "5").code(status).send(body);
    },
  });

  await app.register(rateLimit, {
    max: rateLimitPerMinute,
    timeWindow: 60_000,
    ...(redis ? { redis, nameSpace: `${keyPrefix}:ratelimit:` } : {}),
    // Fail open while Redis is down: routes that need no Redis (fees, quotes, stub data) keep serving, and /readyz reports the outage.
    skipOnError: true,
    // Gateways' notifications are signed and retried on any failure: a 429 would only delay a payment's credit.
    allowList: (request) => ["/healthz", "/readyz", "/metrics"].includes(request.url.split("?")[0]) || request.url.startsWith("/webhooks/"),
    errorResponseBuilder: (_request, context) => {
      const error = new ServiceError("RATE_LIMITED", `more than ${context.max} requests a minute from this client; retry after ${context.after}`, {
        data: { limit: context.max, retryAfterSeconds: Math.ceil(context.ttl / 1000) },
      });
      return Object.assign(error, { statusCode: 429 });
    },
  });

  app.setErrorHandler(sendHttpError);
  app.setNotFoundHandler((request, reply) => {
    const { status, body } = toHttpError(new ServiceError("NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0]}`));
    return reply.code(status).send(body);
  });

  // Once closing, in-flight requests are answered with `Connection: close`; a kept-alive socket would hold close() open until its timeout.
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onSend", async (_request, reply) => {
    if (closing) reply.header("connection", "close");
  });

  app.addHook("onResponse", async (request, reply) => {
    metrics.httpDuration.observe({ route: request.routeOptions.url ?? "unmatched", status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  await app.register(healthRoutes, { checks: readiness, metrics });
  for (const { plugin, options } of routes) await app.register(plugin, options as never);
  return app;
}
