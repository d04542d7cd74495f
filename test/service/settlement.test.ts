// Settlement end to end with the worker running inside the service, on a real anvil chain: an op is
// reserved over ERC-7677, lands in a real handleOps, and the worker charges its actual cost at the
// locked rate; or releases its reservation once it can no longer land. Also the deposit guard and
// its in-flight cap. The expiry test moves the chain's clock, so it runs last.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { numberToHex, parseAbi, parseEther } from "viem";

import { ENTRYPOINT_ADDRESS, ENTRYPOINT_VERSIONS, type EntryPointVersion } from "../../service/chain/entryPoints.ts";
import { reservationSlot } from "../../service/ledger/ledger.ts";
import type { PolicyDocument } from "../../service/risk/policy.ts";
import { settlementKeys } from "../../service/settlement/keys.ts";
import { main as operatorCli } from "../../scripts/operator/cli.ts";
import { executeCall, signAsAccount } from "../support/aa.ts";
import { FIXTURE_POLICY, type ServiceStack, captureLog, startServiceStack } from "../support/serviceFixture.ts";
import { TARGET, fundedAccount, includeOps, mine, requestFinal, sponsoredOp, unsignedOp } from "../support/settlementFixture.ts";
import { within } from "../support/wait.ts";

const log = captureLog();
let stack: ServiceStack;
before(async () => {
  stack = await startServiceStack(
    { SETTLEMENT_CONFIRMATIONS: "2", SETTLEMENT_POLL_MS: "100", SETTLEMENT_NONCE_CHECK_SECONDS: "1", DEPOSIT_MAX_AGE_SECONDS: "30" },
    { logger: { level: "warn", stream: log.stream } },
  );
});
after(() => stack.stop());

const CONFIRMATIONS = 2;
/** (500k + 100k + 60k + 30k paymaster) gas × 3 gwei: the worst case every op here reserves. */
const MAX_WEI = 2_070_000_000_000_000n;
/** ¥25,000.00/ETH is 2,500,000 fen/ETH; × 1.1 markup, rounded up to the fen, + 1 fen fee (the fixture's terms). */
const handCharge = (wei: bigint) => (wei * 2_500_000n * 11n + 10n * 10n ** 18n - 1n) / (10n * 10n ** 18n) + 1n;

const ledger = () => stack.service.ledger;
const metrics = async () => (await fetch(`${stack.url}/metrics`)).text();
const metric = (text: string, name: string, labels: string) => Number(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, "m").exec(text)?.[1] ?? "NaN");

async function setPolicy(document: PolicyDocument) {
  await stack.service.policies.put(document, { expectedVersion: stack.service.policies.current().version, actor: "settlement-test" });
  await stack.service.depositGuard.refresh();
}

/** Lets the worker see the op's block as confirmed, then waits until `done` holds. */
async function confirmAndWait(done: () => Promise<boolean>, what: string) {
  await mine(stack, CONFIRMATIONS);
  assert.ok(await within(15_000, done), `${what} within 15 s`);
}

for (const version of ENTRYPOINT_VERSIONS) {
  describe(`settlement on EntryPoint v${version}`, () => {
    it("reserves, lands, and charges the actual cost at the locked rate to the fen, releasing the rest", async () => {
      const account = await fundedAccount(stack, version);
      const inFlightBefore = await ledger().inFlightWei(version);
      const { signed, userOpHash } = await sponsoredOp(stack, version, account);
      const [reservation] = await ledger().reservations(account.sender);
      assert.equal(reservation.chargeFen, handCharge(MAX_WEI), "the worst case: 2.07e15 wei is ¥56.925, 5,693 fen, + 1");
      assert.equal(reservation.maxWei, MAX_WEI);
      assert.equal(await ledger().inFlightWei(version), inFlightBefore + MAX_WEI);

      const { receipt, events: [event] } = await includeOps(stack, version, [signed]);
      assert.equal(event.args.userOpHash, userOpHash);
      assert.equal(event.args.success, true);
      await confirmAndWait(async () => (await ledger().reservations(account.sender)).length === 0, "the op settles");

      const charged = handCharge(event.args.actualGasCost);
      assert.ok(charged > 1n && charged < reservation.chargeFen, `${charged} fen: the actual cost, below the worst case`);
      assert.deepEqual(await ledger().balance(account.sender), { balanceFen: 1_000_000n - charged, reservedFen: 0n, availableFen: 1_000_000n - charged });
      const [settled] = await ledger().settled(account.sender);
      assert.deepEqual(
        { hash: settled.userOpHash, charged: settled.chargedFen, held: settled.heldFen, cost: settled.actualGasCost, block: settled.blockNumber, tx: settled.transactionHash, success: settled.success },
        { hash: userOpHash, charged, held: reservation.chargeFen, cost: event.args.actualGasCost, block: receipt.blockNumber, tx: receipt.transactionHash, success: true },
      );
      assert.equal(await ledger().inFlightWei(version), inFlightBefore, "its wei in flight was given back");
    });

    it("charges an op whose call failed: the paymaster paid for it", async () => {
      const account = await fundedAccount(stack, version);
      // The account holds no ETH, so sending 1 wei reverts inside execute(): success = false.
      const { signed } = await sponsoredOp(stack, version, account, unsignedOp(account, { callData: executeCall(TARGET, 1n, "0x") }));
      const { events: [event] } = await includeOps(stack, version, [signed]);
      assert.equal(event.args.success, false);
      assert.ok(event.args.actualGasCost > 0n);
      await confirmAndWait(async () => (await ledger().settled(account.sender)).length === 1, "the failed op settles");
      const charged = handCharge(event.args.actualGasCost);
      assert.deepEqual(await ledger().balance(account.sender), { balanceFen: 1_000_000n - charged, reservedFen: 0n, availableFen: 1_000_000n - charged });
      assert.equal((await ledger().settled(account.sender))[0].success, false);
    });
  });
}

describe("duplicates and unmatched events", () => {
  it("charges once when the same event is read again", async () => {
    const account = await fundedAccount(stack, "0.7");
    const { signed } = await sponsoredOp(stack, "0.7", account);
    const { receipt } = await includeOps(stack, "0.7", [signed]);
    await confirmAndWait(async () => (await ledger().settled(account.sender)).length === 1, "the op settles");
    const balance = await ledger().balance(account.sender);
    const duplicatesBefore = metric(await metrics(), "fiatgas_settlement_events_total", 'outcome="duplicate"') || 0;

    // Put the reader's cursor back before the op's block, as a restart from an older cursor would.
    const keys = settlementKeys(stack.service.config.REDIS_KEY_PREFIX);
    const earlier = await stack.anvil.publicClient.getBlock({ blockNumber: receipt.blockNumber - 1n });
    await stack.service.redis.hset(keys.cursor, { block: earlier.number.toString(), hash: earlier.hash, timestamp: earlier.timestamp.toString() });
    assert.ok(
      await within(15_000, async () => metric(await metrics(), "fiatgas_settlement_events_total", 'outcome="duplicate"') > duplicatesBefore),
      "the event is read and handled again",
    );
    assert.deepEqual(await ledger().balance(account.sender), balance, "and charges nothing more");
    assert.equal((await ledger().settled(account.sender)).length, 1);
  });

  it("records an event for our paymaster with no reservation as an anomaly, and keeps settling", async () => {
    const account = await fundedAccount(stack, "0.7", 0n);
    // Signed by our signer directly, bypassing the service: nothing was reserved for it.
    const paymaster = stack.deployment("0.7").paymaster;
    const op = { ...unsignedOp(account), paymaster, paymasterVerificationGasLimit: 30_000n, paymasterPostOpGasLimit: 0n };
    const paymasterData = await stack.service.signer.paymasterData({ userOperation: op, entryPointVersion: "0.7", paymaster, validUntil: Math.floor(Date.now() / 1000) + 300, validAfter: 0 });
    const stray = await signAsAccount({ ...op, paymasterData }, "0.7", stack.anvil.chainId, account.owner);
    const { events: [event] } = await includeOps(stack, "0.7", [stray]);

    const next = await fundedAccount(stack, "0.7");
    const { signed } = await sponsoredOp(stack, "0.7", next);
    await includeOps(stack, "0.7", [signed]);
    await confirmAndWait(async () => (await ledger().settled(next.sender)).length === 1, "the next op still settles");
    const anomalies = await stack.service.settlement.anomalies.list();
    const recorded = anomalies.find((anomaly) => anomaly.id === event.args.userOpHash);
    assert.equal(recorded?.kind, "no_reservation");
    assert.equal(recorded?.details.sender, account.sender);
    assert.equal(recorded?.details.actualGasCost, event.args.actualGasCost.toString());
    assert.ok(await within(2_000, async () => metric(await metrics(), "fiatgas_settlement_anomalies", 'kind="no_reservation"') === 1), "counted in the anomalies metric");
  });
});

describe("releasing what can no longer land", () => {
  it("releases a reservation once the account's nonce has moved past it without our op", async () => {
    const account = await fundedAccount(stack, "0.7");
    const inFlightBefore = await ledger().inFlightWei("0.7");
    await sponsoredOp(stack, "0.7", account);
    assert.equal((await ledger().balance(account.sender)).reservedFen, handCharge(MAX_WEI));
    // The user spends nonce 0 on another op that pays for itself, never sending ours.
    const fund = await stack.anvil.walletClient.sendTransaction({ to: account.sender, value: parseEther("1"), account: stack.anvil.walletClient.account, chain: stack.anvil.chain });
    await stack.anvil.publicClient.waitForTransactionReceipt({ hash: fund });
    const selfPaid = await signAsAccount(unsignedOp(account, { callData: executeCall(TARGET, 0n, "0x01") }), "0.7", stack.anvil.chainId, account.owner);
    const { events: [event] } = await includeOps(stack, "0.7", [selfPaid]);
    assert.equal(event.args.paymaster, "0x0000000000000000000000000000000000000000");
    const releasedBefore = metric(await metrics(), "fiatgas_settlement_releases_total", 'reason="nonce"') || 0;

    // The worker has its own Redis connection: the metric may trail the release it counts by a reply.
    const releasedByNonce = async () => metric(await metrics(), "fiatgas_settlement_releases_total", 'reason="nonce"') === releasedBefore + 1;
    await confirmAndWait(async () => (await ledger().reservations(account.sender)).length === 0 && (await releasedByNonce()), "the reservation is released, for its nonce");
    assert.deepEqual(await ledger().balance(account.sender), { balanceFen: 1_000_000n, reservedFen: 0n, availableFen: 1_000_000n }, "nothing was charged");
    assert.deepEqual(await ledger().settled(account.sender), []);
    assert.equal(await ledger().inFlightWei("0.7"), inFlightBefore);
  });
});

describe("the deposit guard", () => {
  const balanceOf = parseAbi(["function balanceOf(address account) view returns (uint256)"]);
  const depositOf = (version: EntryPointVersion) =>
    stack.anvil.publicClient.readContract({ address: ENTRYPOINT_ADDRESS[version], abi: balanceOf, functionName: "balanceOf", args: [stack.deployment(version).paymaster] });

  it("keeps the wei in flight within the deposit minus the floor, and frees room as ops settle", async () => {
    const deposit = await depositOf("0.7");
    const inFlight = await ledger().inFlightWei("0.7");
    // Room for two more worst-case ops, not three.
    const floor = deposit - inFlight - 2n * MAX_WEI - (MAX_WEI * 9n) / 10n;
    await setPolicy({ ...FIXTURE_POLICY, global: { depositFloorWei: floor.toString() } });
    try {
      const accounts = await Promise.all([1, 2, 3].map(() => fundedAccount(stack, "0.7")));
      const first = await sponsoredOp(stack, "0.7", accounts[0]);
      await sponsoredOp(stack, "0.7", accounts[1]);
      const { error: refused } = await requestFinal(stack, "0.7", accounts[2]);
      assert.equal(refused?.code, -32056);
      assert.deepEqual(refused?.data, {
        code: "LIMIT_DEPOSIT_IN_FLIGHT",
        limit: "global.depositFloorWei",
        limitValue: (deposit - floor).toString(),
        currentValue: (inFlight + 2n * MAX_WEI).toString(),
        neededWei: MAX_WEI.toString(),
      });
      assert.deepEqual(await ledger().reservations(accounts[2].sender), [], "nothing was reserved for it");

      await includeOps(stack, "0.7", [first.signed]);
      await confirmAndWait(async () => (await ledger().settled(accounts[0].sender)).length === 1, "the first op settles");
      await stack.service.depositGuard.refresh();
      await sponsoredOp(stack, "0.7", accounts[2]);
    } finally {
      await setPolicy(FIXTURE_POLICY);
    }
  });

  it("below the floor: not ready, sponsorship fails closed, a warning and a metric, and the status command agrees", async () => {
    const deposit = await depositOf("0.7");
    const account = await fundedAccount(stack, "0.7");
    const from = log.lines.length;
    await setPolicy({ ...FIXTURE_POLICY, global: { depositFloorWei: (deposit + 1n).toString() } });
    try {
      const ready = await fetch(`${stack.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(((await ready.json()) as { checks: Record<string, boolean> }).checks.paymasterDeposit, false);

      const guard = stack.service.depositGuard.figures("0.7")!;
      const expected = {
        code: "DEPOSIT_BELOW_FLOOR",
        limit: "global.depositFloorWei",
        limitValue: (deposit + 1n).toString(),
        currentValue: (deposit - guard.inFlightWei).toString(),
        depositWei: deposit.toString(),
        inFlightWei: guard.inFlightWei.toString(),
        entryPoint: ENTRYPOINT_ADDRESS["0.7"],
      };
      for (const method of ["pm_getPaymasterStubData", "pm_getPaymasterData"]) {
        const op = unsignedOp(account);
        const params = [{ sender: op.sender, nonce: "0x0", factory: op.factory, factoryData: op.factoryData, callData: op.callData, callGasLimit: "0x186a0", verificationGasLimit: "0x7a120", preVerificationGas: "0xea60", maxFeePerGas: "0xb2d05e00", maxPriorityFeePerGas: "0x3b9aca00" }, stack.entryPoint("0.7"), numberToHex(stack.anvil.chainId), { session: account.session }];
        const { body } = await stack.post("/rpc", { jsonrpc: "2.0", id: 1, method, params });
        assert.equal(body.error?.code, -32057, method);
        assert.deepEqual(body.error?.data, expected, method);
      }
      assert.deepEqual(await ledger().reservations(account.sender), [], "nothing was reserved");

      const text = await metrics();
      assert.equal(metric(text, "fiatgas_paymaster_deposit_degraded", `entry_point="${ENTRYPOINT_ADDRESS["0.7"]}"`), 1);
      assert.equal(metric(text, "fiatgas_paymaster_deposit_wei", `entry_point="${ENTRYPOINT_ADDRESS["0.7"]}"`), Number(deposit));
      const warning = log.lines.slice(from).map((line) => JSON.parse(line) as Record<string, unknown>).find((entry) => entry.msg === "paymaster deposit below the floor: sponsorship paused until the deposit is topped up" && entry.entryPoint === ENTRYPOINT_ADDRESS["0.7"]);
      assert.equal(warning?.headroomWei, expected.currentValue);
      assert.equal(warning?.floorWei, expected.limitValue);

      // The operator's status command shows the same figures: the deposit on chain, the rest from the service's Redis.
      const out: string[] = [];
      const env = { RPC_URL: stack.anvil.url, PAYMASTER_ADDRESS: stack.deployment("0.7").paymaster, REDIS_URL: stack.redis.url, REDIS_KEY_PREFIX: stack.service.config.REDIS_KEY_PREFIX };
      assert.equal(await operatorCli(["status", "--json"], env, { out: (text) => out.push(text), err: () => {} }), 0);
      const { depositGuard } = JSON.parse(out.join("")) as { depositGuard: Record<string, unknown> };
      assert.deepEqual(depositGuard, {
        depositWei: deposit.toString(),
        inFlightWei: guard.inFlightWei.toString(),
        floorWei: (deposit + 1n).toString(),
        headroomWei: (deposit - guard.inFlightWei).toString(),
        capWei: "-1",
        degraded: true,
      });
    } finally {
      await setPolicy(FIXTURE_POLICY);
    }
    assert.equal((await fetch(`${stack.url}/readyz`)).status, 200, "ready again once the floor is lowered");
    assert.ok((await sponsoredOp(stack, "0.7", account)).userOpHash);
  });
});

describe("expiry (moves the chain's clock: last)", () => {
  it("releases a reservation whose validUntil is before the latest confirmed block, never one whose op landed first", async () => {
    await setPolicy({ ...FIXTURE_POLICY, time: { signatureValiditySeconds: 30 } });
    const waiting = await fundedAccount(stack, "0.7");
    const landing = await fundedAccount(stack, "0.7");
    await sponsoredOp(stack, "0.7", waiting);
    const { signed } = await sponsoredOp(stack, "0.7", landing);
    const { events: [event] } = await includeOps(stack, "0.7", [signed]);
    // The next block is two minutes later: both validUntils are behind it once it is confirmed.
    await stack.anvil.testClient.increaseTime({ seconds: 120 });
    await mine(stack, 1);
    await confirmAndWait(async () => (await ledger().reservations(waiting.sender)).length === 0 && (await ledger().reservations(landing.sender)).length === 0, "both are closed");
    assert.deepEqual(await ledger().balance(waiting.sender), { balanceFen: 1_000_000n, reservedFen: 0n, availableFen: 1_000_000n }, "the unsent op's hold is released");
    assert.deepEqual(await ledger().settled(waiting.sender), []);
    const charged = handCharge(event.args.actualGasCost);
    assert.deepEqual(await ledger().balance(landing.sender), { balanceFen: 1_000_000n - charged, reservedFen: 0n, availableFen: 1_000_000n - charged }, "the landed op is charged, not released");
    const [slot] = (await ledger().settled(landing.sender)).map((settled) => reservationSlot("0.7", settled.nonce));
    assert.equal(slot, "0.7:0");
    // Counted by the worker just after its own Redis reply: allow it that moment.
    assert.ok(await within(2_000, async () => metric(await metrics(), "fiatgas_settlement_releases_total", 'reason="expired"') >= 1), "counted in the releases metric");
  });
});
