// The risk policy end to end: an operator changes it through the admin API, and the very next
// sponsorship request is judged by it, with an error that names the limit and what to do.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { type Address, type Hex, encodeFunctionData, numberToHex, parseAbi } from "viem";

import { decodePaymasterData } from "../../service/sponsorship/paymasterData.ts";
import { type PolicyDocument } from "../../service/risk/policy.ts";
import { executeCall } from "../support/aa.ts";
import { FIXTURE_POLICY, type ServiceStack, startServiceStack } from "../support/serviceFixture.ts";

let stack: ServiceStack;
before(async () => {
  stack = await startServiceStack();
});
after(() => stack.stop());

const TOKEN: Address = "0x00000000000000000000000000000000000000aa";
const transfer = encodeFunctionData({ abi: parseAbi(["function transfer(address to, uint256 amount)"]), functionName: "transfer", args: [TOKEN, 1n] });

/** Sets the policy through the admin API, as an operator would. */
async function setPolicy(document: PolicyDocument) {
  const current = await fetch(`${stack.url}/admin/policy`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
  const response = await fetch(`${stack.url}/admin/policy`, {
    method: "PUT",
    headers: { authorization: `Bearer ${stack.adminToken}`, "content-type": "application/json", "if-match": current.headers.get("etag")! },
    body: JSON.stringify(document),
  });
  assert.equal(response.status, 200, await response.text());
}

/** A signed-in, funded account and a way to ask for its op's sponsorship. */
async function account(fen = 1_000_000n) {
  const created = await stack.newAccount("0.7");
  const session = await stack.signIn(created);
  await stack.service.ledger.credit(created.sender, fen);
  let nonceKey = 0n;
  return {
    sender: created.sender,
    /** pm_getPaymasterData (or the stub) for a fresh nonce key, with `overrides` on the op. */
    async ask(overrides: Record<string, string> = {}, method = "pm_getPaymasterData") {
      const op = {
        sender: created.sender,
        nonce: numberToHex(nonceKey++ << 64n),
        factory: created.factory,
        factoryData: created.factoryData,
        callData: executeCall(TOKEN, 0n, transfer),
        callGasLimit: numberToHex(100_000),
        verificationGasLimit: numberToHex(500_000),
        preVerificationGas: numberToHex(60_000),
        maxFeePerGas: numberToHex(3_000_000_000),
        maxPriorityFeePerGas: numberToHex(1_000_000_000),
        ...overrides,
      };
      const { body } = await stack.post("/rpc", { jsonrpc: "2.0", id: 1, method, params: [op, stack.entryPoint("0.7"), numberToHex(stack.anvil.chainId), { session }] });
      return body;
    },
  };
}

describe("the risk policy, changed live through the admin API", () => {
  it("caps gas limits per operation", async () => {
    const user = await account();
    await setPolicy({ ...FIXTURE_POLICY, perOperation: { ...FIXTURE_POLICY.perOperation, maxCallGasLimit: 100_000 } });
    assert.ok((await user.ask()).result, "at the cap");
    const { error } = await user.ask({ callGasLimit: numberToHex(100_001) });
    assert.equal(error?.code, -32043);
    assert.deepEqual(error?.data, { code: "LIMIT_GAS", limit: "perOperation.maxCallGasLimit", limitValue: "100000", currentValue: "100001" });
  });

  it("caps maxFeePerGas against the live base fee", async () => {
    const user = await account();
    await setPolicy({ perOperation: { maxFeeToBaseFeeBps: 20_000 } });
    const baseFee = stack.service.pricing.baseFee();
    assert.ok((await user.ask({ maxFeePerGas: numberToHex(baseFee * 2n + 1n), maxPriorityFeePerGas: numberToHex(1n) })).result, "2× the base fee plus the tip");
    const { error } = await user.ask({ maxFeePerGas: numberToHex(baseFee * 2n + 2n), maxPriorityFeePerGas: numberToHex(1n) });
    assert.equal(error?.data.code, "LIMIT_FEE");
    assert.equal(error?.data.limit, "perOperation.maxFeeToBaseFeeBps");
  });

  it("counts operations per minute for each account, with retryAfter", async () => {
    const user = await account();
    await setPolicy({ ...FIXTURE_POLICY, perAccount: { maxOperationsPerMinute: 2 } });
    assert.ok((await user.ask()).result);
    assert.ok((await user.ask()).result);
    const { error } = await user.ask();
    assert.equal(error?.data.code, "LIMIT_OPS_PER_MINUTE");
    assert.equal(error?.data.limitValue, "2");
    assert.ok(Number(error?.data.retryAfter) > Date.now() / 1000, "retryAfter is in the future");
    assert.ok((await (await account()).ask()).result, "another account has its own count");
  });

  it("refuses calls outside the allowlist already at the stub, before the user signs", async () => {
    const user = await account();
    await setPolicy({ ...FIXTURE_POLICY, calls: { allowedTargets: [{ address: TOKEN, selectors: ["0xa9059cbb"] }] } });
    assert.ok((await user.ask({}, "pm_getPaymasterStubData")).result, "transfer() on the allowed token");
    const other = executeCall("0x00000000000000000000000000000000000000bb", 0n, transfer);
    const stub = await user.ask({ callData: other }, "pm_getPaymasterStubData");
    assert.equal(stub.error?.data.code, "TARGET_NOT_ALLOWED");
    const approve = executeCall(TOKEN, 0n, `0x095ea7b3${"00".repeat(64)}` as Hex);
    const final = await user.ask({ callData: approve });
    assert.deepEqual([final.error?.data.code, final.error?.data.limit, final.error?.data.selector], ["SELECTOR_NOT_ALLOWED", "calls.allowedTargets[0].selectors", "0x095ea7b3"]);
  });

  it("refuses denied senders and sponsors nothing outside the active period", async () => {
    const user = await account();
    await setPolicy({ ...FIXTURE_POLICY, calls: { deniedSenders: [user.sender] } });
    assert.equal((await user.ask()).error?.data.code, "SENDER_DENIED");
    const later = Math.floor(Date.now() / 1000) + 3_600;
    await setPolicy({ ...FIXTURE_POLICY, time: { activeFrom: later } });
    const { error } = await user.ask();
    assert.deepEqual([error?.data.code, error?.data.retryAfter], ["POLICY_INACTIVE", later]);
  });

  it("signs for the policy's validity window", async () => {
    const user = await account();
    await setPolicy({ ...FIXTURE_POLICY, time: { signatureValiditySeconds: 45 } });
    const { result } = await user.ask();
    const { validUntil } = decodePaymasterData(result?.paymasterData as Hex);
    const now = Math.floor(Date.now() / 1000);
    assert.ok(validUntil > now + 40 && validUntil <= now + 45, `validUntil ${validUntil} is about 45 s away`);
  });
});
