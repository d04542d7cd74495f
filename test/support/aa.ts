// ERC-4337 pieces every on-chain test needs: the canonical EntryPoints at their canonical
// addresses, SimpleAccount factories from the published artifacts, and UserOp helpers.
import { createRequire } from "node:module";

import {
  type Abi,
  type Address,
  type Hex,
  type PublicClient,
  type WalletClient,
  concat,
  encodeFunctionData,
  getAddress,
  getContractAddress,
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

const require = createRequire(import.meta.url);

type Artifact = { abi: Abi; bytecode: Hex };

const packageOf = { "0.7": "@account-abstraction/contracts", "0.8": "@account-abstraction/contracts-v8" } as const;

/** A published artifact of `@account-abstraction/contracts` for the given EntryPoint version. */
export function aaArtifact(version: EntryPointVersion, name: string): Artifact {
  return require(`${packageOf[version]}/artifacts/${name}.json`) as Artifact;
}

/** Arachnid's deterministic deployer, which anvil and public chains have at this address. */
export const CREATE2_DEPLOYER: Address = "0x4e59b44847b379578588920ca78fbf26c0b4956c";
const CREATE2_DEPLOYER_CODE: Hex =
  "0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf3";

/** The salts eth-infinitism deployed each EntryPoint with, which yield the canonical addresses. */
export const ENTRYPOINT_SALT = {
  "0.7": "0x90d8084deab30c2a37c45e8d47f49f2f7965183cb6990a98943ef94940681de3",
  "0.8": "0x0a59dbff790c23c976a548690c27297883cc66b4c67024f9117b0238995e35e9",
} as const satisfies Record<EntryPointVersion, Hex>;

export { ENTRYPOINT_ADDRESS, ENTRYPOINT_VERSIONS };

type Clients = { publicClient: PublicClient; walletClient: WalletClient };

/** Installs the CREATE2 deployer on a node that lacks it (Hardhat's). */
export async function installCreate2Deployer(setCode: (address: string, code: string) => Promise<void>) {
  await setCode(CREATE2_DEPLOYER, CREATE2_DEPLOYER_CODE);
}

/** Deploys the canonical EntryPoint bytecode through CREATE2, landing at the canonical address. */
export async function deployEntryPoint(version: EntryPointVersion, { publicClient, walletClient }: Clients) {
  const { bytecode } = aaArtifact(version, "EntryPoint");
  const salt = ENTRYPOINT_SALT[version];
  const address = getContractAddress({ opcode: "CREATE2", from: CREATE2_DEPLOYER, salt, bytecode });
  if (address !== ENTRYPOINT_ADDRESS[version]) throw new Error(`EntryPoint ${version} artifact is not canonical`);
  if (!(await publicClient.getCode({ address }))) {
    const hash = await walletClient.sendTransaction({
      account: walletClient.account!,
      chain: walletClient.chain,
      to: CREATE2_DEPLOYER,
      data: concat([salt, bytecode]),
    });
    await publicClient.waitForTransactionReceipt({ hash });
  }
  return address;
}

/** Deploys a contract from an artifact and waits for it. */
export async function deployArtifact(artifact: Artifact, args: unknown[], { publicClient, walletClient }: Clients) {
  const hash = await walletClient.deployContract({
    abi: artifact.abi,
    bytecode: artifact.bytecode,
    args,
    account: walletClient.account!,
    chain: walletClient.chain,
  });
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  return getAddress(receipt.contractAddress!);
}

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
