// ERC-4337 pieces every on-chain test needs: the canonical EntryPoints at their canonical
// addresses, SimpleAccount factories from the published artifacts, and UserOp helpers.
import {
  type Address,
  type Hex,
  type PublicClient,
  encodeFunctionData,
  numberToHex,
} from "viem";
import {
  type UserOperation,
  entryPoint08Abi,
  getUserOperationHash,
  toPackedUserOperation,
} from "viem/account-abstraction";
import type { PrivateKeyAccount } from "viem/accounts";

import { ENTRYPOINT_ADDRESS, ENTRYPOINT_VERSIONS, type EntryPointVersion } from "../../service/chain/entryPoints.ts";
import { encodePaymasterData, getSponsorshipTypedData } from "../../service/sponsorship/paymasterData.ts";
import { aaArtifact } from "../../scripts/stack/contracts.ts";

// The deployment primitives are shared with the local stack (`npm start`).
export {
  CREATE2_DEPLOYER,
  ENTRYPOINT_SALT,
  aaArtifact,
  deployArtifact,
  deployEntryPoint,
  installCreate2Deployer,
} from "../../scripts/stack/contracts.ts";
export { ENTRYPOINT_ADDRESS, ENTRYPOINT_VERSIONS };

export const simpleAccountAbi = aaArtifact("0.8", "SimpleAccount").abi;
export const simpleAccountFactoryAbi = aaArtifact("0.8", "SimpleAccountFactory").abi;
/** The v0.8 ABI; handleOps, events, errors and the stake manager are the same in v0.7. */
export const entryPointAbi = entryPoint08Abi;

/** A SimpleAccount owned by `owner`, with what its first UserOp needs to deploy it. */
export async function simpleAccount(
  publicClient: PublicClient,
  factory: Address,
  owner: Address,
  salt = 0n,
): Promise<{ sender: Address; factory: Address; factoryData: Hex }> {
  const sender = await publicClient.readContract({
    address: factory,
    abi: simpleAccountFactoryAbi,
    functionName: "getAddress",
    args: [owner, salt],
  });
  const factoryData = encodeFunctionData({
    abi: simpleAccountFactoryAbi,
    functionName: "createAccount",
    args: [owner, salt],
  });
  return { sender: sender as Address, factory, factoryData };
}

/** SimpleAccount.execute calldata. */
export function executeCall(target: Address, value: bigint, data: Hex): Hex {
  return encodeFunctionData({ abi: simpleAccountAbi, functionName: "execute", args: [target, value, data] });
}

/** Gas limits and fees that comfortably fit a SimpleAccount op on a local chain. */
export const DEFAULT_GAS = {
  callGasLimit: 100_000n,
  verificationGasLimit: 500_000n,
  preVerificationGas: 60_000n,
  maxFeePerGas: 3_000_000_000n,
  maxPriorityFeePerGas: 1_000_000_000n,
  paymasterVerificationGasLimit: 60_000n,
  paymasterPostOpGasLimit: 0n,
} as const;

export type SponsorshipParameters = {
  version: EntryPointVersion;
  chainId: number;
  paymaster: Address;
  signer: PrivateKeyAccount;
  validUntil: number;
  validAfter?: number;
};

/** Signs `op` as the paymaster's signer and fills its paymaster fields. */
export async function sponsor(
  op: UserOperation<"0.7">,
  { version, chainId, paymaster, signer, validUntil, validAfter = 0 }: SponsorshipParameters,
): Promise<UserOperation<"0.7">> {
  const signature = await signer.signTypedData(
    getSponsorshipTypedData({ userOperation: op, entryPointVersion: version, chainId, paymaster, validUntil, validAfter }),
  );
  return { ...op, paymaster, paymasterData: encodePaymasterData({ validUntil, validAfter, signature }) };
}

/** The account owner's signature: EIP-191 over the userOpHash on v0.7, the raw EIP-712 hash on v0.8. */
export async function signAsAccount(
  op: UserOperation<"0.7">,
  version: EntryPointVersion,
  chainId: number,
  owner: PrivateKeyAccount,
): Promise<UserOperation<"0.7">> {
  const hash = getUserOperationHash({
    userOperation: op,
    entryPointAddress: ENTRYPOINT_ADDRESS[version],
    entryPointVersion: version,
    chainId,
  });
  const signature =
    version === "0.7" ? await owner.signMessage({ message: { raw: hash } }) : await owner.sign({ hash });
  return { ...op, signature };
}

/** handleOps calldata for a bundle. */
export function handleOpsCall(ops: UserOperation<"0.7">[], beneficiary: Address): Hex {
  return encodeFunctionData({
    abi: entryPointAbi,
    functionName: "handleOps",
    args: [ops.map((op) => toPackedUserOperation(op)), beneficiary],
  });
}

/** A 6-byte timestamp as the contract reads it, for building malformed data by hand. */
export const uint48Hex = (value: number) => numberToHex(value, { size: 6 });
