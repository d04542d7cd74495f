// The start-up checks against a real anvil chain with both paymasters deployed and a real redis-server.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import type { Redis } from "ioredis";
import { type Address, type PublicClient, createPublicClient, http } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { type AnvilChain, type Deployment, deployPaymasters, startAnvil } from "../test/support/anvil.ts";
import { type RedisServer, freePort, startRedis } from "../test/support/redis.ts";
import { ENTRYPOINT_ADDRESS, type EntryPointVersion } from "./chain/entryPoints.ts";
import { PreflightError, type PreflightParameters, preflight } from "./preflight.ts";
import { loadConfig } from "./config.ts";
import { createRedis } from "./redis.ts";
import { createService } from "./service.ts";

let anvil: AnvilChain;
let redisServer: RedisServer;
let redis: Redis;
let deployments: Record<EntryPointVersion, Deployment>;
const SIGNER_KEY = generatePrivateKey();
const signer = privateKeyToAccount(SIGNER_KEY);

before(async () => {
  anvil = await startAnvil();
  redisServer = await startRedis({ durable: true });
  ({ deployments } = await deployPaymasters(anvil, { signer }));
  redis = createRedis(redisServer.url);
  // While the server is down ioredis reports each reconnect attempt; the checks report the outage.
  redis.on("error", () => {});
  await redis.connect();
});
after(async () => {
  redis?.disconnect();
  await redisServer?.stop();
  await anvil?.stop();
});

/** The checks as the service runs them, with `overrides`. */
function parameters(overrides: Partial<PreflightParameters> = {}): PreflightParameters {
  return {
    publicClient: anvil.publicClient as unknown as PublicClient,
    redis,
    chainId: anvil.chainId,
    paymasters: { "0.7": deployments["0.7"].paymaster, "0.8": deployments["0.8"].paymaster },
    signer: signer.address,
    requireDurableRedis: true,
    ...overrides,
  };
}

/** The problems preflight reports for `overrides`. */
async function problems(overrides: Partial<PreflightParameters>): Promise<string[]> {
  const error = await preflight(parameters(overrides)).then(
    () => assert.fail("expected preflight to fail"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof PreflightError, String(error));
  assert.equal(error.message, `preflight failed:\n${error.problems.map((problem) => `  - ${problem}`).join("\n")}`);
  return error.problems;
}

const NO_CODE: Address = "0x000000000000000000000000000000000000dEaD";

describe("preflight", () => {
  it("passes with deployed paymasters on the right chain, an authorised signer and Redis up", async () => {
    await preflight(parameters());
    await preflight(parameters({ paymasters: { "0.8": deployments["0.8"].paymaster } }));
  });

  it("refuses a Redis that could lose an acknowledged credit, unless told it is durable another way", async () => {
    const volatile = await startRedis({ durable: false });
    const client = createRedis(volatile.url);
    await client.connect();
    try {
      assert.deepEqual(await problems({ redis: client }), [
        "Redis runs with appendonly no and appendfsync always: a credit acknowledged to a gateway could be lost in a crash. Run it with --appendonly yes --appendfsync always (or set REDIS_REQUIRE_DURABLE=false if your Redis is durable another way)",
      ]);
      await preflight(parameters({ redis: client, requireDurableRedis: false }));
    } finally {
      client.disconnect();
      await volatile.stop();
    }
  });

  it("names a paymaster address with no contract", async () => {
    assert.deepEqual(await problems({ paymasters: { "0.7": NO_CODE, "0.8": deployments["0.8"].paymaster } }), [
      `no contract at PAYMASTER_V07_ADDRESS ${NO_CODE}`,
    ]);
  });

  it("names a signer the paymasters do not authorise, with the command that fixes it", async () => {
    const stranger = privateKeyToAccount(generatePrivateKey()).address;
    assert.deepEqual(
      await problems({ signer: stranger }),
      (["0.7", "0.8"] as const).map(
        (version) => `signer ${stranger} is not authorised on paymaster ${deployments[version].paymaster}: add it with \`npm run paymaster -- add-signer\``,
      ),
    );
  });

  it("names a CHAIN_ID the RPC does not serve", async () => {
    assert.deepEqual(await problems({ chainId: 1 }), [`RPC_URL serves chain ${anvil.chainId}, but CHAIN_ID is 1`]);
  });

  it("names a paymaster deployed for another EntryPoint version", async () => {
    assert.deepEqual(await problems({ paymasters: { "0.7": deployments["0.8"].paymaster } }), [
      `paymaster ${deployments["0.8"].paymaster} serves EntryPoint ${ENTRYPOINT_ADDRESS["0.8"]}, not v0.7 ${ENTRYPOINT_ADDRESS["0.7"]}`,
    ]);
  });

  it("names a missing paymaster configuration, and reports every problem at once", async () => {
    assert.deepEqual(await problems({ paymasters: {} }), ["no paymaster configured: set PAYMASTER_V07_ADDRESS and/or PAYMASTER_V08_ADDRESS"]);
    const found = await problems({ chainId: 10, paymasters: { "0.7": NO_CODE } });
    assert.deepEqual(found, [`RPC_URL serves chain ${anvil.chainId}, but CHAIN_ID is 10`, `no contract at PAYMASTER_V07_ADDRESS ${NO_CODE}`]);
  });

  it("names Redis and the node when they do not answer", async () => {
    await redisServer.crash();
    try {
      const [problem, ...rest] = await problems({});
      assert.match(problem, /^Redis at REDIS_URL does not answer: /);
      assert.deepEqual(rest, []);
    } finally {
      await redisServer.restart();
    }
    if (redis.status !== "ready") await new Promise((resolve) => redis.once("ready", resolve));
    await preflight(parameters());

    const closed = createPublicClient({ transport: http(`http://127.0.0.1:${await freePort()}`, { retryCount: 0 }) });
    const [problem, ...rest] = await problems({ publicClient: closed as PublicClient, paymasters: { "0.7": deployments["0.7"].paymaster } });
    assert.equal(problem, "the node at RPC_URL does not answer: HTTP request failed.");
    assert.equal(rest.length, 2, "the contract checks fail too");
  });

  it("makes the service's start() report the sessions' own check as a PreflightError too", async () => {
    const config = loadConfig({
      RPC_URL: anvil.url,
      CHAIN_ID: String(anvil.chainId),
      REDIS_URL: redisServer.url,
      PAYMASTER_V07_ADDRESS: deployments["0.7"].paymaster,
      SIGNER_PRIVATE_KEY: SIGNER_KEY,
      PRICE_SOURCE: "static",
      STATIC_PRICE: "25000",
      SESSION_SECRET: "5e".repeat(32),
      ADMIN_TOKEN: "ad".repeat(16),
      SIWE_DOMAIN: "app.fiatgas.test",
      SIWE_ACCOUNT_FACTORIES: `${deployments["0.7"].factory},${NO_CODE}`,
    });
    const service = await createService(config, { logger: false });
    try {
      const error = await service.start().then(
        () => assert.fail("expected start() to fail"),
        (error: unknown) => error,
      );
      assert.ok(error instanceof PreflightError, String(error));
      assert.deepEqual(error.problems, [`SIWE_ACCOUNT_FACTORIES: no contract at ${NO_CODE} on chain ${anvil.chainId}`]);
    } finally {
      await service.stop();
    }
  });
});
