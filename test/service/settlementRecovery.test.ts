// Settlement when things go wrong, on a real anvil chain, with workers driven step by step (the
// service's own worker is off): reorgs within and past the confirmation depth, a worker stopping
// mid-backlog, two workers at once with duplicated events, and releases waiting for settlement.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import type { Hex } from "viem";

import type { EventOutcome } from "../../service/settlement/consumer.ts";
import { CONSUMER_GROUP, settlementKeys } from "../../service/settlement/keys.ts";
import { decodePaymasterData } from "../../service/sponsorship/paymasterData.ts";
import { FIXTURE_POLICY, type ServiceStack, startServiceStack } from "../support/serviceFixture.ts";
import { type FundedAccount, fundedAccount, includeOps, mine, newSettlementWorker, settleAll, sponsoredOp } from "../support/settlementFixture.ts";
import { within } from "../support/wait.ts";

let stack: ServiceStack;
before(async () => {
  stack = await startServiceStack({ SETTLEMENT_ENABLED: "false", SETTLEMENT_POLL_MS: "50", SETTLEMENT_CLAIM_IDLE_MS: "300" });
});
after(() => stack.stop());

/** ¥25,000.00/ETH is 2,500,000 fen/ETH; × 1.1 markup, rounded up to the fen, + 1 fen fee (the fixture's terms). */
const handCharge = (wei: bigint) => (wei * 2_500_000n * 11n + 10n * 10n ** 18n - 1n) / (10n * 10n ** 18n) + 1n;
const WORST_CASE_FEN = handCharge(2_070_000_000_000_000n);
const keys = () => settlementKeys(stack.service.config.REDIS_KEY_PREFIX);
const ledger = () => stack.service.ledger;

async function assertUntouched(account: FundedAccount, what: string) {
  assert.deepEqual(await ledger().balance(account.sender), { balanceFen: 1_000_000n, reservedFen: WORST_CASE_FEN, availableFen: 1_000_000n - WORST_CASE_FEN }, what);
  assert.equal((await ledger().reservations(account.sender)).length, 1, what);
  assert.deepEqual(await ledger().settled(account.sender), [], what);
}

async function assertChargedOnce(account: FundedAccount, actualGasCost: bigint, userOpHash: Hex) {
  const charged = handCharge(actualGasCost);
  assert.deepEqual(await ledger().balance(account.sender), { balanceFen: 1_000_000n - charged, reservedFen: 0n, availableFen: 1_000_000n - charged });
  assert.deepEqual((await ledger().settled(account.sender)).map((settled) => [settled.userOpHash, settled.chargedFen]), [[userOpHash, charged]]);
}

describe("reorgs", () => {
  it("acts on nothing within the confirmation depth, so a reorg there changes nothing", async () => {
    const worker = newSettlementWorker(stack, { config: { SETTLEMENT_CONFIRMATIONS: 2 }, name: "shallow" });
    await settleAll(worker);
    const account = await fundedAccount(stack, "0.7");
    const { signed, userOpHash } = await sponsoredOp(stack, "0.7", account);
    const snapshot = await stack.anvil.testClient.snapshot();
    await includeOps(stack, "0.7", [signed]);
    await mine(stack, 1);
    await settleAll(worker);
    await assertUntouched(account, "one confirmation is not enough");

    await stack.anvil.testClient.revert({ id: snapshot });
    await mine(stack, 4);
    await settleAll(worker);
    await assertUntouched(account, "the op is gone from the chain, and nothing was done about it");

    const { events: [event] } = await includeOps(stack, "0.7", [signed]);
    await mine(stack, 2);
    await settleAll(worker);
    await assertChargedOnce(account, event.args.actualGasCost, userOpHash);
  });

  it("rewinds when blocks it read are replaced: drops their unsettled events, and charges once what lands again", async () => {
    const worker = newSettlementWorker(stack, { config: { SETTLEMENT_CONFIRMATIONS: 0 }, name: "eager" });
    await settleAll(worker);
    const [pending, settled] = await Promise.all([fundedAccount(stack, "0.7"), fundedAccount(stack, "0.8")]);
    const first = await sponsoredOp(stack, "0.8", settled);
    const second = await sponsoredOp(stack, "0.7", pending);
    const snapshot = await stack.anvil.testClient.snapshot();
    // `settled` lands and is settled; `pending` lands and is read, but not yet settled.
    await includeOps(stack, "0.8", [first.signed]);
    await settleAll(worker);
    await includeOps(stack, "0.7", [second.signed]);
    const read = await worker.readOnce();
    assert.deepEqual([read.kind, read.kind === "read" && read.events], ["read", 1]);

    await stack.anvil.testClient.revert({ id: snapshot });
    await mine(stack, 3);
    const rewound = await worker.readOnce();
    assert.equal(rewound.kind, "rewound");
    const outcomes = (await worker.consumeOnce()).outcomes;
    assert.deepEqual(outcomes, { orphaned: 1 }, "the event of the replaced block is dropped");
    await assertUntouched(pending, "nothing was charged for an op that is no longer on the chain");
    const reorg = (await worker.anomalies.list()).find((anomaly) => anomaly.kind === "reorg");
    assert.ok(reorg, "the reorg is recorded for reconciliation (what was settled from the replaced blocks)");

    // Both ops land again in the new chain: each is charged exactly once.
    const [again08, again07] = [await includeOps(stack, "0.8", [first.signed]), await includeOps(stack, "0.7", [second.signed])];
    await settleAll(worker);
    await assertChargedOnce(pending, again07.events[0].args.actualGasCost, second.userOpHash);
    // `settled` was charged for the replaced block's cost; its landing again is a duplicate.
    const [record] = await ledger().settled(settled.sender);
    assert.equal(record.userOpHash, first.userOpHash);
    assert.notEqual(record.blockHash, again08.receipt.blockHash, "the record still names the replaced block, which reconciliation checks");
    assert.equal((await ledger().settled(settled.sender)).length, 1);
    assert.equal((await ledger().balance(settled.sender)).balanceFen, 1_000_000n - record.chargedFen);
  });
});

describe("durability", () => {
  it("works off a backlog after a worker stops mid-way and a consumer dies holding events, charging each op once", async () => {
    const accounts = await Promise.all(Array.from({ length: 12 }, () => fundedAccount(stack, "0.7")));
    const ops = [];
    for (const account of accounts) ops.push(await sponsoredOp(stack, "0.7", account));
    const { events } = await includeOps(stack, "0.7", ops.map((op) => op.signed));
    assert.equal(events.length, 12);
    await mine(stack, 1);

    const first = newSettlementWorker(stack, { config: { SETTLEMENT_CONFIRMATIONS: 1, SETTLEMENT_BATCH: 4 }, name: "first" });
    while ((await first.readOnce()).kind === "read");
    assert.deepEqual((await first.consumeOnce()).outcomes, { settled: 4 });
    // Another consumer takes four events and dies without acknowledging them.
    const taken = (await stack.redis.client().xreadgroup("GROUP", CONSUMER_GROUP, "died", "COUNT", 4, "STREAMS", keys().events, ">")) as [string, unknown[]][];
    assert.equal(taken[0][1].length, 4);
    await first.dropLease();

    // A new worker (a restart) takes over: the four left, and the four the dead consumer held once idle.
    const outcomes: EventOutcome[] = [];
    const second = newSettlementWorker(stack, { config: { SETTLEMENT_CONFIRMATIONS: 1, SETTLEMENT_BATCH: 4 }, name: "second", onEvent: (outcome) => outcomes.push(outcome) });
    await second.start();
    try {
      assert.ok(await within(10_000, async () => (await second.progress()).backlog === 0 && outcomes.length === 8), `the backlog is worked off (${outcomes.length} of 8)`);
    } finally {
      await second.stop();
    }
    assert.deepEqual(outcomes.sort(), Array(8).fill("settled"));
    for (const [index, account] of accounts.entries()) {
      const event = events.find((candidate) => candidate.args.sender === account.sender)!;
      await assertChargedOnce(account, event.args.actualGasCost, ops[index].userOpHash);
    }
  });

  it("with two workers at once, one reads (the lease), both settle, and duplicated events charge once", async () => {
    const accounts = await Promise.all(Array.from({ length: 6 }, () => fundedAccount(stack, "0.8")));
    const ops = [];
    for (const account of accounts) ops.push(await sponsoredOp(stack, "0.8", account));
    const { events } = await includeOps(stack, "0.8", ops.map((op) => op.signed));
    await mine(stack, 1);
    const reader = newSettlementWorker(stack, { config: { SETTLEMENT_CONFIRMATIONS: 1 }, name: "reader" });
    while ((await reader.readOnce()).kind === "read");
    await reader.dropLease();
    // Every event three more times, as repeated reads after crashes would append them.
    const client = stack.redis.client();
    const appended = (await client.xrange(keys().events, "-", "+")).slice(-6);
    for (let copy = 0; copy < 3; copy++) for (const [, fields] of appended) await client.xadd(keys().events, "*", ...fields);

    const outcomes: EventOutcome[] = [];
    const workers = ["left", "right"].map((name) => newSettlementWorker(stack, { config: { SETTLEMENT_CONFIRMATIONS: 1, SETTLEMENT_BATCH: 5 }, name, onEvent: (outcome) => outcomes.push(outcome) }));
    await Promise.all(workers.map((worker) => worker.start()));
    try {
      assert.ok(await within(10_000, () => outcomes.length === 24), `all 24 entries handled (${outcomes.length})`);
      assert.ok(["left", "right"].includes((await client.get(keys().lease)) ?? ""), "one of them holds the reader's lease");
      const holder = (await client.get(keys().lease)) === "left" ? workers[1] : workers[0];
      assert.equal((await holder.readOnce()).kind, "not_leader", "the other does not read");
    } finally {
      await Promise.all(workers.map((worker) => worker.stop()));
    }
    assert.deepEqual(
      { settled: outcomes.filter((outcome) => outcome === "settled").length, duplicate: outcomes.filter((outcome) => outcome === "duplicate").length },
      { settled: 6, duplicate: 18 },
    );
    for (const [index, account] of accounts.entries()) {
      const event = events.find((candidate) => candidate.args.sender === account.sender)!;
      await assertChargedOnce(account, event.args.actualGasCost, ops[index].userOpHash);
    }
  });
});

describe("releases wait for settlement (moves the chain's clock: last)", () => {
  it("does not release an expired reservation until the events of the blocks that expire it are settled", async () => {
    await stack.service.policies.put({ ...FIXTURE_POLICY, time: { signatureValiditySeconds: 30 } }, { expectedVersion: stack.service.policies.current().version, actor: "test" });
    const worker = newSettlementWorker(stack, { config: { SETTLEMENT_CONFIRMATIONS: 2 }, name: "careful" });
    await settleAll(worker);
    const account = await fundedAccount(stack, "0.7");
    const { signed, userOpHash } = await sponsoredOp(stack, "0.7", account);
    const { events: [event] } = await includeOps(stack, "0.7", [signed]);
    await stack.anvil.testClient.increaseTime({ seconds: 120 });
    await mine(stack, 3);
    // Read everything, including the blocks past the op's validUntil, but settle nothing yet.
    while ((await worker.readOnce()).kind === "read");
    const early = await worker.releaseOnce();
    assert.equal(early.expired, 0);
    const { validUntil } = decodePaymasterData(signed.paymasterData!);
    assert.ok(early.through && early.through.timestamp <= validUntil, "releases are judged by the last block whose events are all settled: one before the op's expiry");
    await assertUntouched(account, "a landed op's reservation is not released before its event is settled");

    while ((await worker.consumeOnce()).entries > 0);
    const late = await worker.releaseOnce();
    assert.ok(late.through && late.through.timestamp > early.through!.timestamp, "once settled, the newest block counts");
    await assertChargedOnce(account, event.args.actualGasCost, userOpHash);
    await worker.dropLease();
  });
});
