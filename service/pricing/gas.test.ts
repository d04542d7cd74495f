import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { type Address, parseEventLogs } from "viem";
import { type UserOperation, toPackedUserOperation } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { paymasterContractName } from "../chain/entryPoints.ts";
import {
  DEFAULT_GAS,
  ENTRYPOINT_VERSIONS,
  deployArtifact,
  entryPointAbi,
  executeCall,
  signAsAccount,
  simpleAccount,
  sponsor,
} from "../../test/support/aa.ts";
import { type AnvilChain, deployPaymasters, projectArtifact, startAnvil } from "../../test/support/anvil.ts";
import { assertFailedOp } from "../../test/support/assertions.ts";
import { type UserOperationGas, expectedCostWei, maxPrefundWei, userOperationGasLimit } from "./gas.ts";

const GWEI = 1_000_000_000n;

/** A SimpleAccount op's gas: 500k + 100k + 60k + 0 + 60k = 720,000 gas at up to 3 gwei. */
const OP: UserOperationGas = { ...DEFAULT_GAS };

describe("maxPrefundWei", () => {
  it("is every gas limit times maxFeePerGas", () => {
    assert.equal(userOperationGasLimit(OP), 720_000n);
    assert.equal(maxPrefundWei(OP), 720_000n * 3n * GWEI);
    assert.equal(maxPrefundWei({ ...OP, paymasterPostOpGasLimit: 40_000n }), 760_000n * 3n * GWEI);
  });

  it("adds nothing for the unused-gas penalty, on either side of v0.8's 40,000-gas threshold", () => {
    // The penalty is charged inside the prefund, never on top (see maxPrefundWei's comment and the
    // EntryPoint test below), so the cap is linear in callGasLimit with no step at 40,000.
    for (const callGasLimit of [39_999n, 40_000n, 40_001n, 5_000_000n]) {
      const op = { ...OP, callGasLimit, paymasterPostOpGasLimit: 0n };
      assert.equal(maxPrefundWei(op), (620_000n + callGasLimit) * 3n * GWEI, `callGasLimit ${callGasLimit}`);
    }
  });
});

describe("expectedCostWei", () => {
  it("prices all the gas at baseFee + maxPriorityFeePerGas while that is below maxFeePerGas", () => {
    assert.equal(expectedCostWei(OP, 1n * GWEI), 720_000n * 2n * GWEI);
    assert.equal(expectedCostWei(OP, 0n), 720_000n * 1n * GWEI);
  });

  it("caps the price at maxFeePerGas, as the EntryPoint does", () => {
    assert.equal(expectedCostWei(OP, 2n * GWEI), maxPrefundWei(OP));
    assert.equal(expectedCostWei(OP, 50n * GWEI), maxPrefundWei(OP));
  });
});

describe("against the real EntryPoints on anvil", () => {
  let anvil: AnvilChain;
  let deployed: Awaited<ReturnType<typeof deployPaymasters>>;
  before(async () => {
    anvil = await startAnvil();
    deployed = await deployPaymasters(anvil);
  });
  after(() => anvil?.stop());

  for (const version of ENTRYPOINT_VERSIONS) {
    it(`v${version}: the EntryPoint asks the paymaster for exactly maxPrefundWei, and the op costs at most expectedCostWei`, async () => {
      const { publicClient, walletClient, chainId } = anvil;
      const { entryPoint, factory } = deployed.deployments[version];
      const name = paymasterContractName[version];
      const artifact = projectArtifact(`contracts/${name}.sol`, name);
      const owner = walletClient.account.address;
      // A paymaster of our own with an empty deposit, so the deposit can sit exactly at the boundary.
      const paymaster = await deployArtifact(artifact, [entryPoint, owner, owner, [deployed.signer.address]], anvil);

      const accountOwner = privateKeyToAccount(generatePrivateKey());
      const account = await simpleAccount(publicClient, factory, accountOwner.address);
      // A large callGasLimit left almost unused and a postOp limit that is never used: the 10% penalty
      // applies on both versions, and must still fit inside the prefund.
      const unsigned: UserOperation<"0.7"> = {
        ...account,
        nonce: 0n,
        callData: executeCall("0x00000000000000000000000000000000000000cc", 0n, "0x"),
        ...DEFAULT_GAS,
        callGasLimit: 1_000_000n,
        paymasterPostOpGasLimit: 50_000n,
        paymaster,
        signature: "0x",
      };
      const sponsored = await sponsor(unsigned, { version, chainId, paymaster, signer: deployed.signer, validUntil: 0 });
      const op = await signAsAccount(sponsored, version, chainId, accountOwner);
      const gas = op as UserOperationGas;
      const prefund = maxPrefundWei(gas);

      const deposit = async (value: bigint) => {
        const hash = await walletClient.writeContract({ address: paymaster, abi: artifact.abi, functionName: "deposit", value });
        await publicClient.waitForTransactionReceipt({ hash });
      };
      const beneficiary: Address = "0x000000000000000000000000000000000000bEEF";
      const handleOps = { address: entryPoint, abi: entryPointAbi, functionName: "handleOps", args: [[toPackedUserOperation(op)], beneficiary] } as const;

      await deposit(prefund - 1n);
      await assertFailedOp(publicClient.simulateContract({ ...handleOps, account: walletClient.account }), "AA31");

      await deposit(1n);
      const hash = await walletClient.writeContract(handleOps);
      const receipt = await publicClient.waitForTransactionReceipt({ hash });
      const [event] = parseEventLogs({ abi: entryPointAbi, logs: receipt.logs, eventName: "UserOperationEvent" });
      assert.equal(event.args.success, true);
      // The op was charged for more gas than the whole bundle transaction burned: the penalty is in
      // the charge, and the charge still fit a deposit of exactly maxPrefundWei.
      assert.ok(event.args.actualGasUsed > receipt.gasUsed, `penalised: ${event.args.actualGasUsed} > ${receipt.gasUsed}`);

      const { baseFeePerGas } = await publicClient.getBlock({ blockNumber: receipt.blockNumber });
      assert.ok(event.args.actualGasCost <= expectedCostWei(gas, baseFeePerGas!), `${event.args.actualGasCost} ≤ expected at the inclusion block's base fee`);
      assert.ok(expectedCostWei(gas, baseFeePerGas!) <= prefund);
      const left = await publicClient.readContract({ address: entryPoint, abi: entryPointAbi, functionName: "balanceOf", args: [paymaster] });
      assert.equal(left, prefund - event.args.actualGasCost, "the deposit paid the actual cost and got the rest of the prefund back");
    });
  }
});
