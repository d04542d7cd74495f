// A storm of duplicated payment notifications from the gateway sandbox, with the service process
// and Redis both killed (SIGKILL) in the middle of it: every acknowledged credit must survive, and
// every order must end up credited exactly once.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { after, before, it } from "node:test";

import { type Address, getAddress, keccak256, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { createKeys } from "../../service/redis.ts";
import { type Sandbox, startSandbox } from "../../scripts/sandbox/server.ts";
import { type AnvilChain, deployPaymasters, startAnvil } from "../support/anvil.ts";
import { type RedisServer, freePort, startRedis } from "../support/redis.ts";
import { localServiceEnv } from "../support/serviceFixture.ts";
import { within } from "../support/wait.ts";

const ROOT = path.join(import.meta.dirname, "../..");
const ORDERS = 24;

let anvil: AnvilChain;
let redis: RedisServer;
let sandbox: Sandbox;
let service: ChildProcess | undefined;
let env: Record<string, string>;
let url: string;

/** Starts the service as its own process, as production runs it, and waits until it is ready. */
async function startService(): Promise<ChildProcess> {
  const child = spawn(path.join(ROOT, "node_modules/.bin/node"), ["service/main.ts"], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk));
  const ready = await within(30_000, async () => {
    if (child.exitCode !== null) throw new Error(`the service exited: ${stderr}`);
    return fetch(`${url}/readyz`).then((response) => response.ok).catch(() => false);
  });
  assert.ok(ready, `the service did not become ready: ${stderr}`);
  return child;
}

function kill(child: ChildProcess | undefined): Promise<void> {
  // A child killed by a signal has signalCode set and exitCode null.
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

before(async () => {
  anvil = await startAnvil();
  redis = await startRedis({ durable: true });
  const signerKey = generatePrivateKey();
  const { deployments } = await deployPaymasters(anvil, { signer: privateKeyToAccount(signerKey) });
  // Retries compressed 3600×: the whole schedule (a day) takes about 25 s, far longer than the outage.
  sandbox = await startSandbox({ timeScale: 3_600, duplicates: 4, redeliverAfterAck: 2 });
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  env = {
    ...localServiceEnv({ anvil, redis, deployments, signerKey }),
    ...sandbox.environment(),
    PORT: String(port),
    PUBLIC_BASE_URL: url,
    LOG_LEVEL: "warn",
    TOPUP_RECOVERY_INTERVAL_SECONDS: "3600",
  };
  service = await startService();
});
// Bounded, so a failure mid-crash can never hold the whole suite up.
after(async () => {
  await kill(service);
  await sandbox?.close();
  await redis?.stop();
  await anvil?.stop();
}, { timeout: 60_000 });

it("credits every order exactly once through a duplicate storm and a crash of both the service and Redis", { timeout: 180_000 }, async () => {
  const orders: { orderId: string; account: Address; channel: string; fen: bigint }[] = [];
  for (let index = 0; index < ORDERS; index++) {
    const channel = index % 2 === 0 ? "alipay" : "wechatpay";
    const account = getAddress(keccak256(toHex(`storm ${index} ${randomBytes(4).toString("hex")}`)).slice(0, 42));
    const fen = BigInt(100 + index);
    const response = await fetch(`${url}/v1/topups`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ account, amount: `${fen / 100n}.${String(fen % 100n).padStart(2, "0")}`, currency: "CNY", channel }),
    });
    assert.equal(response.status, 201);
    const { orderId } = (await response.json()) as { orderId: string };
    orders.push({ orderId, account, channel, fen });
  }

  // Two thirds pay at once; each notification goes out as 4 concurrent copies, then twice more
  // after its acknowledgement. The crash comes as soon as some are acknowledged; the last third
  // pays while everything is down, so the storm always spans the crash.
  const pay = (group: typeof orders) =>
    Promise.all(group.map(({ channel, orderId }) => fetch(`${sandbox.url}/sandbox/${channel}/${orderId}/pay`, { method: "POST" }).then((response) => assert.equal(response.status, 200))));
  const acknowledgedCount = () => sandbox.delivery.deliveries().filter(({ state }) => state === "acknowledged").length;
  await pay(orders.slice(0, (2 * ORDERS) / 3));
  assert.ok(await within(20_000, () => acknowledgedCount() >= 1), "some notifications acknowledged");

  await Promise.all([kill(service), redis.crash()]);
  const acknowledged = acknowledgedCount();
  await pay(orders.slice((2 * ORDERS) / 3));

  // Redis back from its AOF, the service still down: every acknowledged credit is there.
  await redis.restart();
  const keys = createKeys("fg");
  const client = redis.client();
  const paidNow = (await Promise.all(orders.map(({ account, orderId }) => client.hget(keys.order(account, orderId), "state")))).filter((state) => state === "paid").length;
  assert.ok(paidNow >= acknowledged, `${paidNow} orders paid after the crash, ${acknowledged} notifications were acknowledged before it`);

  service = await startService();
  assert.ok(await within(60_000, () => acknowledgedCount() === ORDERS), "every notification acknowledged after the restart");
  await sandbox.delivery.idle();

  for (const { account, orderId, fen } of orders) {
    assert.equal(await client.hget(keys.order(account, orderId), "state"), "paid", orderId);
    assert.equal(await client.hget(keys.balance(account), "balance"), fen.toString(), `${orderId} credited exactly once`);
    const journal = await client.xrange(keys.journal(account), "-", "+");
    assert.equal(journal.length, 1, `one journal entry for ${orderId}`);
  }
  const attempts = sandbox.delivery.attempts();
  assert.ok(attempts.length >= ORDERS * 6, `a storm: ${attempts.length} deliveries for ${ORDERS} orders`);
  assert.ok(attempts.some(({ status }) => status === null), "some deliveries met the dead service");
});
