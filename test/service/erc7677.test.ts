// ERC-7677 end to end, without a bundler: viem's paymaster client asks our /rpc for stub and final
// data, and the signed op goes through a real handleOps on both EntryPoints.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { type Hex, http, hexToBytes, parseEventLogs, size } from "viem";
import { type UserOperation, createPaymasterClient, getUserOperationHash, toPackedUserOperation } from "viem/account-abstraction";

import { ENTRYPOINT_VERSIONS, type EntryPointVersion } from "../../service/chain/entryPoints.ts";
import { DEFAULT_GAS, entryPointAbi, executeCall, signAsAccount } from "../support/aa.ts";
import { type ServiceStack, startServiceStack } from "../support/serviceFixture.ts";

let stack: ServiceStack;
before(async () => {
  stack = await startServiceStack();
});
after(() => stack.stop());

const TARGET = "0x00000000000000000000000000000000000000cc";
const zeroBytes = (data: Hex) => hexToBytes(data).filter((byte) => byte === 0).length;

/** An unsigned op from a fresh SimpleAccount, with the fields viem sends to a paymaster. */
async function newOp(version: EntryPointVersion) {
  const account = await stack.newAccount(version);
  const op: UserOperation<"0.7"> = {
    sender: account.sender,
    nonce: 0n,
    factory: account.factory,
    factoryData: account.factoryData,
    callData: executeCall(TARGET, 0n, "0x"),
    ...DEFAULT_GAS,
    paymasterVerificationGasLimit: undefined,
    paymasterPostOpGasLimit: undefined,
    signature: "0x",
  };
  return { account, op };
}

async function rpcError(body: unknown) {
  const { status, body: response } = await stack.post("/rpc", body);
  assert.equal(status, 200);
  assert.ok(response.error, `expected an error, got ${JSON.stringify(response)}`);
  return response.error;
}

for (const version of ENTRYPOINT_VERSIONS) {
  describe(`ERC-7677 on EntryPoint v${version}`, () => {
    const paymasterClient = () => createPaymasterClient({ transport: http(stack.rpcUrl) });

    it("serves stub data to viem's paymaster client, with no session", async () => {
      const { op } = await newOp(version);
      const stub = await paymasterClient().getPaymasterStubData({ ...op, chainId: stack.anvil.chainId, entryPointAddress: stack.entryPoint(version) });
      assert.equal(stub.paymaster, stack.deployment(version).paymaster);
      assert.equal(stub.isFinal, false);
      assert.equal(stub.sponsor?.name, "FiatGas");
      assert.match(stub.sponsor?.icon ?? "", /^data:image\//);
      assert.equal(stub.paymasterVerificationGasLimit, 30_000n);
      assert.equal(stub.paymasterPostOpGasLimit, 0n);
      assert.equal(size(stub.paymasterData!), 77);
    });

    it("signs final data that passes the contract in a real handleOps, matched to its reservation by userOpHash", async () => {
      const { account, op } = await newOp(version);
      const token = await stack.signIn(account);
      await stack.service.ledger.credit(account.sender, 100_000n);
      const client = paymasterClient();
      const stub = await client.getPaymasterStubData({ ...op, chainId: stack.anvil.chainId, entryPointAddress: stack.entryPoint(version) });
      const withLimits = { ...op, paymasterVerificationGasLimit: stub.paymasterVerificationGasLimit, paymasterPostOpGasLimit: stub.paymasterPostOpGasLimit };
      const final = await client.getPaymasterData({ ...withLimits, chainId: stack.anvil.chainId, entryPointAddress: stack.entryPoint(version), context: { session: token } });

      assert.equal(size(final.paymasterData!), size(stub.paymasterData!), "stub and final data have the same length");
      assert.ok(zeroBytes(stub.paymasterData!) <= zeroBytes(final.paymasterData!), "the stub has no more zero bytes than the final data");

      const sponsored = { ...withLimits, paymaster: final.paymaster, paymasterData: final.paymasterData };
      const signed = await signAsAccount(sponsored, version, stack.anvil.chainId, account.owner);
      const hash = await stack.anvil.walletClient.writeContract({
        address: stack.entryPoint(version),
        abi: entryPointAbi,
        functionName: "handleOps",
        args: [[toPackedUserOperation(signed)], stack.anvil.walletClient.account.address],
        chain: stack.anvil.chain,
      });
      const receipt = await stack.anvil.publicClient.waitForTransactionReceipt({ hash });
      const [event] = parseEventLogs({ abi: entryPointAbi, logs: receipt.logs, eventName: "UserOperationEvent" });
      assert.equal(event.args.success, true);

      const [reservation] = await stack.service.ledger.reservations(account.sender);
      assert.equal(reservation.ops[0].userOpHash, event.args.userOpHash, "the recorded hash is the one the EntryPoint emitted");
      assert.equal(
        event.args.userOpHash,
        getUserOperationHash({ userOperation: signed, entryPointAddress: stack.entryPoint(version), entryPointVersion: version, chainId: stack.anvil.chainId }),
      );
      // Worst case: (500k + 100k + 30k + 0 + 60k) gas × 3 gwei = 2.07e15 wei; × ¥25,000/ETH × 1.1 = ¥56.925 → 5,693 fen, + 1 fen fee.
      assert.equal(reservation.chargeFen, 5_694n);
      assert.ok(event.args.actualGasCost <= reservation.ops[0].maxWei, "the chain took no more than was reserved for");
      const response = await fetch(`${stack.url}/v1/accounts/${account.sender}`, { headers: { authorization: `Bearer ${token}` } });
      assert.deepEqual(await response.json(), {
        address: account.sender,
        currency: "CNY",
        balanceFen: "100000",
        reservedFen: "5694",
        availableFen: "94306",
      });
    });
  });
}

describe("ERC-7677 rejections", () => {
  const version: EntryPointVersion = "0.7";
  const params = (op: UserOperation<"0.7">, overrides: { entryPoint?: string; chainId?: string; context?: unknown } = {}) => [
    {
      sender: op.sender,
      nonce: "0x0",
      factory: op.factory,
      factoryData: op.factoryData,
      callData: op.callData,
      callGasLimit: "0x186a0",
      verificationGasLimit: "0x7a120",
      preVerificationGas: "0xea60",
      maxFeePerGas: "0xb2d05e00",
      maxPriorityFeePerGas: "0x3b9aca00",
    },
    overrides.entryPoint ?? stack.entryPoint(version),
    overrides.chainId ?? `0x${stack.anvil.chainId.toString(16)}`,
    overrides.context ?? {},
  ];

  it("refuses final data without a session, and with another account's session", async () => {
    const { op } = await newOp(version);
    const noSession = await rpcError({ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterData", params: params(op) });
    assert.equal(noSession.data.code, "UNAUTHENTICATED");
    const other = await newOp(version);
    const otherToken = await stack.signIn(other.account);
    const wrong = await rpcError({ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterData", params: params(op, { context: { session: otherToken } }) });
    assert.equal(wrong.data.code, "FORBIDDEN");
  });

  it("answers an uncovered op with the amount needed, the amount available and a hint", async () => {
    const { account, op } = await newOp(version);
    const token = await stack.signIn(account);
    await stack.service.ledger.credit(account.sender, 1_000n);
    const error = await rpcError({ jsonrpc: "2.0", id: 9, method: "pm_getPaymasterData", params: params(op, { context: { session: token } }) });
    assert.equal(error.code, -32010);
    assert.deepEqual(error.data, { code: "INSUFFICIENT_BALANCE", neededFen: "5694", availableFen: "1000", hint: "top up via POST /v1/topups" });
    assert.equal((await stack.service.ledger.reservations(account.sender)).length, 0, "nothing was reserved");
  });

  it("names a wrong chain, an unknown EntryPoint and a malformed field", async () => {
    const { op } = await newOp(version);
    const chain = await rpcError({ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterStubData", params: params(op, { chainId: "0x1" }) });
    assert.equal(chain.data.code, "WRONG_CHAIN");
    assert.deepEqual([chain.data.expected, chain.data.received], [stack.anvil.chainId, 1]);
    const entryPoint = await rpcError({ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterStubData", params: params(op, { entryPoint: "0x5FF137D4b0FDCD49DcA30c7CF57E578a026d2789" }) });
    assert.equal(entryPoint.data.code, "UNSUPPORTED_ENTRY_POINT");
    assert.deepEqual(entryPoint.data.supported, [stack.entryPoint("0.7"), stack.entryPoint("0.8")]);
    const [userOp, ...rest] = params(op);
    const malformed = await rpcError({ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterStubData", params: [{ ...(userOp as object), callGasLimit: "lots" }, ...rest] });
    assert.equal(malformed.data.code, "INVALID_PARAMS");
    assert.deepEqual((malformed.data.issues as { path: string }[]).map((issue) => issue.path), ["0.callGasLimit"]);
  });

  it("signs exactly N of many concurrent requests when the balance covers exactly N", async () => {
    const { account, op } = await newOp(version);
    const token = await stack.signIn(account);
    const covered = 3;
    await stack.service.ledger.credit(account.sender, 5_694n * BigInt(covered));
    const requests = Array.from({ length: 12 }, (_, key) => {
      const [userOp, ...rest] = params(op, { context: { session: token } });
      // Distinct nonce keys: twelve different ops that could all land.
      return { jsonrpc: "2.0", id: key, method: "pm_getPaymasterData", params: [{ ...(userOp as object), nonce: `0x${(BigInt(key) << 64n).toString(16)}` }, ...rest] };
    });
    const answers = await Promise.all(requests.map((request) => stack.post("/rpc", request)));
    const signed = answers.filter(({ body }) => body.result);
    const refused = answers.filter(({ body }) => body.error);
    // The per-sender cap (4 by default) is above N here, so the balance is what limits.
    assert.equal(signed.length, covered);
    for (const { body } of refused) assert.match(body.error!.data.code, /^(INSUFFICIENT_BALANCE|TOO_MANY_RESERVATIONS)$/);
    const balance = await stack.service.ledger.balance(account.sender);
    assert.equal(balance.availableFen, 0n);
    assert.ok(balance.availableFen >= 0n);
  });
});
