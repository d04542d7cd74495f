// Issue 7's end-to-end list, against the real local stack (`scripts/stack/start.ts`, one for the
// whole file): a user tops up through each gateway's sandbox with the SDK, sends a sponsored op that
// lands through the stack's Alto bundler, and is charged by settlement exactly what the receipt's
// gas cost is worth at the locked rate; a request beyond the balance, a policy limit, and a refund
// that reaches the gateway.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import { createSmartAccountClient } from "permissionless";
import { toSimpleSmartAccount } from "permissionless/accounts";
import { type Chain, type PublicClient, createPublicClient, defineChain, getAddress, http, parseEventLogs } from "viem";
import { createPaymasterClient, entryPoint07Abi } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { ENTRYPOINT_ADDRESS } from "../../service/chain/entryPoints.ts";
import { type FiatGasClient, type FiatGasSession, InsufficientBalanceError, LimitError, type TopUpChannel, createFiatGasClient, fiatGasPaymaster } from "../../service/sdk/index.ts";
import { type StackDescription, readStackFile } from "../../scripts/stack/stackFile.ts";
import { FREE_PORTS, STACK_SIWE_DOMAIN, type StackRun, alive, runStack, waitForStack } from "../support/stack.ts";
import { within } from "../support/wait.ts";

const TARGET = "0x00000000000000000000000000000000000000cc";

// The stack's terms, written out by hand: the mock feed's ETH/CNY ¥25,000.00 (README "Local stack"),
// and no MARKUP_BPS or FIXED_FEE_FEN in scripts/stack/stack.ts's service settings, so the service's
// defaults (service/pricing/config.ts): 0 basis points and 0 fen.
const FEN_PER_ETH = 2_500_000n;
const MARKUP_BPS = 0n;
const FIXED_FEE_FEN = 0n;

/** ceil(wei × price × (10000 + markup) / 10000 / 1e18) fen, plus the fixed fee: service/pricing/charge.ts's formula, independently. */
function expectedChargeFen(wei: bigint): bigint {
  const numerator = wei * FEN_PER_ETH * (10_000n + MARKUP_BPS);
  const denominator = 10n ** 18n * 10_000n;
  return (numerator + denominator - 1n) / denominator + FIXED_FEE_FEN;
}

const dir = mkdtempSync(path.join(tmpdir(), "fiatgas-e2e-"));
let run: StackRun | undefined;
let stack: StackDescription;
let chain: Chain;
let publicClient: PublicClient;
let sdk: FiatGasClient;

before(async () => {
  run = runStack(["--dir", dir, ...FREE_PORTS]);
  stack = await waitForStack(run, dir);
  chain = defineChain({ id: stack.chainId, name: "local", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [stack.urls.rpc] } } });
  publicClient = createPublicClient({ chain, transport: http(stack.urls.rpc), pollingInterval: 100 });
  sdk = createFiatGasClient({ url: stack.urls.service });
});

after(async () => {
  const processes = (run && readStackFile(dir)?.processes) ?? [];
  if (run && run.child.exitCode === null && run.child.signalCode === null) {
    run.child.kill("SIGINT");
    const stopped = await Promise.race([run.exited.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 30_000))]);
    if (!stopped) run.child.kill("SIGKILL");
  }
  for (const { pid } of processes) if (alive(pid)) process.kill(-pid, "SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh SimpleAccount (v0.7, owner a new key), signed in through the SDK. */
async function signedInAccount() {
  const owner = privateKeyToAccount(generatePrivateKey());
  const account = await toSimpleSmartAccount({ client: publicClient, owner, entryPoint: { address: ENTRYPOINT_ADDRESS["0.7"], version: "0.7" }, factoryAddress: stack.contracts.simpleAccountFactories["0.7"] });
  const session = await sdk.signIn({ account, owner, domain: STACK_SIWE_DOMAIN });
  assert.equal(session.address, account.address);
  return { account, session };
}

type Funded = Awaited<ReturnType<typeof signedInAccount>> & { orderId: string };

/** Signs in a new account and tops it up with `amount` through `channel`, paid at the sandbox, whose own notification credits it. */
async function fundedAccount(channel: TopUpChannel, amount: string): Promise<Funded> {
  const { account, session } = await signedInAccount();
  const order = await sdk.createTopUp({ account: account.address, amount, channel });
  assert.equal(order.state, "pending");
  const paid = await fetch(`${stack.urls.sandbox}/sandbox/${channel}/${order.orderId}/pay`, { method: "POST" });
  assert.equal(paid.status, 200, await paid.text());
  const topUp = await sdk.waitForTopUp(order.orderId, { intervalMs: 100, timeoutMs: 15_000 });
  assert.equal(topUp.state, "paid");
  return { account, session, orderId: order.orderId };
}

/** permissionless's smart account client through the stack's Alto, with the SDK's paymaster and fee estimator. */
function smartAccountClient({ account, session }: { account: Funded["account"]; session: FiatGasSession }) {
  const paymaster = fiatGasPaymaster({ url: stack.urls.service, session });
  return createSmartAccountClient({ account, chain, bundlerTransport: http(stack.urls.bundler), paymaster, userOperation: paymaster.userOperation, pollingInterval: 100 });
}

/** permissionless's smart account client with viem's createPaymasterClient at our /rpc and the session as ERC-7677 context. */
function viemPaymasterClient({ account, session }: { account: Funded["account"]; session: FiatGasSession }) {
  const paymaster = createPaymasterClient({ transport: http(`${stack.urls.service}/rpc`) });
  const { userOperation } = fiatGasPaymaster({ url: stack.urls.service, session });
  return createSmartAccountClient({ account, chain, bundlerTransport: http(stack.urls.bundler), paymaster, paymasterContext: { session: session.token }, userOperation, pollingInterval: 100 });
}

async function adminPolicy(): Promise<{ version: number; etag: string | null; policy: unknown }> {
  const response = await fetch(`${stack.urls.service}/admin/policy`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
  assert.equal(response.status, 200, await response.clone().text());
  const body = (await response.json()) as { version: number; policy: unknown };
  return { ...body, etag: response.headers.get("etag") };
}

async function putPolicy(policy: unknown, etag: string) {
  const response = await fetch(`${stack.urls.service}/admin/policy`, {
    method: "PUT",
    headers: { authorization: `Bearer ${stack.adminToken}`, "content-type": "application/json", "if-match": etag },
    body: JSON.stringify(policy),
  });
  assert.equal(response.status, 200, await response.text());
}

const accounts: Partial<Record<TopUpChannel, Funded>> = {};

describe("end to end against the local stack", () => {
  for (const channel of ["alipay", "wechatpay"] as const) {
    it(`${channel}: tops up ¥20 through the sandbox, lands a sponsored op through Alto, and is charged its gas cost to the fen`, async () => {
      const funded = await fundedAccount(channel, "20.00");
      accounts[channel] = funded;
      const { account, session } = funded;
      assert.deepEqual(await sdk.getBalance(session), { address: account.address, currency: "CNY", balanceFen: 2_000n, reservedFen: 0n, availableFen: 2_000n });

      // Alipay's op goes through the SDK's paymaster; WeChat's through viem's own ERC-7677 client, unmodified.
      const client = channel === "alipay" ? smartAccountClient(funded) : viemPaymasterClient(funded);
      const hash = await client.sendUserOperation({ calls: [{ to: TARGET, value: 0n, data: "0x" }] });
      const receipt = await client.waitForUserOperationReceipt({ hash, timeout: 30_000, pollingInterval: 100 });
      assert.equal(receipt.success, true);
      assert.equal(getAddress(receipt.paymaster!), getAddress(stack.contracts.paymasters["0.7"]));
      const [event] = parseEventLogs({ abi: entryPoint07Abi, logs: receipt.receipt.logs, eventName: "UserOperationEvent" }).filter((log) => log.args.userOpHash === hash);
      assert.ok(event, "the receipt carries the op's UserOperationEvent");
      assert.ok(event.args.actualGasCost > 0n);
      const charge = expectedChargeFen(event.args.actualGasCost);
      assert.ok(charge > 0n && charge < 2_000n, `a plausible charge: ${charge} fen`);

      const reserved = await sdk.getBalance(session);
      assert.equal(reserved.balanceFen, 2_000n, "nothing is charged before settlement");
      // Settlement: 2 confirmations at a block a second, polled every second.
      let balance = reserved;
      const settled = await within(20_000, async () => {
        balance = await sdk.getBalance(session);
        return balance.reservedFen === 0n && balance.balanceFen < 2_000n;
      }, 250);
      assert.ok(settled, `settled within 20 s: ${JSON.stringify(balance, (_, value: unknown) => (typeof value === "bigint" ? value.toString() : value))}`);
      assert.equal(balance.balanceFen, 2_000n - charge, `charged ceil(${event.args.actualGasCost} wei × ¥25,000.00) = ${charge} fen`);
      assert.equal(balance.availableFen, 2_000n - charge);
      assert.equal(await publicClient.getBalance({ address: account.address }), 0n, "the account never held ETH");

      // The operator sees the same settlement in the account lookup.
      const lookup = await fetch(`${stack.urls.service}/admin/accounts/${account.address}`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
      const { settledSponsorships } = (await lookup.json()) as { settledSponsorships: { userOpHash: string; chargedFen: string; actualGasCostWei: string; success: boolean }[] };
      assert.deepEqual(settledSponsorships.map(({ userOpHash, chargedFen, actualGasCostWei, success }) => [userOpHash, chargedFen, actualGasCostWei, success]), [
        [hash, charge.toString(), event.args.actualGasCost.toString(), true],
      ]);
    });
  }

  it("refuses an op whose worst case exceeds the balance with InsufficientBalanceError", async () => {
    const funded = await fundedAccount("alipay", "1.00");
    assert.equal((await sdk.getBalance(funded.session)).availableFen, 100n);
    // A 3 gwei tip (the default policy caps no tip; maxFeePerGas stays within 3× the base fee plus
    // the tip) makes the worst case of a first op, which deploys the account, far more than ¥1.
    const error = await smartAccountClient(funded)
      .sendUserOperation({ calls: [{ to: TARGET, value: 0n, data: "0x" }], maxFeePerGas: 3_000_000_000n, maxPriorityFeePerGas: 3_000_000_000n })
      .catch((e: unknown) => e);
    assert.ok(error instanceof InsufficientBalanceError, `got ${String(error)}`);
    assert.equal(error.code, "INSUFFICIENT_BALANCE");
    assert.equal(error.availableFen, 100n);
    assert.ok(error.neededFen! > 100n, `needed ${error.neededFen}`);
    assert.equal(error.shortfallFen, error.neededFen! - 100n);
    const balance = await sdk.getBalance(funded.session);
    assert.deepEqual([balance.balanceFen, balance.reservedFen], [100n, 0n], "nothing reserved, nothing charged");
  });

  it("refuses an op over the operator's per-operation charge limit with LimitError LIMIT_CHARGE, and the policy is restored", async () => {
    const funded = accounts.wechatpay;
    assert.ok(funded, "the wechatpay account from the first tests");
    const before = await sdk.getBalance(funded.session);
    const previous = await adminPolicy();
    assert.equal(previous.etag, `"${previous.version}"`);
    const limited = structuredClone(previous.policy) as { perOperation: Record<string, unknown> };
    limited.perOperation = { ...limited.perOperation, maxChargeFen: "1" };
    await putPolicy(limited, previous.etag!);
    let error: unknown;
    try {
      error = await smartAccountClient(funded)
        .sendUserOperation({ calls: [{ to: TARGET, value: 0n, data: "0x" }] })
        .catch((e: unknown) => e);
    } finally {
      const current = await adminPolicy();
      await putPolicy(previous.policy, current.etag!);
    }
    assert.ok(error instanceof LimitError, `got ${String(error)}`);
    assert.equal(error.code, "LIMIT_CHARGE");
    assert.deepEqual([error.limit, error.limitValue], ["perOperation.maxChargeFen", "1"]);
    assert.ok(BigInt(error.currentValue!) > 1n, "the op's worst-case charge");
    assert.deepEqual((await adminPolicy()).policy, previous.policy, "the previous policy is back");
    const after = await sdk.getBalance(funded.session);
    assert.deepEqual([after.balanceFen, after.reservedFen], [before.balanceFen, 0n], "nothing reserved, nothing charged");
  });

  it("refunds part of the remaining balance through Alipay: the sandbox's order shows it refunded, and the balance drops by exactly that", async () => {
    const funded = accounts.alipay;
    assert.ok(funded, "the alipay account from the first test");
    const before = await sdk.getBalance(funded.session);
    assert.ok(before.availableFen > 500n, `enough left to refund 5 yuan: ${before.availableFen}`);
    const refund = await sdk.requestRefund({ session: funded.session, amountFen: 500n });
    assert.equal(refund.refundedFen, 500n);
    assert.equal(refund.pendingFen, 0n);
    assert.deepEqual(refund.refunds.map(({ orderId, channel, fen, state }) => [orderId, channel, fen, state]), [[funded.orderId, "alipay", 500n, "succeeded"]]);

    const order = await fetch(`${stack.urls.sandbox}/sandbox/alipay/${funded.orderId}`);
    assert.equal(order.status, 200);
    const { refundedFen, amountFen } = (await order.json()) as { refundedFen: string; amountFen: string };
    assert.deepEqual([refundedFen, amountFen], ["500", "2000"]);
    const after = await sdk.getBalance(funded.session);
    assert.equal(after.balanceFen, before.balanceFen - 500n);
    assert.equal(after.reservedFen, 0n);
  });
});
