// A fresh Hardhat chain with both canonical EntryPoints, a SimpleAccount factory and a funded,
// staked FiatGasPaymaster per version. Tests take it through networkHelpers.loadFixture.
import { network } from "hardhat";
import { type Address, type Hex, parseEther, zeroAddress } from "viem";
import type { UserOperation } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { type EntryPointVersion, paymasterContractName } from "../../service/chain/entryPoints.ts";
import {
  DEFAULT_GAS,
  ENTRYPOINT_VERSIONS,
  aaArtifact,
  deployArtifact,
  deployEntryPoint,
  executeCall,
  installCreate2Deployer,
  simpleAccount,
} from "./aa.ts";

/** Where sponsored test operations send their no-op call. */
export const TARGET: Address = "0x00000000000000000000000000000000000000cc";

/** Connects to a new in-process Hardhat chain. */
export async function connectChain() {
  return network.create();
}

export type Chain = Awaited<ReturnType<typeof connectChain>>;

/** Deploys everything a sponsored handleOps needs, for one EntryPoint version. */
export async function deployStack(chain: Chain, version: EntryPointVersion) {
  const { viem, networkHelpers } = chain;
  const publicClient = await viem.getPublicClient();
  const [deployer, owner, manager, stranger, beneficiaryWallet] = await viem.getWalletClients();
  const clients = { publicClient, walletClient: deployer };
  const chainId = await publicClient.getChainId();
  const signer = privateKeyToAccount(generatePrivateKey());

  await installCreate2Deployer(networkHelpers.setCode);
  const entryPoint = await deployEntryPoint(version, clients);
  const factory = await deployArtifact(aaArtifact(version, "SimpleAccountFactory"), [entryPoint], clients);
  // Both adapters expose the base contract's ABI, so either name types the contract.
  const paymaster = await viem.deployContract(paymasterContractName[version] as "FiatGasPaymasterV7", [
    entryPoint,
    owner.account.address,
    manager.account.address,
    [signer.address],
  ]);
  await paymaster.write.deposit({ value: parseEther("10") });
  await paymaster.write.addStake([86_400], { value: parseEther("1"), account: owner.account });

  return {
    version,
    chainId,
    publicClient,
    deployer,
    owner,
    manager,
    stranger,
    beneficiary: beneficiaryWallet.account.address,
    entryPoint,
    factory,
    paymaster,
    signer,
  };
}

export type Stack = Awaited<ReturnType<typeof deployStack>>;

/** An unsigned op from a fresh SimpleAccount; with `deployed`, the account exists and the op has no initCode. */
export async function newUserOp(
  stack: Stack,
  { owner = privateKeyToAccount(generatePrivateKey()), salt = 0n, nonce = 0n, callData }: {
    owner?: ReturnType<typeof privateKeyToAccount>;
    salt?: bigint;
    nonce?: bigint;
    callData?: Hex;
  } = {},
): Promise<{ op: UserOperation<"0.7">; owner: ReturnType<typeof privateKeyToAccount> }> {
  const account = await simpleAccount(stack.publicClient, stack.factory, owner.address, salt);
  const deployed = !!(await stack.publicClient.getCode({ address: account.sender }));
  const op: UserOperation<"0.7"> = {
    sender: account.sender,
    nonce,
    ...(deployed ? {} : { factory: account.factory, factoryData: account.factoryData }),
    callData: callData ?? executeCall(TARGET, 0n, "0x"),
    ...DEFAULT_GAS,
    paymaster: zeroAddress,
    paymasterData: "0x",
    signature: "0x",
  };
  return { op, owner };
}

export { ENTRYPOINT_VERSIONS, paymasterContractName };
