// The service's off-chain encoder must produce exactly the digest the contract checks, for any
// UserOperation on either EntryPoint version: otherwise every signature it makes fails on chain.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";

import { type Address, type Hex, bytesToHex, getAddress, parseEther, parseEventLogs, toHex } from "viem";
import { type UserOperation, getUserOperationHash, toPackedUserOperation } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import type { EntryPointVersion } from "../../service/chain/entryPoints.ts";
import { getSponsorshipHash } from "../../service/sponsorship/paymasterData.ts";
import {
  DEFAULT_GAS,
  ENTRYPOINT_ADDRESS,
  ENTRYPOINT_VERSIONS,
  aaArtifact,
  deployArtifact,
  entryPointAbi,
  executeCall,
  sponsor,
} from "../support/aa.ts";
import { TARGET, connectChain, deployStack } from "../support/paymasterFixture.ts";

const chain = await connectChain();
const { networkHelpers } = chain;
const fixtures = {
  "0.7": () => deployStack(chain, "0.7"),
  "0.8": () => deployStack(chain, "0.8"),
};

const EIP7702_MARKER: Address = "0x7702000000000000000000000000000000000000";

const randomHex = (bytes: number): Hex => bytesToHex(randomBytes(bytes));
const randomUint = (bits: number) => BigInt(randomHex(Math.ceil(bits / 8))) >> BigInt(Math.ceil(bits / 8) * 8 - bits);
const randomAddress = (): Address => getAddress(randomHex(20));
const randomUint48 = () => Number(randomUint(48));

/** A UserOperation with every signed field random, including gas values up to their full width. */
function randomUserOp(): UserOperation<"0.7"> {
  const withFactory = randomBytes(1)[0] % 2 === 0;
  return {
    sender: randomAddress(),
    nonce: randomUint(256),
    ...(withFactory ? { factory: randomAddress(), factoryData: randomHex(randomBytes(1)[0]) } : {}),
    callData: randomHex(randomBytes(1)[0] * 3),
    callGasLimit: randomUint(128),
    verificationGasLimit: randomUint(128),
    preVerificationGas: randomUint(256),
    maxFeePerGas: randomUint(128),
    maxPriorityFeePerGas: randomUint(128),
    paymasterVerificationGasLimit: randomUint(128),
    paymasterPostOpGasLimit: randomUint(128),
    paymasterData: randomHex(77),
    signature: randomHex(65),
  };
}

for (const version of ENTRYPOINT_VERSIONS) {
  describe(`sponsorship encoder on EntryPoint v${version}`, () => {
    it("computes the contract's getHash for 64 random UserOperations", async () => {
      const stack = await networkHelpers.loadFixture(fixtures[version]);
      for (let i = 0; i < 64; i++) {
        const op = { ...randomUserOp(), paymaster: stack.paymaster.address };
        const window = { validUntil: randomUint48(), validAfter: randomUint48() };
        const onChain = await stack.paymaster.read.getHash([toPackedUserOperation(op), window.validUntil, window.validAfter]);
        const offChain = getSponsorshipHash({
          userOperation: op,
          entryPointVersion: version,
          chainId: stack.chainId,
          paymaster: stack.paymaster.address,
          ...window,
        });
        assert.equal(offChain, onChain, `op ${i}: ${JSON.stringify(op, (_, v) => (typeof v === "bigint" ? toHex(v) : v))}`);
      }
    });
  });
}

describe("EIP-7702 accounts on EntryPoint v0.8", () => {
  const version: EntryPointVersion = "0.8";

  it("binds the account's delegate in the hash, as the contract does", async () => {
    const stack = await networkHelpers.loadFixture(fixtures[version]);
    const delegate = randomAddress();
    const sender = randomAddress();
    await networkHelpers.setCode(sender, `0xef0100${delegate.slice(2)}`);
    const authorization = { address: delegate, chainId: stack.chainId, nonce: 0, r: randomHex(32), s: randomHex(32), yParity: 0 };
    for (const factoryData of ["0x", randomHex(40)] as Hex[]) {
      // The 20-byte marker: with the short "0x7702", factoryData would shift into the marker's bytes.
      const op = { ...randomUserOp(), sender, factory: EIP7702_MARKER, factoryData, authorization, paymaster: stack.paymaster.address };
      const packed = toPackedUserOperation(op);
      assert.equal(packed.initCode.slice(0, 42), EIP7702_MARKER);
      const onChain = await stack.paymaster.read.getHash([packed, 10, 5]);
      const hashFor = (address: Address): Hex =>
        getSponsorshipHash({
          userOperation: { ...op, authorization: { ...authorization, address } },
          entryPointVersion: version,
          chainId: stack.chainId,
          paymaster: stack.paymaster.address,
          validUntil: 10,
          validAfter: 5,
        });
      assert.equal(hashFor(delegate), onChain);
      assert.notEqual(hashFor(randomAddress()), onChain, "another delegate gives another digest");
    }
  });

  it("sponsors a real handleOps from a 7702-delegated EOA", async () => {
    const stack = await networkHelpers.loadFixture(fixtures[version]);
    const clients = { publicClient: stack.publicClient, walletClient: stack.deployer };
    const implementation = await deployArtifact(aaArtifact(version, "Simple7702Account"), [], clients);
    const eoa = privateKeyToAccount(generatePrivateKey());
    const authorization = await eoa.signAuthorization({ address: implementation, chainId: stack.chainId, nonce: 0 });

    const unsigned: UserOperation<"0.7"> = {
      sender: eoa.address,
      nonce: 0n,
      factory: "0x7702",
      factoryData: "0x",
      authorization,
      callData: executeCall(TARGET, 0n, "0x"),
      ...DEFAULT_GAS,
      signature: "0x",
    };
    const sponsored = await sponsor(unsigned, {
      version,
      chainId: stack.chainId,
      paymaster: stack.paymaster.address,
      signer: stack.signer,
      validUntil: (await networkHelpers.time.latest()) + 3600,
    });
    const userOpHash = getUserOperationHash({
      userOperation: sponsored,
      entryPointAddress: ENTRYPOINT_ADDRESS[version],
      entryPointVersion: version,
      chainId: stack.chainId,
    });
    const op = { ...sponsored, signature: await eoa.sign({ hash: userOpHash }) };

    const hash = await stack.deployer.writeContract({
      address: stack.entryPoint,
      abi: entryPointAbi,
      functionName: "handleOps",
      args: [[toPackedUserOperation(op)], stack.beneficiary],
      authorizationList: [authorization],
    });
    const receipt = await stack.publicClient.waitForTransactionReceipt({ hash });
    const [event] = parseEventLogs({ abi: entryPointAbi, logs: receipt.logs, eventName: "UserOperationEvent" });
    assert.equal(event.args.userOpHash, userOpHash);
    assert.equal(event.args.success, true);
    assert.equal(getAddress(event.args.paymaster), getAddress(stack.paymaster.address));
    assert.equal(await stack.publicClient.getBalance({ address: eoa.address }), 0n, "the EOA held no ETH and paid none");
    assert.ok(parseEther("10") > (await stack.paymaster.read.getDeposit()), "the paymaster's deposit paid");
  });
});
