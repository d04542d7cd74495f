// The DApp SDK (service/sdk) end to end: the real service with both gateway simulators (their
// notifications held, and delivered by hand as the gateway would), anvil, and the Alto bundler.
// Everything a DApp does goes through the SDK; the test only plays the payer and the operator.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import Fastify, { type FastifyInstance } from "fastify";
import { createSmartAccountClient } from "permissionless";
import { toSimpleSmartAccount } from "permissionless/accounts";
import { type Hex, createWalletClient, encodeFunctionData, getAddress, http, parseAbi, parseEventLogs } from "viem";
import { createPaymasterClient, entryPoint07Abi, toSmartAccount } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { ENTRYPOINT_ADDRESS, ENTRYPOINT_VERSIONS, type EntryPointVersion } from "../../service/chain/entryPoints.ts";
import type { PolicyDocument } from "../../service/risk/policy.ts";
import {
  AuthenticationError,
  type FeesPerGas,
  type FiatGasClient,
  type FiatGasSession,
  InsufficientBalanceError,
  InvalidRequestError,
  LimitError,
  NotFoundError,
  RefundNotPossibleError,
  TopUpCoolingError,
  type TopUpChannel,
  createFiatGasClient,
  fiatGasPaymaster,
  toFiatGasError,
} from "../../service/sdk/index.ts";
import { type AlipaySimulator, createAlipaySimulator } from "../../scripts/sandbox/alipay.ts";
import type { NotificationDelivery, OutgoingNotification } from "../../scripts/sandbox/simulator.ts";
import { type WechatPaySimulator, createWechatPaySimulator } from "../../scripts/sandbox/wechatpay.ts";
import { deployArtifact, entryPointAbi } from "../support/aa.ts";
import { type AltoBundler, startAlto } from "../support/alto.ts";
import { projectArtifact } from "../support/anvil.ts";
import { freePort } from "../support/redis.ts";
import { FIXTURE_POLICY, SIWE_DOMAIN, type ServiceStack, startServiceStack } from "../support/serviceFixture.ts";

const TARGET = "0x00000000000000000000000000000000000000cc";

let gatewayApp: FastifyInstance;
let alipay: AlipaySimulator;
let wechatpay: WechatPaySimulator;
let stack: ServiceStack;
let alto: AltoBundler;
let sdk: FiatGasClient;
const held: OutgoingNotification[] = [];
const delivery: NotificationDelivery = { send: (notification) => void held.push(notification) };

before(async () => {
  const gatewayPort = await freePort();
  const baseUrl = `http://127.0.0.1:${gatewayPort}`;
  gatewayApp = Fastify();
  alipay = createAlipaySimulator({ baseUrl, delivery });
  wechatpay = createWechatPaySimulator({ baseUrl, delivery });
  await alipay.register(gatewayApp);
  await wechatpay.register(gatewayApp);
  await gatewayApp.listen({ host: "127.0.0.1", port: gatewayPort });
  const port = await freePort();
  stack = await startServiceStack({
    ...alipay.merchantEnvironment(),
    ...wechatpay.merchantEnvironment(),
    PORT: String(port),
    PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    TOPUP_MAX_FEN: "100000",
    TOPUP_RECOVERY_INTERVAL_SECONDS: "3600",
  });
  alto = await startAlto(stack.anvil, [ENTRYPOINT_ADDRESS["0.7"], ENTRYPOINT_ADDRESS["0.8"]]);
  sdk = createFiatGasClient({ url: stack.url });
});
after(async () => {
  await alto?.stop();
  await stack?.stop();
  await gatewayApp?.close();
});

/** The payer pays the order at the gateway, and its notification reaches the service. */
async function pay(channel: TopUpChannel, orderId: string) {
  held.splice(0);
  (channel === "alipay" ? alipay : wechatpay).pay(orderId);
  const [notification] = held.splice(0);
  const { headers, body } = notification.build();
  const response = await fetch(notification.url, { method: "POST", headers, body });
  assert.ok(notification.acknowledged(response.status, await response.text()), `the ${channel} notification was acknowledged`);
}

/** A fresh SimpleAccount (permissionless), not deployed yet, and its owner. */
async function newSmartAccount(version: EntryPointVersion = "0.7") {
  const owner = privateKeyToAccount(generatePrivateKey());
  const account = await toSimpleSmartAccount({
    client: stack.anvil.publicClient,
    owner,
    entryPoint: { address: ENTRYPOINT_ADDRESS[version], version },
    factoryAddress: stack.deployment(version).factory,
  });
  return { owner, account };
}

/** A smart account signed in through the SDK and topped up with `amount` through Alipay. */
async function fundedAccount(version: EntryPointVersion, amount: string) {
  const { owner, account } = await newSmartAccount(version);
  const session = await sdk.signIn({ account, owner, domain: SIWE_DOMAIN });
  const topUp = await sdk.createTopUp({ account: account.address, amount, channel: "alipay" });
  await pay("alipay", topUp.orderId);
  await sdk.waitForTopUp(topUp.orderId, { intervalMs: 20, timeoutMs: 5_000 });
  return { owner, account, session };
}

/** permissionless's smart account client with the SDK's paymaster and fee estimator, through Alto. */
function smartAccountClient(account: Awaited<ReturnType<typeof newSmartAccount>>["account"], session: FiatGasSession, feesUsed: FeesPerGas[] = []) {
  const paymaster = fiatGasPaymaster({ url: stack.url, session });
  const estimateFeesPerGas = async () => {
    const fees = await paymaster.userOperation.estimateFeesPerGas();
    feesUsed.push(fees);
    return fees;
  };
  return createSmartAccountClient({ account, chain: stack.anvil.chain, bundlerTransport: http(alto.url), paymaster, userOperation: { estimateFeesPerGas } });
}

/** Replaces the operator's policy through the admin API. */
async function setPolicy(policy: PolicyDocument) {
  const headers = { authorization: `Bearer ${stack.adminToken}` };
  const { version } = (await (await fetch(`${stack.url}/admin/policy`, { headers })).json()) as { version: number };
  const response = await fetch(`${stack.url}/admin/policy`, { method: "PUT", headers: { ...headers, "content-type": "application/json", "if-match": `"${version}"` }, body: JSON.stringify(policy) });
  assert.equal(response.status, 200, await response.text());
}

describe("sign-in", () => {
  it("signs in an undeployed SimpleAccount with its owner's key, the factory call taken from the account", async () => {
    const { owner, account } = await newSmartAccount("0.7");
    const session = await sdk.signIn({ account, owner, domain: SIWE_DOMAIN, statement: "Sign in to pay for gas in fiat." });
    assert.equal(session.address, account.address);
    assert.ok(session.expiresAt.getTime() > Date.now());
    const balance = await sdk.getBalance(session);
    assert.deepEqual(balance, { address: account.address, currency: "CNY", balanceFen: 0n, reservedFen: 0n, availableFen: 0n });

    await sdk.signOut(session);
    await assert.rejects(sdk.getBalance(session), (error: unknown) => error instanceof AuthenticationError && error.code === "UNAUTHENTICATED" && error.status === 401);
  });

  it("signs in an undeployed ERC-1271 account through its own signMessage, which viem wraps per ERC-6492", async () => {
    const factory = await deployArtifact(projectArtifact("contracts/test/Erc1271TestAccount.sol", "Erc1271TestAccountFactory"), [], stack.anvil);
    const owner = privateKeyToAccount(generatePrivateKey());
    const factoryAbi = parseAbi(["function createAccount(address owner, uint256 salt) returns (address)", "function getAddress(address owner, uint256 salt) view returns (address)"]);
    const address = await stack.anvil.publicClient.readContract({ address: factory, abi: factoryAbi, functionName: "getAddress", args: [owner.address, 0n] });
    const unused = async (): Promise<never> => assert.fail("not needed to sign in");
    const account = await toSmartAccount({
      client: stack.anvil.publicClient,
      entryPoint: { abi: entryPoint07Abi, address: ENTRYPOINT_ADDRESS["0.7"], version: "0.7" },
      getAddress: async () => address,
      getFactoryArgs: async () => ({ factory, factoryData: encodeFunctionData({ abi: factoryAbi, functionName: "createAccount", args: [owner.address, 0n] }) }),
      signMessage: ({ message }) => owner.signMessage({ message }),
      encodeCalls: unused,
      getStubSignature: unused,
      signTypedData: unused,
      signUserOperation: unused,
    });
    const session = await sdk.signIn({ account, domain: SIWE_DOMAIN });
    assert.equal(session.address, address);
    assert.equal(await stack.anvil.publicClient.getCode({ address }), undefined, "still undeployed");
  });

  it("signs in a SimpleAccount whose owner is a wallet client", async () => {
    const { owner, account } = await newSmartAccount("0.8");
    const wallet = createWalletClient({ account: owner, transport: http(stack.anvil.url) });
    const session = await sdk.signIn({ account, owner: wallet, domain: SIWE_DOMAIN });
    assert.equal(session.address, account.address);
  });

  it("signs in an EOA with a wallet client's signMessage, and refuses a session for another account", async () => {
    const wallet = createWalletClient({ account: privateKeyToAccount(generatePrivateKey()), transport: http(stack.anvil.url) });
    const session = await sdk.signIn({ account: wallet.account.address, signMessage: (args) => wallet.signMessage(args), chainId: stack.anvil.chainId, domain: SIWE_DOMAIN });
    assert.equal(session.address, wallet.account.address);
    const { account: other } = await newSmartAccount();
    await assert.rejects(sdk.getBalance({ session, account: other.address }), (error: unknown) => error instanceof AuthenticationError && error.code === "FORBIDDEN");
  });

  it("refuses a wrong owner, another site's domain, and a call with nothing to sign", async () => {
    const { account } = await newSmartAccount();
    const stranger = privateKeyToAccount(generatePrivateKey());
    await assert.rejects(sdk.signIn({ account, owner: stranger, domain: SIWE_DOMAIN }), (error: unknown) => error instanceof AuthenticationError && error.code === "INVALID_SIGNATURE");
    const { owner } = await newSmartAccount();
    await assert.rejects(sdk.signIn({ account, owner, domain: "evil.example" }), (error: unknown) => error instanceof AuthenticationError && error.code === "UNAUTHENTICATED" && /domain/.test(error.shortMessage));
    await assert.rejects(sdk.signIn({ account: account.address, chainId: stack.anvil.chainId, domain: SIWE_DOMAIN }), (error: unknown) => error instanceof InvalidRequestError && error.status === undefined);
  });
});

describe("top-ups", () => {
  for (const channel of ["alipay", "wechatpay"] as const) {
    it(`${channel}: creates an order, waits until the gateway's notification marks it paid, and credits the balance to the fen`, async () => {
      const { owner, account } = await newSmartAccount();
      const session = await sdk.signIn({ account, owner, domain: SIWE_DOMAIN });
      const created = await sdk.createTopUp(channel === "alipay" ? { account: account.address, amount: "12.34", channel } : { account: account.address, amountFen: 1_234n, channel });
      assert.equal(created.state, "pending");
      assert.equal(created.amountFen, 1_234n);
      assert.ok(channel === "alipay" ? created.qrCode : created.codeUrl, "something for the payer to scan");

      const states: string[] = [];
      const waiting = sdk.waitForTopUp(created.orderId, { intervalMs: 20, timeoutMs: 10_000, onUpdate: (topUp) => states.push(topUp.state) });
      await new Promise((resolve) => setTimeout(resolve, 50));
      await pay(channel, created.orderId);
      const paid = await waiting;
      assert.equal(paid.state, "paid");
      assert.ok(paid.paidAt);
      assert.deepEqual(states, ["pending", "paid"]);
      const balance = await sdk.getBalance(session);
      assert.deepEqual([balance.balanceFen, balance.reservedFen, balance.availableFen], [1_234n, 0n, 1_234n]);
    });
  }

  it("refunds part of the balance through Alipay, and refuses more than is available with the amount that is", async () => {
    const { account, session } = await fundedAccount("0.7", "50.00");
    const refund = await sdk.requestRefund({ session, amountFen: 2_000n });
    assert.equal(refund.refundedFen, 2_000n);
    assert.equal(refund.pendingFen, 0n);
    assert.deepEqual(refund.refunds.map(({ channel, fen, state }) => [channel, fen, state]), [["alipay", 2_000n, "succeeded"]]);
    assert.equal((await sdk.getBalance({ session, account: account.address })).balanceFen, 3_000n);

    const error = await sdk.requestRefund({ session, amountFen: 3_001n }).catch((e: unknown) => e);
    assert.ok(error instanceof RefundNotPossibleError, String(error));
    assert.equal(error.status, 409);
    assert.equal(error.availableFen, 3_000n);
    assert.equal(error.requestedFen, 3_001n);
  });

  it("answers bad input with typed errors that name the field", async () => {
    const { account } = await newSmartAccount();
    const badAmount = await sdk.createTopUp({ account: account.address, amount: "1.234", channel: "alipay" }).catch((e: unknown) => e);
    assert.ok(badAmount instanceof InvalidRequestError);
    assert.deepEqual([badAmount.code, badAmount.status, badAmount.issues[0]?.path], ["INVALID_PARAMS", 400, "amount"]);
    const tooSmall = await sdk.createTopUp({ account: account.address, amount: "0.50", channel: "wechatpay" }).catch((e: unknown) => e);
    assert.ok(tooSmall instanceof InvalidRequestError && /between/.test(tooSmall.shortMessage), String(tooSmall));
    await assert.rejects(sdk.getTopUp("TUnosuchorder000000000000"), (error: unknown) => error instanceof NotFoundError && error.status === 404);
    await assert.rejects(sdk.waitForTopUp("TUnosuchorder000000000000", { intervalMs: 10 }), NotFoundError);
  });
});

describe("pricing", () => {
  it("suggests fees and quotes an operation exactly as the service would reserve it", async () => {
    const prices = await sdk.gasPrices();
    assert.ok(prices.slow.maxFeePerGas <= prices.standard.maxFeePerGas && prices.standard.maxFeePerGas <= prices.fast.maxFeePerGas);
    assert.deepEqual(await sdk.estimateFeesPerGas(), prices.standard);

    const { account } = await newSmartAccount();
    const { factory, factoryData } = await account.getFactoryArgs();
    const userOperation = {
      sender: account.address,
      nonce: 0n,
      factory,
      factoryData,
      callData: "0x" as Hex,
      callGasLimit: 100_000n,
      verificationGasLimit: 500_000n,
      preVerificationGas: 60_000n,
      maxFeePerGas: 3_000_000_000n,
      maxPriorityFeePerGas: 1_000_000_000n,
    };
    const quote = await sdk.quote({ userOperation, entryPoint: ENTRYPOINT_ADDRESS["0.7"] });
    // Every gas limit (the paymaster's 30,000 from the config included) × maxFeePerGas.
    assert.equal(quote.maxWei, (100_000n + 500_000n + 60_000n + 30_000n) * 3_000_000_000n);
    const raw = await stack.post<Record<string, string>>("/v1/quotes", {
      userOperation: { sender: account.address, nonce: "0x0", factory, factoryData, callData: "0x", callGasLimit: "0x186a0", verificationGasLimit: "0x7a120", preVerificationGas: "0xea60", maxFeePerGas: "0xb2d05e00", maxPriorityFeePerGas: "0x3b9aca00" },
      entryPoint: ENTRYPOINT_ADDRESS["0.7"],
    });
    assert.equal(quote.maxChargeFen, BigInt(raw.body.maxChargeFen));
    assert.equal(quote.expectedChargeFen, BigInt(raw.body.expectedChargeFen));
    assert.deepEqual([quote.currency, quote.rate.price, quote.rate.source, quote.expiresAt], ["CNY", "25000.00", "static", null]);

    const unsupported = await sdk.quote({ userOperation, entryPoint: TARGET }).catch((e: unknown) => e);
    assert.ok(unsupported instanceof InvalidRequestError);
    assert.equal(unsupported.code, "UNSUPPORTED_ENTRY_POINT");
    assert.deepEqual(unsupported.data.supported, [ENTRYPOINT_ADDRESS["0.7"], ENTRYPOINT_ADDRESS["0.8"]]);
  });
});

describe("sponsored operations through Alto with permissionless", () => {
  for (const version of ENTRYPOINT_VERSIONS) {
    it(`v${version}: lands ops paid from a fiat top-up, with fiatGasPaymaster and the SDK's fee estimator`, async () => {
      const { account, session } = await fundedAccount(version, "200.00");
      const feesUsed: FeesPerGas[] = [];
      const client = smartAccountClient(account, session, feesUsed);
      // The first op deploys the account; the second runs from it.
      for (const sequence of [0, 1]) {
        const userOpHash = await client.sendUserOperation({ calls: [{ to: TARGET, value: 0n, data: "0x" }] });
        const receipt = await client.waitForUserOperationReceipt({ hash: userOpHash, pollingInterval: 100 });
        // The op carries the service's standard tier, not viem's doubled node estimate.
        const { userOperation } = await client.getUserOperation({ hash: userOpHash });
        assert.deepEqual({ maxFeePerGas: userOperation.maxFeePerGas, maxPriorityFeePerGas: userOperation.maxPriorityFeePerGas }, feesUsed[sequence]);
        assert.equal(receipt.success, true, `op ${sequence} succeeded`);
        assert.equal(getAddress(receipt.paymaster!), stack.deployment(version).paymaster);
        const [event] = parseEventLogs({ abi: entryPointAbi, logs: receipt.receipt.logs, eventName: "UserOperationEvent" });
        assert.equal(event.args.userOpHash, userOpHash);
      }
      const reservations = await stack.service.ledger.reservations(account.address);
      assert.equal(reservations.length, 2, "each op reserved from the fiat balance");
      const balance = await sdk.getBalance(session);
      assert.equal(balance.balanceFen, 20_000n, "nothing is charged until settlement");
      assert.equal(balance.reservedFen, reservations.reduce((sum, reservation) => sum + reservation.chargeFen, 0n));
      assert.equal(await stack.anvil.publicClient.getBalance({ address: account.address }), 0n, "the account never held ETH");
    });
  }

  it("refuses a sponsorship beyond the balance with InsufficientBalanceError, through the SDK and through viem's own paymaster client", async () => {
    const { account, session } = await fundedAccount("0.7", "1.00");
    // 3 gwei fees make the worst case far more than ¥1.
    const fees = { maxFeePerGas: 3_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n };
    const error = await smartAccountClient(account, session)
      .sendUserOperation({ calls: [{ to: TARGET, value: 0n, data: "0x" }], ...fees })
      .catch((e: unknown) => e);
    assert.ok(error instanceof InsufficientBalanceError, `got ${String(error)}`);
    assert.equal(error.code, "INSUFFICIENT_BALANCE");
    assert.equal(error.rpcCode, -32010);
    assert.equal(error.availableFen, 100n);
    assert.ok(error.neededFen! > 100n && error.shortfallFen === error.neededFen! - 100n);

    const viemClient = createSmartAccountClient({
      account,
      chain: stack.anvil.chain,
      bundlerTransport: http(alto.url),
      paymaster: createPaymasterClient({ transport: http(stack.rpcUrl, { retryCount: 0 }) }),
      paymasterContext: { session: session.token },
    });
    const viemError = await viemClient.sendUserOperation({ calls: [{ to: TARGET, value: 0n, data: "0x" }], ...fees }).catch((e: unknown) => e);
    const typed = toFiatGasError(viemError);
    assert.ok(typed instanceof InsufficientBalanceError, `got ${String(viemError)}`);
    assert.equal(typed.availableFen, 100n);
    assert.equal((await sdk.getBalance(session)).reservedFen, 0n, "nothing was reserved");
  });

  it("surfaces the operator's limits as LimitError and TopUpCoolingError with their data", async () => {
    const { account, session } = await fundedAccount("0.7", "200.00");
    const client = smartAccountClient(account, session);
    const send = () => client.sendUserOperation({ calls: [{ to: TARGET, value: 0n, data: "0x" }] }).catch((e: unknown) => e);
    try {
      await setPolicy({ ...FIXTURE_POLICY, perOperation: { ...FIXTURE_POLICY.perOperation, maxChargeFen: "1" } } as PolicyDocument);
      const limit = await send();
      assert.ok(limit instanceof LimitError, `got ${String(limit)}`);
      assert.equal(limit.code, "LIMIT_CHARGE");
      assert.equal(limit.status, 200, "a JSON-RPC error rides on HTTP 200");
      assert.deepEqual([limit.limit, limit.limitValue], ["perOperation.maxChargeFen", "1"]);
      assert.ok(BigInt(limit.currentValue!) > 1n, "the op's worst-case charge");

      await setPolicy({ ...FIXTURE_POLICY, perAccount: { topUpCoolingSeconds: 3_600 } } as PolicyDocument);
      const cooling = await send();
      assert.ok(cooling instanceof TopUpCoolingError, `got ${String(cooling)}`);
      assert.ok(cooling instanceof LimitError);
      assert.equal(cooling.limit, "perAccount.topUpCoolingSeconds");
      assert.equal(cooling.spendableFen, 0n);
      assert.ok(cooling.neededFen! > 0n);
      const wait = cooling.retryAfter!.getTime() - Date.now();
      assert.ok(wait > 3_500_000 && wait <= 3_600_000, `retry in about an hour (${wait} ms)`);
    } finally {
      await setPolicy(FIXTURE_POLICY);
    }
    assert.equal((await sdk.getBalance(session)).reservedFen, 0n, "nothing was reserved");
  });
});
