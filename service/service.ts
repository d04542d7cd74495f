// Builds the whole service from its configuration: connections, domain modules and the app.
// start() runs the preflight and warms the caches; stop() closes everything in reverse.
import type { FastifyInstance, FastifyPluginAsync, FastifyServerOptions } from "fastify";
import type { Redis } from "ioredis";
import { type PublicClient, createPublicClient, http } from "viem";

import { accountRoutes } from "./accounts/routes.ts";
import { createAccountFreezes } from "./admin/freezes.ts";
import { adminRoutes } from "./admin/routes.ts";
import { REDACTED_PATHS, buildApp } from "./app.ts";
import { ENTRYPOINT_ADDRESS, type EntryPointVersion } from "./chain/entryPoints.ts";
import { type ServiceConfig, configuredPaymasters } from "./config.ts";
import { createLedger } from "./ledger/ledger.ts";
import { createMetrics } from "./observability/metrics.ts";
import { PreflightError, preflight } from "./preflight.ts";
import { createPricing } from "./pricing/index.ts";
import { pricingRoutes } from "./pricing/routes.ts";
import { createKeys, createRedis } from "./redis.ts";
import { createPolicyStore } from "./risk/policyStore.ts";
import { rpcRoutes } from "./rpc/routes.ts";
import { sessionRoutes } from "./sessions/routes.ts";
import { createSessions } from "./sessions/sessions.ts";
import { createSponsorshipSigner } from "./sponsorship/signer.ts";
import { createSponsorship } from "./sponsorship/sponsorship.ts";

export type Service = Awaited<ReturnType<typeof createService>>;

/** Everything the service runs on; tests may pass a logger of their own. */
export async function createService(config: Readonly<ServiceConfig>, { logger }: { logger?: FastifyServerOptions["logger"] } = {}) {
  const redis: Redis = createRedis(config.REDIS_URL);
  // The node's URL may carry an API key: viem never logs it, and neither do we.
  const publicClient = createPublicClient({ transport: http(config.RPC_URL, { retryCount: 1, timeout: 5_000 }) }) as PublicClient;
  const keys = createKeys(config.REDIS_KEY_PREFIX);
  const metrics = createMetrics();
  const paymasters = configuredPaymasters(config);
  const signer = createSponsorshipSigner({ privateKey: config.SIGNER_PRIVATE_KEY, chainId: config.CHAIN_ID });
  const ledger = createLedger({ redis, keys, maxLiveReservations: config.MAX_LIVE_RESERVATIONS_PER_SENDER });
  const sessions = createSessions({ config, redis, publicClient, chainId: config.CHAIN_ID, keyPrefix: config.REDIS_KEY_PREFIX });
  // A caller's options (a test's stream or level) never drop the redaction; `false` silences the log.
  const loggerOptions: FastifyServerOptions["logger"] =
    logger === false ? false : { level: config.LOG_LEVEL, ...(typeof logger === "object" ? logger : {}), redact: { paths: REDACTED_PATHS, censor: "[redacted]" } };

  // Pricing logs through the app's logger; it logs only after start(), when the app exists.
  const pricing = createPricing({
    publicClient,
    config,
    logger: { info: (fields, message) => app.log.info(fields, message), warn: (fields, message) => app.log.warn(fields, message) },
  });
  // The operator's risk policy, kept in memory and reloaded on every instance within a second of a change.
  const policies = createPolicyStore({
    redis,
    prefix: config.REDIS_KEY_PREFIX,
    logger: {
      info: (fields, message) => app.log.info(fields, message),
      warn: (fields, message) => app.log.warn(fields, message),
      error: (fields, message) => app.log.error(fields, message),
    },
  });
  const freezes = createAccountFreezes({ redis, keys });
  const sponsorship = createSponsorship({
    chainId: config.CHAIN_ID,
    paymasters,
    signer,
    ledger,
    pricing,
    sessions,
    policy: () => policies.current().policy,
    paymasterVerificationGasLimit: BigInt(config.PAYMASTER_VERIFICATION_GAS_LIMIT),
    sponsor: { name: config.SPONSOR_NAME, icon: config.SPONSOR_ICON },
    now: () => Math.floor(Date.now() / 1000),
  });

  const route = <Options>(plugin: FastifyPluginAsync<Options & object>, options: Options) => ({ plugin: plugin as FastifyPluginAsync<never>, options });
  const app: FastifyInstance = await buildApp({
    logger: loggerOptions,
    redis,
    rateLimitPerMinute: config.RATE_LIMIT_PER_MINUTE,
    keyPrefix: config.REDIS_KEY_PREFIX,
    metrics,
    readiness: [
      { name: "redis", check: async () => (await redis.ping()) === "PONG" },
      { name: "fees", check: () => pricing.ready().fees },
      { name: "price", check: () => pricing.ready().price },
    ],
    routes: [
      route(rpcRoutes, { sponsorship, maxBatch: config.RPC_MAX_BATCH, onCall: (method: string, outcome: string) => metrics.rpcCalls.inc({ method, outcome }) }),
      route(sessionRoutes, { sessions }),
      route(accountRoutes, { ledger, sessions, currency: config.FIAT_CURRENCY }),
      route(pricingRoutes, {
        pricing,
        paymasterVerificationGasLimit: BigInt(config.PAYMASTER_VERIFICATION_GAS_LIMIT),
        priceMaxAgeSeconds: config.PRICE_MAX_AGE_SECONDS,
        supportedEntryPoints: (Object.keys(paymasters) as EntryPointVersion[]).map((version) => ENTRYPOINT_ADDRESS[version]),
      }),
      route(adminRoutes, { policies, ledger, freezes, adminTokenDigest: config.ADMIN_TOKEN, currency: config.FIAT_CURRENCY }),
    ],
  });
  // Without a listener ioredis prints every reconnect failure, stack and all, to stderr; /readyz reports the outage.
  redis.on("error", (error: Error) => app.log.warn({ err: { name: error.name, message: error.message } }, "redis connection error"));
  app.addHook("onClose", async () => {
    pricing.stop();
    await policies.stop();
    await redis.quit().catch(() => redis.disconnect());
  });

  return {
    app,
    config,
    redis,
    publicClient,
    ledger,
    pricing,
    sessions,
    signer,
    /** The risk policy store: `policies.current()` is the policy in force, from memory. */
    policies,
    freezes,
    /** Connects, checks the deployment, and fills the pricing caches before traffic. */
    async start() {
      // Failures become PreflightErrors, which main.ts reports as a start-up problem (exit 2, no stack).
      await redis.connect().catch((error: unknown) => {
        throw new PreflightError([`Redis at REDIS_URL does not answer: ${firstLine(error)}`]);
      });
      await preflight({ publicClient, redis, chainId: config.CHAIN_ID, paymasters, signer: signer.address });
      await sessions.preflight().catch((error: unknown) => {
        throw new PreflightError([firstLine(error)]);
      });
      // A stored policy that does not validate stops the start: running on the defaults would lift every limit.
      await policies.start().catch((error: unknown) => {
        throw new PreflightError([`risk policy: ${firstLine(error)}`]);
      });
      await pricing.start();
    },
    /** Stops accepting requests, lets in-flight ones finish, then closes connections. */
    stop: () => app.close(),
  };
}

/** The first line of an error's message: viem puts the RPC URL, which may carry an API key, in later lines. */
function firstLine(error: unknown): string {
  return error instanceof Error ? error.message.split("\n")[0] : String(error);
}
