// Reconciliation end to end: the real service on a real anvil chain with both canonical EntryPoints,
// both gateway simulators (notifications held, so each test decides what the service hears), and
// the settlement worker running inside the service. A clean period reports zero differences; a
// period seeded with every kind of anomaly reports each with its cause; and the CLI agrees.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import Fastify, { type FastifyInstance } from "fastify";
import { type Address, encodeAbiParameters, keccak256, numberToHex, parseAbi, parseEther } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { ENTRYPOINT_ADDRESS, type EntryPointVersion } from "../../service/chain/entryPoints.ts";
import type { Channel } from "../../service/gateways/gateway.ts";
import { ledgerKeys } from "../../service/ledger/keys.ts";
import type { Mismatch, ReconciliationReport } from "../../service/reconciliation/report.ts";
import { createKeys } from "../../service/redis.ts";
import { settlementKeys } from "../../service/settlement/keys.ts";
import { type AlipaySimulator, createAlipaySimulator } from "../../scripts/sandbox/alipay.ts";
import type { NotificationDelivery, OutgoingNotification } from "../../scripts/sandbox/simulator.ts";
import { type WechatPaySimulator, createWechatPaySimulator } from "../../scripts/sandbox/wechatpay.ts";
import { main as reconcileCli } from "../../scripts/reconcile.ts";
import { signAsAccount } from "../support/aa.ts";
import { depositTo } from "../support/anvil.ts";
import { freePort } from "../support/redis.ts";
import { type ServiceStack, captureLog, localServiceEnv, startServiceStack } from "../support/serviceFixture.ts";
import { type FundedAccount, fundedAccount, includeOps, mine, sponsoredOp, unsignedOp } from "../support/settlementFixture.ts";
import { within } from "../support/wait.ts";

const CONFIRMATIONS = 2;
const balanceOfAbi = parseAbi(["function balanceOf(address account) view returns (uint256)"]);
const withdrawToAbi = parseAbi(["function withdrawTo(address to, uint256 amount)"]);

/** Holds every notification the simulators send, for the test to deliver (or never deliver). */
function heldDelivery() {
  const held: OutgoingNotification[] = [];
  const delivery: NotificationDelivery = { send: (notification) => void held.push(notification) };
  return { delivery, take: () => held.splice(0, held.length) };
}

/** Delivers one notification as the gateway would; true if the service acknowledged it. */
async function deliver(notification: OutgoingNotification): Promise<boolean> {
  const build = notification.build();
  const response = await fetch(notification.url, { method: "POST", headers: build.headers, body: build.body });
  return notification.acknowledged(response.status, await response.text());
}

const log = captureLog();
const held = heldDelivery();
let gatewayApp: FastifyInstance;
let alipay: AlipaySimulator;
let wechatpay: WechatPaySimulator;
let stack: ServiceStack;
let gatewayEnv: Record<string, string>;

before(async () => {
  const gatewayPort = await freePort();
  const baseUrl = `http://127.0.0.1:${gatewayPort}`;
  gatewayApp = Fastify();
  alipay = createAlipaySimulator({ baseUrl, delivery: held.delivery });
  wechatpay = createWechatPaySimulator({ baseUrl, delivery: held.delivery, refundSettlement: "manual" });
  await alipay.register(gatewayApp);
  await wechatpay.register(gatewayApp);
  await gatewayApp.listen({ host: "127.0.0.1", port: gatewayPort });
  const port = await freePort();
  gatewayEnv = { ...alipay.merchantEnvironment(), ...wechatpay.merchantEnvironment(), PUBLIC_BASE_URL: `http://127.0.0.1:${port}` };
  stack = await startServiceStack(
    {
      ...gatewayEnv,
      PORT: String(port),
      SETTLEMENT_CONFIRMATIONS: String(CONFIRMATIONS),
      SETTLEMENT_POLL_MS: "100",
      // The tests decide when a missed notification is recovered: never, here.
      TOPUP_RECOVERY_INTERVAL_SECONDS: "3600",
    },
    { logger: { level: "info", stream: log.stream } },
  );
});
after(async () => {
  await stack?.stop();
  await gatewayApp?.close();
});

const simulatorOf = (channel: Channel) => (channel === "alipay" ? alipay : wechatpay);
const now = () => Math.floor(Date.now() / 1000);

/**
 * A period boundary: a second after both the clock and the chain's newest block, waited out. Orders
 * and blocks before it have earlier timestamps, anything after it later ones (anvil stamps new
 * blocks with the clock), so consecutive periods never share an order or a block.
 */
async function boundary(): Promise<number> {
  const head = await stack.anvil.publicClient.getBlock({ blockTag: "latest" });
  const at = Math.max(now(), Number(head.timestamp)) + 1;
  while (Date.now() < at * 1000) await new Promise((resolve) => setTimeout(resolve, 20));
  return at;
}

async function report(from: number | string, to: number | string, headers: Record<string, string> = { authorization: `Bearer ${stack.adminToken}` }) {
  const response = await fetch(`${stack.url}/admin/reconciliation?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, { headers });
  return { status: response.status, body: (await response.json()) as ReconciliationReport & { error?: { code: string; message: string; data: { issues: { path: string; message: string }[] } } } };
}

/** A signed-in SimpleAccount (not deployed yet) with no balance. */
async function newUser(version: EntryPointVersion): Promise<FundedAccount> {
  const account = await stack.newAccount(version);
  return { ...account, session: await stack.signIn(account) };
}

/** Opens a top-up order for `account`; `paid` pays it at the gateway and `delivered` delivers the payment notification. */
async function topUp(channel: Channel, account: Address, amount: string, { paid = true, delivered = true } = {}) {
  const { status, body } = await stack.post<Record<string, string>>("/v1/topups", { account, amount, currency: "CNY", channel });
  assert.equal(status, 201, JSON.stringify(body));
  held.take();
  if (paid) {
    simulatorOf(channel).pay(body.orderId);
    const notifications = held.take();
    if (delivered) assert.ok(await deliver(notifications[0]), "the payment notification is acknowledged");
  }
  return body.orderId;
}

async function refund(user: FundedAccount, amountFen: string) {
  const { status, body } = await stack.post<{ refunds: { refundId: string; state: string }[] }>(`/v1/accounts/${user.sender}/refunds`, { amountFen }, { authorization: `Bearer ${user.session}` });
  assert.equal(status, 200, JSON.stringify(body));
  return body.refunds[0];
}

const depositOf = (version: EntryPointVersion, blockNumber: bigint) =>
  stack.anvil.publicClient.readContract({ address: ENTRYPOINT_ADDRESS[version], abi: balanceOfAbi, functionName: "balanceOf", args: [stack.deployment(version).paymaster], blockNumber });

/** Every mismatch's difference adds up to its section's: nothing in a difference is left unexplained. */
function assertDifferencesExplained(body: ReconciliationReport) {
  for (const [channel, figures] of Object.entries(body.gateways)) {
    const explained = body.mismatches.filter((mismatch) => mismatch.details.channel === channel).reduce((sum, mismatch) => sum + BigInt(mismatch.differenceFen ?? "0"), 0n);
    assert.equal(explained.toString(), figures.differenceFen, `${channel}: the mismatches explain the difference`);
  }
  for (const [version, figures] of Object.entries(body.ledgerVsChain)) {
    const explained = body.mismatches.filter((mismatch) => mismatch.section === "ledgerVsChain" && mismatch.details.entryPointVersion === version).reduce((sum, mismatch) => sum + BigInt(mismatch.differenceWei ?? "0"), 0n);
    assert.equal(explained.toString(), figures.differenceWei, `v${version}: the mismatches explain the difference`);
  }
}

const kinds = (mismatches: Mismatch[]) => mismatches.map((mismatch) => mismatch.kind).sort();

/** What the clean period and the anomalies period did, for the assertions and the CLI tests. */
const clean = { from: 0, to: 0, costs: {} as Record<EntryPointVersion, bigint>, alipayOrder: "" };
const seeded = { from: 0, to: 0, stuckOrder: "", stuckAccount: "" as Address, pendingRefund: "", strayHash: "", strayCost: 0n, unsettledHash: "", unsettledCost: 0n, unsettledSender: "" as Address };

describe("a clean period", () => {
  it("reports zero difference everywhere and clean=true: top-ups paid and credited, refunds, sponsored ops landed and settled", async () => {
    clean.from = await boundary();
    // Alipay: ¥100.00 paid and credited, ¥20.00 refunded through our refund API (Alipay answers at once).
    const userA = await newUser("0.7");
    clean.alipayOrder = await topUp("alipay", userA.sender, "100.00");
    assert.equal((await refund(userA, "2000")).state, "succeeded");
    for (const notification of held.take()) assert.ok(await deliver(notification), "the refund's TRADE_SUCCESS changes nothing");
    // WeChat Pay: ¥80.00 paid and credited, ¥5.00 refunded in the merchant console, and an order left unpaid.
    const userB = await newUser("0.8");
    const wechatOrder = await topUp("wechatpay", userB.sender, "80.00");
    wechatpay.refundFromConsole(wechatOrder, 500n);
    assert.ok(await deliver(held.take()[0]), "the console refund's notification debits the account");
    await topUp("wechatpay", userB.sender, "3.00", { paid: false });
    // One sponsored op on each EntryPoint, paid from those balances, landed and settled.
    const landed: Record<string, { blockNumber: bigint; cost: bigint }> = {};
    for (const [version, user] of [["0.7", userA], ["0.8", userB]] as const) {
      const { signed } = await sponsoredOp(stack, version, user);
      const { receipt, events: [event] } = await includeOps(stack, version, [signed]);
      landed[version] = { blockNumber: receipt.blockNumber, cost: event.args.actualGasCost };
      clean.costs[version] = event.args.actualGasCost;
    }
    await mine(stack, CONFIRMATIONS);
    assert.ok(await within(15_000, async () => (await stack.service.ledger.settled(userA.sender)).length === 1 && (await stack.service.ledger.settled(userB.sender)).length === 1), "both ops settle");
    const lastBlock = landed["0.7"].blockNumber > landed["0.8"].blockNumber ? landed["0.7"].blockNumber : landed["0.8"].blockNumber;
    assert.ok(await within(15_000, async () => ((await stack.service.settlement.progress()).settledBlock ?? -1n) >= lastBlock), "settled-through passes them");
    clean.to = await boundary();

    const { status, body } = await report(clean.from, clean.to);
    assert.equal(status, 200, JSON.stringify(body));
    assert.deepEqual(body.mismatches, []);
    assert.equal(body.clean, true);
    assert.equal(body.period.complete, true);
    assert.deepEqual(body.gateways, {
      alipay: { orders: 1, unverifiedOrders: 0, paidFen: "10000", creditedFen: "10000", refundedFen: "2000", debitedFen: "2000", paymentsDifferenceFen: "0", refundsDifferenceFen: "0", differenceFen: "0" },
      wechatpay: { orders: 2, unverifiedOrders: 0, paidFen: "8000", creditedFen: "8000", refundedFen: "500", debitedFen: "500", paymentsDifferenceFen: "0", refundsDifferenceFen: "0", differenceFen: "0" },
    });
    for (const version of ["0.7", "0.8"] as const) {
      const { cost, blockNumber } = landed[version];
      assert.deepEqual(body.ledgerVsChain[version], { entryPoint: ENTRYPOINT_ADDRESS[version], paymaster: stack.deployment(version).paymaster, events: 1, chargedWei: cost.toString(), chainWei: cost.toString(), differenceWei: "0" });
      // actualGasCost is exactly what the real EntryPoint took from the paymaster's deposit, read independently here.
      assert.equal((await depositOf(version, blockNumber - 1n)) - (await depositOf(version, blockNumber)), cost, `v${version}: the deposit fell by actualGasCost`);
      const deposit = body.chainVsDeposit[version]!;
      assert.equal(BigInt(deposit.startDepositWei) - BigInt(deposit.endDepositWei), cost);
      assert.deepEqual({ ...deposit, startDepositWei: "", endDepositWei: "" }, { entryPoint: ENTRYPOINT_ADDRESS[version], paymaster: stack.deployment(version).paymaster, startDepositWei: "", endDepositWei: "", depositedWei: "0", withdrawnWei: "0", chainWei: cost.toString(), differenceWei: "0" });
      assert.ok(body.period.fromBlock <= Number(blockNumber) && Number(blockNumber) <= body.period.toBlock, "the op's block is in the period");
    }
    assert.deepEqual(body.settlement.anomalies, []);
    assert.ok(body.settlement.settledThroughBlock !== null && body.settlement.settledThroughBlock >= Number(landed["0.8"].blockNumber));
  });

  it("accepts the same period as ISO 8601 in any offset, and audits the call", async () => {
    const beijing = (seconds: number) => new Date((seconds + 8 * 3600) * 1000).toISOString().replace(/\.000Z$/, "+08:00");
    const from = log.lines.length;
    const { status, body } = await report(beijing(clean.from), beijing(clean.to), { authorization: `Bearer ${stack.adminToken}`, "x-admin-actor": "auditor@fiatgas" });
    assert.equal(status, 200);
    assert.equal(body.period.fromUnix, clean.from);
    assert.equal(body.period.toUnix, clean.to);
    assert.equal(body.clean, true);
    const audit = log.lines.slice(from).map((line) => JSON.parse(line) as Record<string, unknown>).find((entry) => entry.msg === "admin call");
    assert.deepEqual([audit?.actor, audit?.route, audit?.status, audit?.outcome], ["auditor@fiatgas", "GET /admin/reconciliation", 200, "ok"]);
  });
});

describe("a period seeded with each kind of anomaly", () => {
  it("lists each mismatch with its cause, and explains deposits and withdrawals", async () => {
    seeded.from = await boundary();
    // Paid at Alipay, but the notification is never delivered: stuck.
    const userC = await newUser("0.7");
    seeded.stuckAccount = userC.sender;
    seeded.stuckOrder = await topUp("alipay", userC.sender, "11.00", { delivered: false });
    // A WeChat refund debited here and still processing at the gateway.
    const userD = await newUser("0.7");
    await topUp("wechatpay", userD.sender, "30.00");
    seeded.pendingRefund = (await refund(userD, "1000")).refundId;
    // An op for our paymaster with no reservation: signed with the signer's key directly, bypassing the service.
    const stray = await newUser("0.7");
    const paymaster = stack.deployment("0.7").paymaster;
    const op = { ...unsignedOp(stray), paymaster, paymasterVerificationGasLimit: 30_000n, paymasterPostOpGasLimit: 0n };
    const paymasterData = await stack.service.signer.paymasterData({ userOperation: op, entryPointVersion: "0.7", paymaster, validUntil: now() + 300, validAfter: 0 });
    const { events: [strayEvent] } = await includeOps(stack, "0.7", [await signAsAccount({ ...op, paymasterData }, "0.7", stack.anvil.chainId, stray.owner)]);
    seeded.strayHash = strayEvent.args.userOpHash;
    seeded.strayCost = strayEvent.args.actualGasCost;
    await mine(stack, CONFIRMATIONS);
    assert.ok(await within(15_000, async () => (await stack.service.settlement.anomalies.list()).some((anomaly) => anomaly.id === seeded.strayHash)), "settlement records it");
    // The operator tops the v0.8 deposit up directly and withdraws from the v0.7 one.
    await depositTo(stack.anvil, stack.deployment("0.8").paymaster, parseEther("1"));
    const withdrawal = await stack.anvil.walletClient.writeContract({ address: paymaster, abi: withdrawToAbi, functionName: "withdrawTo", args: [privateKeyToAccount(generatePrivateKey()).address, parseEther("0.5")], account: stack.anvil.walletClient.account, chain: stack.anvil.chain });
    assert.equal((await stack.anvil.publicClient.waitForTransactionReceipt({ hash: withdrawal })).status, "success");
    // An op that lands while settlement is stopped.
    await stack.service.settlement.stop();
    const late = await fundedAccount(stack, "0.8");
    const { signed } = await sponsoredOp(stack, "0.8", late);
    const { events: [lateEvent] } = await includeOps(stack, "0.8", [signed]);
    seeded.unsettledHash = lateEvent.args.userOpHash;
    seeded.unsettledCost = lateEvent.args.actualGasCost;
    seeded.unsettledSender = late.sender;
    await mine(stack, CONFIRMATIONS);
    seeded.to = await boundary();

    const { status, body } = await report(seeded.from, seeded.to);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.clean, false);
    assert.deepEqual(kinds(body.mismatches), ["not_yet_settled", "refund_pending", "stuck_order", "unmatched_event"], JSON.stringify(body.mismatches, null, 2));
    const byKind = Object.fromEntries(body.mismatches.map((mismatch) => [mismatch.kind, mismatch]));

    const { tradeNo, ...stuck } = byKind.stuck_order.details;
    assert.match(String(tradeNo), /^\d{16,}$/, "the gateway's trade number");
    assert.deepEqual(stuck, { orderId: seeded.stuckOrder, account: userC.sender, channel: "alipay", state: "pending", orderFen: "1100", gatewayState: "paid", gatewayPaidFen: "1100", creditedFen: "0", gatewayCurrency: "CNY" });
    assert.equal(byKind.stuck_order.differenceFen, "-1100");
    assert.match(byKind.stuck_order.cause, /still pending here: its payment notification never arrived/);

    assert.equal(byKind.refund_pending.details.refundId, seeded.pendingRefund);
    assert.equal(byKind.refund_pending.details.gatewayState, "processing");
    assert.equal(byKind.refund_pending.differenceFen, "-1000");
    assert.match(byKind.refund_pending.cause, /debited here and is still processing at the gateway/);

    assert.deepEqual([byKind.unmatched_event.details.userOpHash, byKind.unmatched_event.details.anomalyKind, byKind.unmatched_event.details.sender], [seeded.strayHash, "no_reservation", stray.sender]);
    assert.equal(byKind.unmatched_event.differenceWei, (-seeded.strayCost).toString());
    assert.match(byKind.unmatched_event.cause, /no_reservation.*nobody was charged/);

    assert.deepEqual([byKind.not_yet_settled.details.userOpHash, byKind.not_yet_settled.details.entryPointVersion], [seeded.unsettledHash, "0.8"]);
    assert.ok((byKind.not_yet_settled.details.settledThroughBlock as number) < (byKind.not_yet_settled.details.blockNumber as number));
    assert.equal(byKind.not_yet_settled.differenceWei, (-seeded.unsettledCost).toString());

    assert.deepEqual(body.gateways.alipay, { orders: 1, unverifiedOrders: 0, paidFen: "1100", creditedFen: "0", refundedFen: "0", debitedFen: "0", paymentsDifferenceFen: "-1100", refundsDifferenceFen: "0", differenceFen: "-1100" });
    assert.deepEqual(body.gateways.wechatpay, { orders: 1, unverifiedOrders: 0, paidFen: "3000", creditedFen: "3000", refundedFen: "0", debitedFen: "1000", paymentsDifferenceFen: "0", refundsDifferenceFen: "1000", differenceFen: "-1000" });
    assert.deepEqual(body.ledgerVsChain["0.7"], { entryPoint: ENTRYPOINT_ADDRESS["0.7"], paymaster, events: 1, chargedWei: "0", chainWei: seeded.strayCost.toString(), differenceWei: (-seeded.strayCost).toString() });
    assert.equal(body.ledgerVsChain["0.8"]?.chainWei, seeded.unsettledCost.toString());
    assert.equal(body.ledgerVsChain["0.8"]?.chargedWei, "0");
    assertDifferencesExplained(body);

    // The deposit moved by the deposit, the withdrawal and the gas exactly: no mismatch for it.
    const v07 = body.chainVsDeposit["0.7"]!;
    assert.deepEqual([v07.depositedWei, v07.withdrawnWei, v07.chainWei, v07.differenceWei], ["0", parseEther("0.5").toString(), seeded.strayCost.toString(), "0"]);
    assert.equal(BigInt(v07.startDepositWei) - BigInt(v07.endDepositWei), parseEther("0.5") + seeded.strayCost);
    const v08 = body.chainVsDeposit["0.8"]!;
    assert.deepEqual([v08.depositedWei, v08.withdrawnWei, v08.chainWei, v08.differenceWei], [parseEther("1").toString(), "0", seeded.unsettledCost.toString(), "0"]);

    assert.deepEqual(body.settlement.anomalies.map((anomaly) => [anomaly.kind, anomaly.id]), [["no_reservation", seeded.strayHash]]);
  });

  it("clears each cause once it is resolved: only the unmatched event stays", async () => {
    await stack.service.settlement.start();
    held.take();
    // The recovery job finds the paid order at the gateway; the refund completes there and is notified.
    const stuck = await stack.service.topUps.recover({ olderThan: 0 });
    assert.ok(stuck.credited >= 1, JSON.stringify(stuck));
    wechatpay.settleRefund(seeded.pendingRefund, "SUCCESS");
    assert.ok(await deliver(held.take()[0]));
    await mine(stack, CONFIRMATIONS);
    assert.ok(await within(15_000, async () => (await stack.service.ledger.settled(seeded.unsettledSender)).length === 1), "the late op settles once settlement runs again");

    const { body } = await report(seeded.from, seeded.to);
    assert.deepEqual(kinds(body.mismatches), ["unmatched_event"]);
    assert.equal(body.gateways.alipay?.differenceFen, "0");
    assert.equal(body.gateways.wechatpay?.refundedFen, "1000");
    assert.equal(body.ledgerVsChain["0.8"]?.differenceWei, "0");
    assertDifferencesExplained(body);
  });
});

describe("the route's input", () => {
  it("is in the OpenAPI docs under admin, with its query and its report", async () => {
    const docs = (await (await fetch(`${stack.url}/docs/json`)).json()) as { paths: Record<string, { get?: { tags: string[]; parameters: { name: string; in: string; required: boolean }[]; responses: Record<string, { content: Record<string, { schema: { properties: Record<string, unknown> } }> }> } }> };
    const route = docs.paths["/admin/reconciliation"]?.get;
    assert.deepEqual(route?.tags, ["admin"]);
    assert.deepEqual(route?.parameters.filter((parameter) => parameter.in === "query").map(({ name, required }) => [name, required]).sort(), [["from", true], ["to", true]]);
    assert.deepEqual(Object.keys(route?.responses["200"].content["application/json"].schema.properties ?? {}).sort(), ["chainVsDeposit", "clean", "currency", "gateways", "ledgerVsChain", "mismatches", "period", "settlement"]);
  });

  it("needs the admin token", async () => {
    const { status, body } = await report(clean.from, clean.to, {});
    assert.equal(status, 401);
    assert.equal(body.error?.code, "UNAUTHENTICATED");
  });

  it("refuses a bad period with a clear 400 naming the field", async () => {
    const cases: [string, string, string, RegExp][] = [
      ["yesterday", "2025-06-02", "from", /must be an ISO 8601 date or time/],
      ["2025-06-02", "2025-06-01", "to", /must be after from/],
      ["2025-06-01", "2025-07-03", "to", /at most 31 days after from/],
      [String(now() + 3600), String(now() + 7200), "from", /must be in the past/],
      ["2025-06-01T00:00:00.250Z", "2025-06-02", "from", /must be an ISO 8601/],
    ];
    for (const [from, to, path, message] of cases) {
      const { status, body } = await report(from, to);
      assert.equal(status, 400, `${from} ${to}`);
      assert.equal(body.error?.code, "INVALID_PARAMS");
      assert.equal(body.error?.data.issues[0].path, path);
      assert.match(body.error!.data.issues[0].message, message);
    }
    const missing = await fetch(`${stack.url}/admin/reconciliation?from=2025-06-01`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
    assert.equal(missing.status, 400);
  });
});

describe("npm run reconcile", () => {
  /** The service's environment, as an operator would export it for the CLI. */
  const cliEnv = (overrides: Record<string, string> = {}) => ({
    ...localServiceEnv({ anvil: stack.anvil, redis: stack.redis, deployments: stack.deployments, signerKey: generatePrivateKey() }),
    ...gatewayEnv,
    ...overrides,
  });
  async function run(argv: string[], env: Record<string, string | undefined>) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await reconcileCli(argv, env, { out: (text) => out.push(text), err: (text) => err.push(text) });
    return { code, out: out.join("\n"), err: err.join("\n") };
  }

  it("exits 0 on a clean period and prints a readable report", async () => {
    const { code, out, err } = await run(["--from", String(clean.from), "--to", String(clean.to)], cliEnv());
    assert.equal(code, 0, err);
    assert.match(out, /^Reconciliation /);
    assert.match(out, /alipay\s+1\s+100\.00 CNY\s+100\.00 CNY\s+20\.00 CNY\s+20\.00 CNY\s+0\.00 CNY/);
    assert.match(out, /Clean: no mismatch, every difference is zero\./);
  });

  it("exits 1 with --json when there are mismatches, the same report as the route", async () => {
    const { code, out } = await run(["--json"], cliEnv({ FROM: String(seeded.from), TO: String(seeded.to) }));
    assert.equal(code, 1);
    const printed = JSON.parse(out) as ReconciliationReport;
    assert.deepEqual(kinds(printed.mismatches), ["unmatched_event"]);
    const { body } = await report(seeded.from, seeded.to);
    // Made moments apart: only the time and how far settlement has read may differ.
    const comparable = (value: ReconciliationReport) => ({ ...value, period: { ...value.period, asOf: "" }, settlement: { ...value.settlement, settledThroughBlock: 0 } });
    assert.deepEqual(comparable(printed), comparable(body));
  });

  it("reports a gateway it cannot reach as gateway_unreachable and leaves its orders out of the figures", async () => {
    const closed = `http://127.0.0.1:${await freePort()}/alipay/gateway.do`;
    const { code, out } = await run(["--from", String(clean.from), "--to", String(clean.to), "--json"], cliEnv({ ALIPAY_GATEWAY_URL: closed }));
    assert.equal(code, 1);
    const printed = JSON.parse(out) as ReconciliationReport;
    assert.deepEqual(kinds(printed.mismatches), ["gateway_unreachable"]);
    assert.equal(printed.mismatches[0].details.orderId, clean.alipayOrder);
    assert.match(printed.mismatches[0].cause, /alipay gateway did not answer/);
    assert.deepEqual([printed.gateways.alipay?.orders, printed.gateways.alipay?.unverifiedOrders, printed.gateways.alipay?.paidFen, printed.gateways.alipay?.creditedFen], [1, 1, "0", "0"]);
    assert.equal(printed.gateways.wechatpay?.paidFen, "8000", "the other channel is still checked");
  });

  it("exits 2 on bad flags or configuration, and 3 when Redis does not answer", async () => {
    const bad = await run(["--from", "2025-06-01", "--to", "nope"], cliEnv());
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--to must be an ISO 8601 date or time/);
    const missing = await run(["--to", "2025-06-02"], cliEnv());
    assert.equal(missing.code, 2);
    assert.match(missing.err, /--from is required/);
    const unknown = await run(["--from", "2025-06-01", "--to", "2025-06-02", "--period", "x"], cliEnv());
    assert.equal(unknown.code, 2);
    const config = await run(["--from", "2025-06-01", "--to", "2025-06-02"], { ...cliEnv(), REDIS_URL: "http://nope" });
    assert.equal(config.code, 2);
    assert.match(config.err, /REDIS_URL/);
    const down = await run(["--from", String(clean.from), "--to", String(clean.to)], cliEnv({ REDIS_URL: `redis://127.0.0.1:${await freePort()}` }));
    assert.equal(down.code, 3);
    assert.match(down.err, /Redis at REDIS_URL does not answer/);
  });
});

describe("books that disagree with the chain or the gateways", () => {
  it("finds a reorged settled record, a charge with no event, a credit with no payment, a refund the gateway never made, an unexplained deposit change and a reorg anomaly", async () => {
    const from = await boundary();
    const redis = stack.redis.client();
    const keys = createKeys(stack.config.REDIS_KEY_PREFIX);
    const user = await newUser("0.7");
    const orderId = await topUp("wechatpay", user.sender, "80.00");
    const { refundId } = await refund(user, "500");
    const { signed, userOpHash } = await sponsoredOp(stack, "0.7", user);
    const { events: [event] } = await includeOps(stack, "0.7", [signed]);
    await mine(stack, CONFIRMATIONS);
    assert.ok(await within(15_000, async () => (await stack.service.ledger.settled(user.sender)).length === 1), "the op settles");

    // The settled record names another block hash, as after a reorg deeper than the confirmations;
    // and a second record charges an op the chain never saw.
    const settledKey = ledgerKeys(keys).settled(user.sender);
    const record = JSON.parse((await redis.hget(settledKey, userOpHash))!) as Record<string, unknown>;
    const reorgedHash = `0x${"ab".repeat(32)}`;
    const phantomHash = `0x${"cd".repeat(32)}`;
    await redis.hset(settledKey, userOpHash, JSON.stringify({ ...record, blockHash: reorgedHash }), phantomHash, JSON.stringify({ ...record, userOpHash: phantomHash }));
    // Our refund recorded as succeeded while the gateway still has it processing.
    const refundsKey = keys.orderRefunds(user.sender, orderId);
    await redis.hset(refundsKey, refundId, JSON.stringify({ ...JSON.parse((await redis.hget(refundsKey, refundId))!), state: "succeeded" }));
    // A credit in the journal for an order nobody paid.
    const unpaid = await topUp("wechatpay", user.sender, "7.00", { paid: false });
    await redis.xadd(keys.journal(user.sender), "*", "type", "credit", "orderId", unpaid, "fen", "700", "at", String(now()));
    // The v0.7 deposit changes without any event: its storage slot (deposits[paymaster].deposit, slot 0's mapping) is written.
    const paymaster = stack.deployment("0.7").paymaster;
    const head = await stack.anvil.publicClient.getBlockNumber({ cacheTime: 0 });
    const before = await depositOf("0.7", head);
    const slot = keccak256(encodeAbiParameters([{ type: "address" }, { type: "uint256" }], [paymaster, 0n]));
    await stack.anvil.testClient.setStorageAt({ address: ENTRYPOINT_ADDRESS["0.7"], index: slot, value: numberToHex(before + 12_345n, { size: 32 }) });
    await mine(stack, 1);
    assert.equal(await depositOf("0.7", head + 1n), before + 12_345n, "the slot is the deposit's");
    // Settlement saw blocks it had read replaced.
    await redis.hset(settlementKeys(stack.config.REDIS_KEY_PREFIX).anomalies, "reorg:test", JSON.stringify({ kind: "reorg", id: "test", at: now(), details: { orphanedFrom: "1", orphanedTo: "2", rewoundTo: "0" } }));
    const to = await boundary();

    const { status, body } = await report(from, to);
    assert.equal(status, 200, JSON.stringify(body));
    assert.deepEqual(kinds(body.mismatches), ["credit_without_payment", "deposit_unexplained", "refund_not_at_gateway", "settled_block_mismatch", "settled_without_event", "settlement_anomaly"], JSON.stringify(body.mismatches, null, 2));
    const byKind = Object.fromEntries(body.mismatches.map((mismatch) => [mismatch.kind, mismatch]));
    assert.deepEqual([byKind.settled_block_mismatch.details.userOpHash, byKind.settled_block_mismatch.details.settledBlockHash, byKind.settled_block_mismatch.differenceWei], [userOpHash, reorgedHash, "0"]);
    assert.deepEqual([byKind.settled_without_event.details.userOpHash, byKind.settled_without_event.differenceWei], [phantomHash, event.args.actualGasCost.toString()]);
    assert.deepEqual([byKind.credit_without_payment.details.orderId, byKind.credit_without_payment.details.gatewayState, byKind.credit_without_payment.differenceFen], [unpaid, "pending", "700"]);
    assert.deepEqual([byKind.refund_not_at_gateway.details.refundId, byKind.refund_not_at_gateway.details.gatewayState, byKind.refund_not_at_gateway.differenceFen], [refundId, "processing", "-500"]);
    assert.deepEqual([byKind.deposit_unexplained.details.entryPointVersion, byKind.deposit_unexplained.differenceWei], ["0.7", "12345"]);
    assert.equal(byKind.settlement_anomaly.details.anomalyKind, "reorg");
    assert.deepEqual(body.ledgerVsChain["0.7"]?.differenceWei, event.args.actualGasCost.toString(), "charged twice the cost: once for the op, once for the phantom");
    assert.equal(body.chainVsDeposit["0.8"]?.differenceWei, "0");
    assertDifferencesExplained(body);
  });
});
