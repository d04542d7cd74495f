import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { type Address, type Hex, concat, getAddress, parseEther, parseEventLogs, slice, zeroHash } from "viem";
import { type UserOperation, toPackedUserOperation } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { decodePaymasterData, encodePaymasterData } from "../../service/sponsorship/paymasterData.ts";
import { ENTRYPOINT_VERSIONS, entryPointAbi, signAsAccount, sponsor, uint48Hex } from "../support/aa.ts";
import { assertFailedOp, innerRevert, revertOf, unpackValidationData } from "../support/assertions.ts";
import { type Stack, TARGET, connectChain, deployStack, newUserOp, paymasterContractName } from "../support/paymasterFixture.ts";

const chain = await connectChain();
const { networkHelpers, viem } = chain;
const fixtures = {
  "0.7": () => deployStack(chain, "0.7"),
  "0.8": () => deployStack(chain, "0.8"),
};

const HOUR = 3600;

/** `op` with its signed window edited in place and the signature kept. */
function withWindow(
  op: UserOperation<"0.7">,
  edit: (window: { validUntil: number; validAfter: number }) => { validUntil: number; validAfter: number },
): UserOperation<"0.7"> {
  const { validUntil, validAfter, signature } = decodePaymasterData(op.paymasterData!);
  return { ...op, paymasterData: encodePaymasterData({ ...edit({ validUntil, validAfter }), signature }) };
}

for (const version of ENTRYPOINT_VERSIONS) {
  describe(`FiatGasPaymaster on EntryPoint v${version}`, () => {
    const load = () => networkHelpers.loadFixture(fixtures[version]);

    async function validUntil(seconds = HOUR) {
      return (await networkHelpers.time.latest()) + seconds;
    }

    async function sponsored(stack: Stack, op: UserOperation<"0.7">, overrides: { validUntil?: number; validAfter?: number } = {}) {
      return sponsor(op, {
        version,
        chainId: stack.chainId,
        paymaster: stack.paymaster.address,
        signer: stack.signer,
        validUntil: overrides.validUntil ?? (await validUntil()),
        validAfter: overrides.validAfter,
      });
    }

    async function handleOps(stack: Stack, ops: UserOperation<"0.7">[]) {
      const hash = await stack.deployer.writeContract({
        address: stack.entryPoint,
        abi: entryPointAbi,
        functionName: "handleOps",
        args: [ops.map((op) => toPackedUserOperation(op)), stack.beneficiary],
      });
      return stack.publicClient.waitForTransactionReceipt({ hash });
    }

    /** Validation data the paymaster returns for `op`, asked as the EntryPoint. */
    async function validate(stack: Stack, op: UserOperation<"0.7">) {
      const [context, validationData] = await stack.publicClient.readContract({
        address: stack.paymaster.address,
        abi: stack.paymaster.abi,
        functionName: "validatePaymasterUserOp",
        args: [toPackedUserOperation(op), zeroHash, 0n],
        account: stack.entryPoint,
      });
      return { context, ...unpackValidationData(validationData) };
    }

    function userOperationEvents(receipt: Awaited<ReturnType<typeof handleOps>>) {
      return parseEventLogs({ abi: entryPointAbi, logs: receipt.logs, eventName: "UserOperationEvent" });
    }

    describe("sponsored handleOps from a SimpleAccount", () => {
      it("pays for the first op, which deploys the account, and for later ones", async () => {
        const stack = await load();
        const depositBefore = await stack.paymaster.read.getDeposit();
        const { op: first, owner } = await newUserOp(stack);

        const firstReceipt = await handleOps(stack, [await signAsAccount(await sponsored(stack, first), version, stack.chainId, owner)]);
        const [deployed] = userOperationEvents(firstReceipt);
        assert.equal(deployed.args.success, true);
        assert.equal(getAddress(deployed.args.paymaster), getAddress(stack.paymaster.address));
        assert.ok(await stack.publicClient.getCode({ address: first.sender }), "account deployed");

        const { op: second } = await newUserOp(stack, { owner, nonce: 1n });
        assert.equal(second.factory, undefined, "the second op carries no initCode");
        const secondReceipt = await handleOps(stack, [await signAsAccount(await sponsored(stack, second), version, stack.chainId, owner)]);
        const [later] = userOperationEvents(secondReceipt);
        assert.equal(later.args.success, true);
        assert.equal(later.args.nonce, 1n);

        const charged = deployed.args.actualGasCost + later.args.actualGasCost;
        assert.equal(await stack.paymaster.read.getDeposit(), depositBefore - charged, "the deposit paid for both ops");
        assert.equal(await stack.publicClient.getBalance({ address: first.sender }), 0n, "the account paid nothing");
      });

      it("returns an empty context, so the EntryPoint never calls postOp", async () => {
        const stack = await load();
        const { op } = await newUserOp(stack);
        const result = await validate(stack, await sponsored(stack, op));
        assert.equal(result.context, "0x");
        assert.equal(result.sigFailed, false);
        assert.deepEqual(
          await revertOf(stack.paymaster.read.postOp([0, "0x", 0n, 0n])),
          { errorName: "PostOpNotSupported", args: [] },
        );
      });

      it("packs the signed window into the validation data", async () => {
        const stack = await load();
        const { op } = await newUserOp(stack);
        const until = await validUntil(600);
        const result = await validate(stack, await sponsored(stack, op, { validUntil: until, validAfter: 1234 }));
        assert.deepEqual(result, { context: "0x", sigFailed: false, validUntil: until, validAfter: 1234 });
      });
    });

    describe("failure paths", () => {
      it("reports AA34 for a signature from a key that is not a signer", async () => {
        const stack = await load();
        const { op, owner } = await newUserOp(stack);
        const forged = await sponsor(op, {
          version,
          chainId: stack.chainId,
          paymaster: stack.paymaster.address,
          signer: privateKeyToAccount(generatePrivateKey()),
          validUntil: await validUntil(),
        });
        assert.equal((await validate(stack, forged)).sigFailed, true, "returns the failure bit instead of reverting");
        await assertFailedOp(handleOps(stack, [await signAsAccount(forged, version, stack.chainId, owner)]), "AA34");
      });

      const tamperings: [string, (op: UserOperation<"0.7">, stranger: Address) => UserOperation<"0.7">][] = [
        ["sender", (op, stranger) => ({ ...op, sender: stranger })],
        ["nonce", (op) => ({ ...op, nonce: op.nonce + 1n })],
        ["initCode (factory)", (op, stranger) => ({ ...op, factory: stranger })],
        ["initCode (factoryData)", (op) => ({ ...op, factoryData: concat([op.factoryData!, "0x00"]) })],
        ["callData", (op) => ({ ...op, callData: concat([op.callData, "0x01"]) })],
        ["verificationGasLimit", (op) => ({ ...op, verificationGasLimit: op.verificationGasLimit + 1n })],
        ["callGasLimit", (op) => ({ ...op, callGasLimit: op.callGasLimit + 1n })],
        ["paymasterVerificationGasLimit", (op) => ({ ...op, paymasterVerificationGasLimit: op.paymasterVerificationGasLimit! + 1n })],
        ["paymasterPostOpGasLimit", (op) => ({ ...op, paymasterPostOpGasLimit: op.paymasterPostOpGasLimit! + 1n })],
        ["preVerificationGas", (op) => ({ ...op, preVerificationGas: op.preVerificationGas + 1n })],
        ["maxFeePerGas", (op) => ({ ...op, maxFeePerGas: op.maxFeePerGas + 1n })],
        ["maxPriorityFeePerGas", (op) => ({ ...op, maxPriorityFeePerGas: op.maxPriorityFeePerGas + 1n })],
        ["validUntil", (op) => withWindow(op, (w) => ({ ...w, validUntil: w.validUntil + 1 }))],
        ["validAfter", (op) => withWindow(op, (w) => ({ ...w, validAfter: w.validAfter + 1 }))],
      ];
      for (const [field, tamper] of tamperings) {
        it(`fails the signature when ${field} changes after signing`, async () => {
          const stack = await load();
          const { op } = await newUserOp(stack);
          const signed = await sponsored(stack, op);
          assert.equal((await validate(stack, signed)).sigFailed, false, "untampered op validates");
          assert.equal((await validate(stack, tamper(signed, stack.stranger.account.address))).sigFailed, true);
        });
      }

      it("ignores the account's own signature, which the account checks", async () => {
        const stack = await load();
        const { op } = await newUserOp(stack);
        const signed = await sponsored(stack, op);
        assert.equal((await validate(stack, { ...signed, signature: "0x1234" })).sigFailed, false);
      });

      it("reports AA34 for a tampered op in a real handleOps", async () => {
        const stack = await load();
        const { op, owner } = await newUserOp(stack);
        const tampered = { ...(await sponsored(stack, op)), preVerificationGas: op.preVerificationGas + 100_000n };
        await assertFailedOp(handleOps(stack, [await signAsAccount(tampered, version, stack.chainId, owner)]), "AA34");
      });

      it("reports AA32 once validUntil has passed", async () => {
        const stack = await load();
        const { op, owner } = await newUserOp(stack);
        const expired = await sponsored(stack, op, { validUntil: await validUntil(60) });
        await networkHelpers.time.increase(61);
        await assertFailedOp(handleOps(stack, [await signAsAccount(expired, version, stack.chainId, owner)]), "AA32");
      });

      it("reports AA32 before validAfter", async () => {
        const stack = await load();
        const { op, owner } = await newUserOp(stack);
        const early = await sponsored(stack, op, { validAfter: await validUntil(600) });
        await assertFailedOp(handleOps(stack, [await signAsAccount(early, version, stack.chainId, owner)]), "AA32");
      });

      it("fails a signature made for another chain id", async () => {
        const stack = await load();
        const { op, owner } = await newUserOp(stack);
        const otherChain = await sponsor(op, {
          version,
          chainId: stack.chainId + 1,
          paymaster: stack.paymaster.address,
          signer: stack.signer,
          validUntil: await validUntil(),
        });
        await assertFailedOp(handleOps(stack, [await signAsAccount(otherChain, version, stack.chainId, owner)]), "AA34");
      });

      it("fails a signature made for another deployment with the same signer", async () => {
        const stack = await load();
        const twin = await viem.deployContract(paymasterContractName[version] as "FiatGasPaymasterV7", [
          stack.entryPoint,
          stack.owner.account.address,
          stack.manager.account.address,
          [stack.signer.address],
        ]);
        await twin.write.deposit({ value: parseEther("1") });
        const { op, owner } = await newUserOp(stack);
        const forTwin = await sponsored(stack, op);
        const replayed = { ...forTwin, paymaster: twin.address };
        await assertFailedOp(handleOps(stack, [await signAsAccount(replayed, version, stack.chainId, owner)]), "AA34");
      });

      it("fails signatures of a removed signer", async () => {
        const stack = await load();
        const { op, owner } = await newUserOp(stack);
        const signed = await sponsored(stack, op);
        await stack.paymaster.write.removeSigner([stack.signer.address], { account: stack.manager.account });
        await assertFailedOp(handleOps(stack, [await signAsAccount(signed, version, stack.chainId, owner)]), "AA34");
      });

      it("reverts with InvalidPaymasterDataLength for malformed paymasterData", async () => {
        const stack = await load();
        const { op, owner } = await newUserOp(stack);
        const signed = await sponsored(stack, op);
        for (const paymasterData of [slice(signed.paymasterData!, 0, 76), concat([signed.paymasterData!, "0x00"]), "0x" as Hex]) {
          const malformed = { ...signed, paymasterData };
          const expectedLength = 52n + BigInt((paymasterData.length - 2) / 2);
          assert.deepEqual(await revertOf(validate(stack, malformed)), {
            errorName: "InvalidPaymasterDataLength",
            args: [expectedLength],
          });
          const [, , inner] = await assertFailedOp(handleOps(stack, [await signAsAccount(malformed, version, stack.chainId, owner)]), "AA33");
          assert.equal(innerRevert(stack.paymaster.abi, inner as Hex).errorName, "InvalidPaymasterDataLength");
        }
      });

      it("refuses validation calls that do not come from the EntryPoint", async () => {
        const stack = await load();
        const { op } = await newUserOp(stack);
        const signed = toPackedUserOperation(await sponsored(stack, op));
        assert.equal(
          (await revertOf(stack.paymaster.read.validatePaymasterUserOp([signed, zeroHash, 0n], { account: stack.stranger.account.address }))).errorName,
          "NotFromEntryPoint",
        );
      });
    });

    describe("signer rotation", () => {
      it("accepts old and new keys during a rotation, then only the new one", async () => {
        const stack = await load();
        const next = privateKeyToAccount(generatePrivateKey());
        const { op } = await newUserOp(stack);
        const window = { version, chainId: stack.chainId, paymaster: stack.paymaster.address, validUntil: await validUntil() };

        const addHash = await stack.paymaster.write.addSigner([next.address], { account: stack.manager.account });
        const added = await stack.paymaster.getEvents.SignerAdded({}, { blockHash: (await stack.publicClient.waitForTransactionReceipt({ hash: addHash })).blockHash });
        assert.equal(added[0].args.signer, next.address);
        assert.deepEqual(await stack.paymaster.read.signers(), [stack.signer.address, next.address]);
        assert.equal((await validate(stack, await sponsor(op, { ...window, signer: stack.signer }))).sigFailed, false);
        assert.equal((await validate(stack, await sponsor(op, { ...window, signer: next }))).sigFailed, false);

        await stack.paymaster.write.removeSigner([stack.signer.address], { account: stack.manager.account });
        assert.deepEqual(await stack.paymaster.read.signers(), [next.address]);
        assert.equal((await validate(stack, await sponsor(op, { ...window, signer: stack.signer }))).sigFailed, true);
        assert.equal((await validate(stack, await sponsor(op, { ...window, signer: next }))).sigFailed, false);
      });

      it("rejects zero, duplicate and unknown signers", async () => {
        const stack = await load();
        const asManager = { account: stack.manager.account };
        assert.equal((await revertOf(stack.paymaster.write.addSigner(["0x0000000000000000000000000000000000000000"], asManager))).errorName, "ZeroAddress");
        assert.deepEqual(await revertOf(stack.paymaster.write.addSigner([stack.signer.address], asManager)), {
          errorName: "SignerAlreadyAdded",
          args: [stack.signer.address],
        });
        assert.deepEqual(await revertOf(stack.paymaster.write.removeSigner([TARGET], asManager)), {
          errorName: "SignerNotFound",
          args: [getAddress(TARGET)],
        });
      });
    });

    describe("roles", () => {
      it("lets only the owner withdraw the deposit", async () => {
        const stack = await load();
        const to = stack.stranger.account.address;
        for (const caller of [stack.manager, stack.stranger]) {
          assert.equal(
            (await revertOf(stack.paymaster.write.withdrawTo([to, 1n], { account: caller.account }))).errorName,
            "OwnableUnauthorizedAccount",
          );
        }
        const before = await stack.publicClient.getBalance({ address: to });
        const deposit = await stack.paymaster.read.getDeposit();
        await stack.paymaster.write.withdrawTo([to, parseEther("1")], { account: stack.owner.account });
        assert.equal(await stack.publicClient.getBalance({ address: to }), before + parseEther("1"));
        assert.equal(await stack.paymaster.read.getDeposit(), deposit - parseEther("1"));
      });

      it("lets only the owner stake, unlock and withdraw the stake", async () => {
        const stack = await load();
        for (const call of [
          () => stack.paymaster.write.addStake([86_400], { value: 1n, account: stack.manager.account }),
          () => stack.paymaster.write.unlockStake({ account: stack.manager.account }),
          () => stack.paymaster.write.withdrawStake([stack.manager.account.address], { account: stack.manager.account }),
        ]) {
          assert.equal((await revertOf(call())).errorName, "OwnableUnauthorizedAccount");
        }
        const info = () => stack.publicClient.readContract({
          address: stack.entryPoint,
          abi: entryPointAbi,
          functionName: "getDepositInfo",
          args: [stack.paymaster.address],
        }) as Promise<{ staked: boolean; stake: bigint; withdrawTime: number }>;
        assert.equal((await info()).staked, true);
        await stack.paymaster.write.unlockStake({ account: stack.owner.account });
        assert.equal((await info()).staked, false);
        await networkHelpers.time.increase(86_401);
        const to = stack.stranger.account.address;
        const before = await stack.publicClient.getBalance({ address: to });
        await stack.paymaster.write.withdrawStake([to], { account: stack.owner.account });
        assert.equal(await stack.publicClient.getBalance({ address: to }), before + parseEther("1"));
        assert.equal((await info()).stake, 0n);
      });

      it("lets only the manager or the owner rotate signers", async () => {
        const stack = await load();
        const next = privateKeyToAccount(generatePrivateKey()).address;
        assert.equal((await revertOf(stack.paymaster.write.addSigner([next], { account: stack.stranger.account }))).errorName, "NotManager");
        assert.equal((await revertOf(stack.paymaster.write.removeSigner([stack.signer.address], { account: stack.stranger.account }))).errorName, "NotManager");
        await stack.paymaster.write.addSigner([next], { account: stack.owner.account });
        assert.equal(await stack.paymaster.read.isSigner([next]), true);
      });

      it("lets only the owner move the manager role, with an event", async () => {
        const stack = await load();
        const newManager = stack.stranger.account.address;
        assert.equal((await revertOf(stack.paymaster.write.setManager([newManager], { account: stack.manager.account }))).errorName, "OwnableUnauthorizedAccount");
        await stack.paymaster.write.setManager([newManager], { account: stack.owner.account });
        const [event] = await stack.paymaster.getEvents.ManagerChanged();
        assert.deepEqual(event.args, { previousManager: getAddress(stack.manager.account.address), newManager: getAddress(newManager) });
        assert.equal((await revertOf(stack.paymaster.write.addSigner([TARGET], { account: stack.manager.account }))).errorName, "NotManager");
      });

      it("hands ownership over in two steps and never renounces it", async () => {
        const stack = await load();
        const heir = stack.stranger;
        await stack.paymaster.write.transferOwnership([heir.account.address], { account: stack.owner.account });
        assert.equal(getAddress(await stack.paymaster.read.owner()), getAddress(stack.owner.account.address), "pending, not yet moved");
        assert.equal((await revertOf(stack.paymaster.write.withdrawTo([heir.account.address, 1n], { account: heir.account }))).errorName, "OwnableUnauthorizedAccount");
        await stack.paymaster.write.acceptOwnership({ account: heir.account });
        assert.equal(getAddress(await stack.paymaster.read.owner()), getAddress(heir.account.address));
        assert.equal((await revertOf(stack.paymaster.read.renounceOwnership({ account: heir.account.address }))).errorName, "RenounceDisabled");
      });
    });

    it("encodes paymasterData the way the contract reads it", async () => {
      const stack = await load();
      const { op } = await newUserOp(stack);
      const signed = await sponsored(stack, op, { validUntil: 0xa1b2c3d4e5, validAfter: 0x0102030405 });
      assert.equal(signed.paymasterData!.slice(0, 26), `${uint48Hex(0xa1b2c3d4e5)}${uint48Hex(0x0102030405).slice(2)}`);
      const decoded = decodePaymasterData(signed.paymasterData!);
      assert.equal(encodePaymasterData(decoded), signed.paymasterData);
      const result = await validate(stack, signed);
      assert.deepEqual([result.validUntil, result.validAfter], [0xa1b2c3d4e5, 0x0102030405]);
    });
  });
}
