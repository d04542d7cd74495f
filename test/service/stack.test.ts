// `npm start` as a developer runs it: the local stack's script as a child process, with free ports
// and its own folder. Everything it describes in stack.json must answer, work together (a top-up
// paid in the sandbox, a sponsored UserOperation through the bundler, settled), and stop with it,
// on Ctrl-C or when one of its processes dies. A second start is clean. Then its flags and its
// filter of the chain's log.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import { createSmartAccountClient } from "permissionless";
import { toSimpleSmartAccount } from "permissionless/accounts";
import { type Address, type Hex, createPublicClient, defineChain, http } from "viem";
import { createPaymasterClient } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { createSiweMessage } from "viem/siwe";

import { ENTRYPOINT_ADDRESS, ENTRYPOINT_VERSIONS } from "../../service/chain/entryPoints.ts";
import { chainLogFilter } from "../../scripts/stack/chain.ts";
import { DEFAULT_PORTS, parseOptions, productionModeProblem } from "../../scripts/stack/options.ts";
import { isPortFree } from "../../scripts/stack/ports.ts";
import { type StackDescription, readStackFile, stackFilePath } from "../../scripts/stack/stackFile.ts";
import { FREE_PORTS, STACK_SIWE_DOMAIN, type StackRun, alive, runStack, waitForStack } from "../support/stack.ts";
import { within } from "../support/wait.ts";


async function rpc<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
  const body = (await response.json()) as { result: T; error?: unknown };
  assert.equal(body.error, undefined, `${method} failed: ${JSON.stringify(body.error)}`);
  return body.result;
}

/** Every process and port of `stack` is gone. */
async function assertGone(stack: StackDescription) {
  for (const { name, pid } of stack.processes) assert.equal(alive(pid), false, `${name} (pid ${pid}) still runs`);
  for (const url of Object.values(stack.urls)) {
    const port = Number(new URL(url).port);
    assert.ok(await isPortFree(port), `${url} is still held`);
  }
}

/** Stops a run that a failed test left behind, and anything it started. */
async function cleanUp(run: StackRun | undefined, stack: StackDescription | null) {
  if (run && run.child.exitCode === null && run.child.signalCode === null) {
    run.child.kill("SIGINT");
    const stopped = await Promise.race([run.exited.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 30_000))]);
    if (!stopped) run.child.kill("SIGKILL");
  }
  for (const { pid } of stack?.processes ?? []) if (alive(pid)) process.kill(-pid, "SIGKILL");
}

const dir = mkdtempSync(path.join(tmpdir(), "fiatgas-stack-"));
let first: StackRun | undefined;
let second: StackRun | undefined;
let firstStack: StackDescription | null = null;
let secondStack: StackDescription | null = null;
/** The smart account the first stack deployed, topped up and charged. */
let firstAccount: Address | undefined;

after(async () => {
  await cleanUp(first, firstStack);
  await cleanUp(second, secondStack);
  rmSync(dir, { recursive: true, force: true });
});

describe("npm start: the local stack", () => {
  before(async () => {
    // The folder from the environment here, from --dir on the second start.
    first = runStack(FREE_PORTS, { FIATGAS_STACK_DIR: dir });
    firstStack = await waitForStack(first, dir);
  });

  it("describes itself in a stack.json only its owner can read, and prints the URLs", () => {
    const stack = firstStack!;
    assert.equal(statSync(stackFilePath(dir)).mode & 0o777, 0o600);
    assert.equal(stack.pid, first!.child.pid);
    assert.equal(stack.restart, "clean");
    for (const url of Object.values(stack.urls)) assert.match(url, /^(http|redis):\/\/127\.0\.0\.1:\d+/, "everything on loopback");
    for (const url of [stack.urls.rpc, stack.urls.bundler, stack.urls.service, stack.urls.sandbox]) assert.ok(first!.output().includes(url), `${url} printed`);
    assert.match(stack.adminToken, /^[0-9a-f]{64}$/);
    assert.ok(stack.sandbox.merchantEnvironment.ALIPAY_APP_PRIVATE_KEY && stack.sandbox.merchantEnvironment.WECHATPAY_MERCHANT_PRIVATE_KEY, "the merchant keys");
    assert.ok(stack.sandbox.gatewayKeys && typeof stack.sandbox.gatewayKeys === "object", "the gateways' keys");
    assert.equal(stack.devAccounts.accounts.length, 20);
    assert.equal(privateKeyToAccount(stack.devAccounts.accounts[1].privateKey).address, stack.devAccounts.accounts[1].address);
    assert.deepEqual(stack.processes.map(({ name }) => name), ["chain", "redis", "sandbox", "bundler", "service"]);
  });

  it("answers at every URL, with every contract deployed", async () => {
    const stack = firstStack!;
    assert.equal(Number(await rpc<Hex>(stack.urls.rpc, "eth_chainId")), stack.chainId);
    assert.deepEqual(await rpc<Address[]>(stack.urls.bundler, "eth_supportedEntryPoints"), ENTRYPOINT_VERSIONS.map((version) => ENTRYPOINT_ADDRESS[version]));
    assert.equal((await fetch(`${stack.urls.service}/readyz`)).status, 200);
    const environment = await fetch(`${stack.urls.sandbox}/sandbox/environment`);
    assert.deepEqual(await environment.json(), stack.sandbox.merchantEnvironment);
    const { contracts } = stack;
    const addresses = [contracts.priceFeed, ...ENTRYPOINT_VERSIONS.flatMap((version) => [contracts.entryPoints[version], contracts.simpleAccountFactories[version], contracts.paymasters[version]])];
    for (const address of addresses) assert.notEqual(await rpc<Hex>(stack.urls.rpc, "eth_getCode", [address, "latest"]), "0x", `code at ${address}`);
    const admin = await fetch(`${stack.urls.service}/admin/policy`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
    assert.equal(admin.status, 200, "the admin token works");
  });

  it("tops up through the sandbox, sponsors an op sent through the bundler, and settles it", async () => {
    const stack = firstStack!;
    const chain = defineChain({ id: stack.chainId, name: "local", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [stack.urls.rpc] } } });
    const publicClient = createPublicClient({ chain, transport: http(stack.urls.rpc), pollingInterval: 100 });
    const owner = privateKeyToAccount(generatePrivateKey());
    const account = await toSimpleSmartAccount({ client: publicClient, owner, entryPoint: { address: ENTRYPOINT_ADDRESS["0.7"], version: "0.7" }, factoryAddress: stack.contracts.simpleAccountFactories["0.7"] });
    const { factory, factoryData } = await account.getFactoryArgs();
    firstAccount = account.address;

    const { nonce } = (await (await fetch(`${stack.urls.service}/v1/auth/nonce`)).json()) as { nonce: string };
    const message = createSiweMessage({ address: account.address, chainId: stack.chainId, domain: STACK_SIWE_DOMAIN, nonce, uri: `http://${STACK_SIWE_DOMAIN}/`, version: "1", issuedAt: new Date() });
    const signIn = await fetch(`${stack.urls.service}/v1/auth/sign-in`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message, signature: await owner.signMessage({ message }), owner: owner.address, factory, factoryData }),
    });
    assert.equal(signIn.status, 200, await signIn.clone().text());
    const { token: session } = (await signIn.json()) as { token: string };

    const topUp = await fetch(`${stack.urls.service}/v1/topups`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ account: account.address, amount: "50.00", currency: "CNY", channel: "alipay" }) });
    assert.equal(topUp.status, 201, await topUp.clone().text());
    const { orderId } = (await topUp.json()) as { orderId: string };
    assert.equal((await fetch(`${stack.urls.sandbox}/sandbox/alipay/${orderId}/pay`, { method: "POST" })).status, 200);
    const balance = async () => {
      const response = await fetch(`${stack.urls.service}/admin/accounts/${account.address}`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
      return (await response.json()) as { balanceFen: string; reservedFen: string };
    };
    assert.ok(await within(15_000, async () => (await balance()).balanceFen === "5000"), "the sandbox's notification credited the account");

    const client = createSmartAccountClient({
      account,
      chain,
      bundlerTransport: http(stack.urls.bundler),
      paymaster: createPaymasterClient({ transport: http(stack.urls.paymaster) }),
      paymasterContext: { session },
      pollingInterval: 100,
      userOperation: {
        async estimateFeesPerGas() {
          const { standard } = (await (await fetch(`${stack.urls.service}/v1/gas-prices`)).json()) as { standard: { maxFeePerGas: string; maxPriorityFeePerGas: string } };
          return { maxFeePerGas: BigInt(standard.maxFeePerGas), maxPriorityFeePerGas: BigInt(standard.maxPriorityFeePerGas) };
        },
      },
    });
    const hash = await client.sendUserOperation({ calls: [{ to: "0x00000000000000000000000000000000000000cc", value: 0n, data: "0x" }] });
    const receipt = await client.waitForUserOperationReceipt({ hash, timeout: 30_000 });
    assert.equal(receipt.success, true);
    assert.equal(receipt.paymaster?.toLowerCase(), stack.contracts.paymasters["0.7"].toLowerCase());

    // Two confirmations at a block a second: settled within seconds, charged less than the 50 yuan paid.
    assert.ok(
      await within(20_000, async () => {
        const { balanceFen, reservedFen } = await balance();
        return reservedFen === "0" && BigInt(balanceFen) < 5000n;
      }),
      `settled: ${JSON.stringify(await balance())}`,
    );
  });

  it("refuses a second stack from the same folder while the first runs", async () => {
    const run = runStack(["--dir", dir, ...FREE_PORTS]);
    assert.equal(await run.exited, 2);
    assert.match(run.output(), new RegExp(`a stack is already running from .* \\(pid ${first!.child.pid}`));
  });

  it("stops every process on Ctrl-C, newest first, and removes stack.json", async () => {
    first!.child.kill("SIGINT");
    assert.equal(await first!.exited, 0, first!.output());
    assert.match(first!.output(), /service stopped\n.*bundler stopped\n.*sandbox stopped\n.*redis stopped\n.*chain stopped\n/);
    await assertGone(firstStack!);
    assert.equal(readStackFile(dir), null);
  });

  it("starts clean the second time, and stops everything when one of its processes dies", async () => {
    second = runStack(["--dir", dir, ...FREE_PORTS]);
    secondStack = await waitForStack(second, dir);
    const stack = secondStack;
    assert.notEqual(stack.adminToken, firstStack!.adminToken, "new keys");
    assert.ok(firstAccount, "the first stack deployed an account");
    assert.equal(await rpc<Hex>(stack.urls.rpc, "eth_getCode", [firstAccount, "latest"]), "0x", "a new chain: the first one's account is not on it");
    const account = await fetch(`${stack.urls.service}/admin/accounts/${firstAccount}`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
    assert.equal(((await account.json()) as { balanceFen: string }).balanceFen, "0", "an empty Redis: no balance outlives its chain");

    const bundler = stack.processes.find(({ name }) => name === "bundler")!;
    process.kill(bundler.pid, "SIGKILL");
    assert.equal(await second.exited, 1);
    assert.match(second.output(), /bundler stopped unexpectedly \(signal SIGKILL\)/);
    await assertGone(stack);
    assert.equal(readStackFile(dir), null);
  });
});

describe("npm start: options and logs", () => {
  it("refuses bad flags and production settings before starting anything", () => {
    assert.throws(() => parseOptions(["--chain-port", "70000"]), { name: "UsageError", message: /--chain-port must be a port number/ });
    assert.throws(() => parseOptions(["--nope"]), { name: "UsageError" });
    assert.deepEqual(parseOptions(["--redis-port", "0", "--dir", "x"], {}).ports, { ...DEFAULT_PORTS, redis: 0 });
    assert.equal(parseOptions([], { FIATGAS_STACK_DIR: "/tmp/elsewhere" }).dir, "/tmp/elsewhere");
    assert.equal(productionModeProblem({ PORT: "8080", LOG_LEVEL: "debug" }), null);
    assert.match(productionModeProblem({ RPC_URL: "https://rpc.example", REDIS_URL: "redis://db" })!, /^RPC_URL, REDIS_URL are set, which is production mode.*node service\/main\.ts/);
  });

  it("keeps transactions, failures and the node's messages in the chain log, and drops successful reads", () => {
    const keep = chainLogFilter();
    const green = (method: string) => `\u001b[32m${method}\u001b[0m`;
    const lines: [string, boolean][] = [
      ["Started HTTP and WebSocket JSON-RPC server at http://127.0.0.1:8545/", true],
      [green("eth_call"), false],
      ["  Contract call:       MockAggregatorV3#latestRoundData", false],
      ["", false],
      [green("eth_getBlockByNumber (2)"), false],
      ["Mined empty block range #3 to #4", false],
      [green("eth_sendRawTransaction"), true],
      ["  Transaction:         0xb1ea", true],
      ["", true],
      [`\u001b[31meth_fillTransaction - Method not supported\u001b[0m`, true],
      [`\u001b[31meth_estimateGas\u001b[0m`, true],
      ["  Error: reverted with custom error", true],
    ];
    for (const [line, kept] of lines) assert.equal(keep(line), kept, JSON.stringify(line));
  });
});
