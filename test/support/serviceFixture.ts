// The real service on loopback, against a real anvil chain and a private redis-server, with both
// paymasters deployed and our signer authorised. Tests talk to it over HTTP like any client.
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";

import type { FastifyServerOptions } from "fastify";
import { type Address, type Hex, numberToHex } from "viem";
import { type PrivateKeyAccount, generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { createSiweMessage } from "viem/siwe";

import { ENTRYPOINT_ADDRESS, type EntryPointVersion } from "../../service/chain/entryPoints.ts";
import { loadConfig } from "../../service/config.ts";
import type { PolicyDocument } from "../../service/risk/policy.ts";
import { type Service, createService } from "../../service/service.ts";
import { simpleAccount } from "./aa.ts";
import { type AnvilChain, type Deployment, deployPaymasters, startAnvil } from "./anvil.ts";
import { type RedisServer, startRedis } from "./redis.ts";

export const SIWE_DOMAIN = "app.fiatgas.test";

/** A JSON-RPC answer: a result, or an error whose data carries the stable code. */
export type RpcAnswer = {
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data: Record<string, unknown> & { code: string } };
};

export type ServiceStack = Awaited<ReturnType<typeof startServiceStack>>;

/** A stream for the service's logger that keeps every line it writes, to assert on. */
export function captureLog(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  return { lines, stream };
}

/** Settings for a service on the local chain and Redis: static ¥25,000.00/ETH, 10% markup, 1 fen fee. */
export function localServiceEnv({ anvil, redis, deployments, signerKey }: { anvil: AnvilChain; redis: RedisServer; deployments: Record<EntryPointVersion, Deployment>; signerKey: Hex }): Record<string, string> {
  return {
    RPC_URL: anvil.url,
    CHAIN_ID: String(anvil.chainId),
    REDIS_URL: redis.url,
    PAYMASTER_V07_ADDRESS: deployments["0.7"].paymaster,
    PAYMASTER_V08_ADDRESS: deployments["0.8"].paymaster,
    SIGNER_PRIVATE_KEY: signerKey,
    PRICE_SOURCE: "static",
    STATIC_PRICE: "25000.00",
    MARKUP_BPS: "1000",
    FIXED_FEE_FEN: "1",
    SESSION_SECRET: randomBytes(32).toString("hex"),
    ADMIN_TOKEN: randomBytes(32).toString("hex"),
    SIWE_DOMAIN,
    SIWE_ACCOUNT_FACTORIES: `${deployments["0.7"].factory},${deployments["0.8"].factory}`,
    LOG_LEVEL: "silent",
  };
}

/** An op as JSON-RPC fields: 500k + 100k + 60k gas at 3 gwei (1 gwei tip); the paymaster's 30k comes from the config. */
export function rpcUserOperationFields(sender: Address, factory?: Address, factoryData?: string) {
  return {
    sender,
    nonce: "0x0",
    ...(factory ? { factory, factoryData } : {}),
    callData: "0x",
    callGasLimit: numberToHex(100_000),
    verificationGasLimit: numberToHex(500_000),
    preVerificationGas: numberToHex(60_000),
    maxFeePerGas: numberToHex(3_000_000_000),
    maxPriorityFeePerGas: numberToHex(1_000_000_000),
  };
}

/**
 * The policy every stack starts with: the defaults, but no fee cap against the base fee. Tests sign
 * ops with fixed fees (3 gwei) so their charges can be computed by hand, while anvil's base fee
 * decays with every near-empty block; tests of the fee cap set it through the admin API.
 */
export const FIXTURE_POLICY: PolicyDocument = { perOperation: { maxFeeToBaseFeeBps: null } };

/** Starts chain, Redis and the service; `env` overrides any setting, `logger` replaces the silent log. */
export async function startServiceStack(
  env: Record<string, string> = {},
  { logger = false, policy = FIXTURE_POLICY }: { logger?: FastifyServerOptions["logger"]; policy?: PolicyDocument | null } = {},
) {
  const anvil: AnvilChain = await startAnvil();
  // Durable, as the service's preflight requires by default (REDIS_REQUIRE_DURABLE).
  const redis: RedisServer = await startRedis({ durable: true });
  const signerKey = generatePrivateKey();
  const adminToken = env.ADMIN_TOKEN ?? randomBytes(32).toString("hex");
  const { deployments } = await deployPaymasters(anvil, { signer: privateKeyToAccount(signerKey) });
  const config = loadConfig({
    ...localServiceEnv({ anvil, redis, deployments, signerKey }),
    ADMIN_TOKEN: adminToken,
    PRICING_POLL_INTERVAL_MS: "100",
    // The tests share the service's event loop (and their CPU-heavy key generation with it): a busy test is not an overloaded service.
    LOAD_SHED_UTILIZATION_PERCENT: "0",
    ...env,
  });
  const service: Service = await createService(config, { logger });
  await service.start();
  if (policy) await service.policies.put(policy, { expectedVersion: 0, actor: "test-fixture" });
  const address = await service.app.listen({ host: "127.0.0.1", port: env.PORT ? config.PORT : 0 });

  /** POSTs JSON and returns the parsed answer, typed as the caller expects it, with its status. */
  async function post<Body = RpcAnswer>(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Body }> {
    const response = await fetch(`${address}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
    return { status: response.status, body: (response.status === 204 ? undefined : await response.json()) as Body };
  }

  return {
    anvil,
    redis,
    service,
    deployments,
    config,
    url: address,
    rpcUrl: `${address}/rpc`,
    /** The stack's ADMIN_TOKEN, for `Authorization: Bearer` on /admin routes. */
    adminToken,
    post,
    /** A fresh SimpleAccount for `version` (not deployed yet) and its owner. */
    async newAccount(version: EntryPointVersion, owner: PrivateKeyAccount = privateKeyToAccount(generatePrivateKey())) {
      const account = await simpleAccount(anvil.publicClient, deployments[version].factory, owner.address);
      return { owner, ...account };
    },
    /** Signs in as the owner of a SimpleAccount through the real HTTP routes; returns the session token. */
    async signIn({ owner, sender, factory, factoryData }: { owner: PrivateKeyAccount; sender: Address; factory?: Address; factoryData?: Hex }): Promise<string> {
      const { nonce } = (await (await fetch(`${address}/v1/auth/nonce`)).json()) as { nonce: string };
      const message = createSiweMessage({ address: sender, chainId: anvil.chainId, domain: SIWE_DOMAIN, nonce, uri: `https://${SIWE_DOMAIN}/login`, version: "1", issuedAt: new Date() });
      const signature = await owner.signMessage({ message });
      const deployed = !!(await anvil.publicClient.getCode({ address: sender }));
      const { status, body } = await post<{ token: string }>("/v1/auth/sign-in", { message, signature, owner: owner.address, ...(deployed ? {} : { factory, factoryData }) });
      if (status !== 200) throw new Error(`sign-in failed: ${status} ${JSON.stringify(body)}`);
      return body.token;
    },
    entryPoint: (version: EntryPointVersion) => ENTRYPOINT_ADDRESS[version],
    deployment: (version: EntryPointVersion): Deployment => deployments[version],
    async stop() {
      await service.stop();
      await redis.stop();
      await anvil.stop();
    },
  };
}
