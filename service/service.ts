// Builds the whole service from its configuration: connections, domain modules and the app.
// start() runs the preflight and warms the caches; stop() closes everything in reverse.
import type { FastifyInstance, FastifyPluginAsync, FastifyServerOptions } from "fastify";
import type { Redis } from "ioredis";
import { type PublicClient, createPublicClient, http } from "viem";

import { accountRoutes } from "./accounts/routes.ts";
import { createAccountFreezes } from "./admin/freezes.ts";
import { adminRoutes } from "./admin/routes.ts";
import { REDACTED_PATHS, buildApp } from "./app.ts";
import { consoleRoutes } from "./console/routes.ts";
import { ENTRYPOINT_ADDRESS, type EntryPointVersion } from "./chain/entryPoints.ts";
import { type ServiceConfig, configuredPaymasters } from "./config.ts";
import { createGateways } from "./gateways/index.ts";
import { createLedger } from "./ledger/ledger.ts";
import { createMetrics } from "./observability/metrics.ts";
import { createSettlementMetrics } from "./observability/settlement.ts";
import { PreflightError, preflight } from "./preflight.ts";
import { createPricing } from "./pricing/index.ts";
import { createReconciliation } from "./reconciliation/reconciliation.ts";
import { pricingRoutes } from "./pricing/routes.ts";
import { createKeys, createRedis } from "./redis.ts";
import { createPolicyStore } from "./risk/policyStore.ts";
import { rpcRoutes } from "./rpc/routes.ts";
import { sessionRoutes } from "./sessions/routes.ts";
import { createDepositGuard } from "./settlement/deposit.ts";
import { createSettlement } from "./settlement/settlement.ts";
import { createSessions } from "./sessions/sessions.ts";
import { createSponsorshipSigner } from "./sponsorship/signer.ts";
import { createSponsorship } from "./sponsorship/sponsorship.ts";
import { createOrderBook } from "./topups/orders.ts";
import { startTopUpRecovery } from "./topups/recovery.ts";
import { topUpRoutes } from "./topups/routes.ts";
import { createTopUps } from "./topups/topups.ts";
import { webhookRoutes } from "./topups/webhooks.ts";

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
  const ledger = createLedger({ redis, keys, maxLiveReservations: config.MAX_LIVE_RESERVATIONS_PER_SENDER, nonceCheckSeconds: config.SETTLEMENT_NONCE_CHECK_SECONDS });
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
  // Settlement: the deposit guard on every instance; the worker on its own Redis connection, so its
  // batches never queue ahead of the request path's commands (see service/settlement/README.md).
  const appLogger = { info: (fields: object, message: string) => app.log.info(fields, message), warn: (fields: object, message: string) => app.log.warn(fields, message) };
  const depositGuard = createDepositGuard({
    publicClient,
    inFlightWei: (version) => ledger.inFlightWei(version),
    paymasters,
    floorWei: () => policies.current().policy.global.depositFloorWei,
    pollMs: config.SETTLEMENT_POLL_MS,
    maxAgeSeconds: config.DEPOSIT_MAX_AGE_SECONDS,
    logger: appLogger,
  });
  // Auto-pipelined: a batch's commands leave in a few writes instead of one each.
  const settlementRedis: Redis = createRedis(config.REDIS_URL, { connectionName: "fiatgas-settlement" }).duplicate({ enableAutoPipelining: true });
  settlementRedis.on("error", (error: Error) => app.log.warn({ err: { name: error.name, message: error.message } }, "settlement redis connection error"));
  const settlementMetrics = createSettlementMetrics(metrics.registry, {
    versions: Object.keys(paymasters) as EntryPointVersion[],
    progress: () => settlement.progress(),
    anomalyCounts: () => settlement.anomalies.counts(),
    totals: () => ledger.totals(),
    deposit: (version) => depositGuard.figures(version),
    headBlock: () => depositGuard.headBlock(),
  });
  const settlement = createSettlement({
    redis: settlementRedis,
    ledger: createLedger({ redis: settlementRedis, keys, maxLiveReservations: config.MAX_LIVE_RESERVATIONS_PER_SENDER, nonceCheckSeconds: config.SETTLEMENT_NONCE_CHECK_SECONDS }),
    publicClient,
    prefix: config.REDIS_KEY_PREFIX,
    paymasters,
    config,
    logger: appLogger,
    onEvent: (outcome, _event, settled) => {
      settlementMetrics.events.inc({ outcome });
      if (outcome === "settled" && settled) settlementMetrics.chargedFen.inc(Number(settled.chargedFen));
    },
    onRelease: (reason) => settlementMetrics.releases.inc({ reason }),
  });
  const sponsorship = createSponsorship({
    chainId: config.CHAIN_ID,
    paymasters,
    signer,
    ledger,
    pricing,
    sessions,
    deposits: depositGuard,
    policy: () => policies.current().policy,
    paymasterVerificationGasLimit: BigInt(config.PAYMASTER_VERIFICATION_GAS_LIMIT),
    sponsor: { name: config.SPONSOR_NAME, icon: config.SPONSOR_ICON },
    now: () => Math.floor(Date.now() / 1000),
  });

  const now = () => Math.floor(Date.now() / 1000);
  const topUpsLogger = {
    info: (fields: Record<string, unknown>, message: string) => app.log.info(fields, message),
    warn: (fields: Record<string, unknown>, message: string) => app.log.warn(fields, message),
    error: (fields: Record<string, unknown>, message: string) => app.log.error(fields, message),
  };
  const gateways = createGateways(config);
  const orders = createOrderBook({ redis, keys });
  const topUps = createTopUps({
    orders,
    ledger,
    gateways,
    currency: config.FIAT_CURRENCY,
    minFen: BigInt(config.TOPUP_MIN_FEN),
    maxFen: BigInt(config.TOPUP_MAX_FEN),
    expirySeconds: config.TOPUP_EXPIRY_SECONDS,
    subject: config.TOPUP_SUBJECT,
    logger: topUpsLogger,
    now,
  });
  // Reads only, with bounded concurrency, so it shares the request path's connection.
  const reconciliation = createReconciliation({
    redis,
    keys,
    prefix: config.REDIS_KEY_PREFIX,
    ledger,
    orders,
    gateways,
    publicClient,
    paymasters,
    logBlockRange: config.SETTLEMENT_LOG_BLOCK_RANGE,
    currency: config.FIAT_CURRENCY,
    logger: appLogger,
  });
  let stopRecovery: (() => Promise<void>) | undefined;

  const route = <Options>(plugin: FastifyPluginAsync<Options & object>, options: Options) => ({ plugin: plugin as FastifyPluginAsync<never>, options });
  const app: FastifyInstance = await buildApp({
    logger: loggerOptions,
    redis,
    rateLimitPerMinute: config.RATE_LIMIT_PER_MINUTE,
    maxEventLoopUtilization: config.LOAD_SHED_UTILIZATION_PERCENT / 100,
    keyPrefix: config.REDIS_KEY_PREFIX,
    metrics,
    readiness: [
      { name: "redis", check: async () => (await redis.ping()) === "PONG" },
      { name: "fees", check: () => pricing.ready().fees },
      { name: "price", check: () => pricing.ready().price },
      // The paymaster's deposit is fresh and, less the wei in flight, above the policy's floor.
      { name: "paymasterDeposit", check: () => depositGuard.ready() },
    ],
    routes: [
      route(rpcRoutes, { sponsorship, maxBatch: config.RPC_MAX_BATCH, onCall: (method: string, outcome: string) => metrics.rpcCalls.inc({ method, outcome }) }),
      route(sessionRoutes, { sessions }),
      route(topUpRoutes, { topUps, sessions }),
      route(webhookRoutes, { topUps, gateways, now }),
      route(accountRoutes, { ledger, sessions, currency: config.FIAT_CURRENCY }),
      route(pricingRoutes, {
        pricing,
        paymasterVerificationGasLimit: BigInt(config.PAYMASTER_VERIFICATION_GAS_LIMIT),
        priceMaxAgeSeconds: config.PRICE_MAX_AGE_SECONDS,
        supportedEntryPoints: (Object.keys(paymasters) as EntryPointVersion[]).map((version) => ENTRYPOINT_ADDRESS[version]),
      }),
      route(adminRoutes, {
        policies,
        ledger,
        freezes,
        orders,
        adminTokenDigest: config.ADMIN_TOKEN,
        currency: config.FIAT_CURRENCY,
        reconciliation,
        stats: { registry: metrics.registry, versions: Object.keys(paymasters) as EntryPointVersion[], deposit: (version: EntryPointVersion) => depositGuard.figures(version) },
      }),
      route(consoleRoutes, {}),
    ],
  });
  // Without a listener ioredis prints every reconnect failure, stack and all, to stderr; /readyz reports the outage.
  redis.on("error", (error: Error) => app.log.warn({ err: { name: error.name, message: error.message } }, "redis connection error"));
  app.addHook("onClose", async () => {
    await stopRecovery?.();
    await settlement.stop();
    depositGuard.stop();
    // Never connected (a failed start): nothing to quit.
    if (settlementRedis.status === "wait") settlementRedis.disconnect();
    else await settlementRedis.quit().catch(() => settlementRedis.disconnect());
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
    /** The paymaster deposit's figures against the wei in flight, and the in-flight cap. */
    depositGuard,
    /** The settlement worker (running when SETTLEMENT_ENABLED); its steps can be driven one at a time. */
    settlement,
    orders,
    topUps,
    gateways,
    /** Reconciliation reports (GET /admin/reconciliation). */
    reconciliation,
    /** Connects, checks the deployment, and fills the pricing caches before traffic. */
    async start() {
      // Failures become PreflightErrors, which main.ts reports as a start-up problem (exit 2, no stack).
      await redis.connect().catch((error: unknown) => {
        throw new PreflightError([`Redis at REDIS_URL does not answer: ${firstLine(error)}`]);
      });
      await preflight({ publicClient, redis, chainId: config.CHAIN_ID, paymasters, signer: signer.address, requireDurableRedis: config.REDIS_REQUIRE_DURABLE });
      await sessions.preflight().catch((error: unknown) => {
        throw new PreflightError([firstLine(error)]);
      });
      // A stored policy that does not validate stops the start: running on the defaults would lift every limit.
      await policies.start().catch((error: unknown) => {
        throw new PreflightError([`risk policy: ${firstLine(error)}`]);
      });
      await pricing.start();
      await depositGuard.start();
      if (config.SETTLEMENT_ENABLED) await settlement.start();
      else await settlement.prepare();
      stopRecovery = startTopUpRecovery({
        topUps,
        redis,
        leaseKey: keys.topUpRecoveryLease(),
        intervalSeconds: config.TOPUP_RECOVERY_INTERVAL_SECONDS,
        olderThanSeconds: config.TOPUP_RECOVERY_AFTER_SECONDS,
        logger: topUpsLogger,
      });
    },
    /** Stops accepting requests, lets in-flight ones finish, then closes connections. */
    stop: () => app.close(),
  };
}

/** The first line of an error's message: viem puts the RPC URL, which may carry an API key, in later lines. */
function firstLine(error: unknown): string {
  return error instanceof Error ? error.message.split("\n")[0] : String(error);
}
