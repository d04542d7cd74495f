// The contracts of a local chain: the canonical EntryPoints (through the CREATE2 deployer, so they
// land at their canonical addresses), the published SimpleAccountFactory, our paymasters (staked and
// funded) and the mock price feed. The test fixtures in test/support deploy with the same primitives.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import { type Abi, type Account, type Address, type Chain, type Hex, type PublicClient, type Transport, type WalletClient, concat, getAddress, getContractAddress, parseEther, toHex } from "viem";
import { mnemonicToAccount } from "viem/accounts";

import { ENTRYPOINT_ADDRESS, ENTRYPOINT_VERSIONS, type EntryPointVersion, paymasterContractName } from "../../service/chain/entryPoints.ts";

const require = createRequire(import.meta.url);
const root = path.resolve(import.meta.dirname, "../..");

export type Artifact = { abi: Abi; bytecode: Hex };

/** The well-known development mnemonic: anvil and Hardhat's node fund its first accounts. */
export const DEV_MNEMONIC = "test test test test test test test test test test test junk";

/** The funded dev account `index` of anvil and Hardhat's node. */
export function devAccount(index: number) {
  return mnemonicToAccount(DEV_MNEMONIC, { addressIndex: index });
}

/** The private key of dev account `index`. */
export function devPrivateKey(index: number): Hex {
  return toHex(devAccount(index).getHdKey().privateKey!);
}

const packageOf = { "0.7": "@account-abstraction/contracts", "0.8": "@account-abstraction/contracts-v8" } as const;

/** A published artifact of `@account-abstraction/contracts` for the given EntryPoint version. */
export function aaArtifact(version: EntryPointVersion, name: string): Artifact {
  return require(`${packageOf[version]}/artifacts/${name}.json`) as Artifact;
}

/** A compiled contract from this project's Hardhat build (`npm run build`). */
export function projectArtifact(source: string, name: string): Artifact {
  const file = path.join(root, "artifacts", source, `${name}.json`);
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`no artifact at ${file}: run \`npm run build\` first`, { cause: error });
  }
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

export type Clients = { publicClient: PublicClient; walletClient: WalletClient };

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

/** What a local stack deploys, by EntryPoint version, plus the shared price feed. */
export type LocalContracts = {
  entryPoints: Record<EntryPointVersion, Address>;
  simpleAccountFactories: Record<EntryPointVersion, Address>;
  paymasters: Record<EntryPointVersion, Address>;
  priceFeed: Address;
};

/** The mock feed's pair and its first answer: ¥25,000.00 per ETH with Chainlink's 8 decimals. */
export const LOCAL_PRICE_FEED = { decimals: 8, description: "ETH / CNY", answer: 2_500_000_000_000n } as const;

/**
 * Deploys everything a sponsored UserOperation needs on a fresh local chain: both EntryPoints, a
 * SimpleAccountFactory and a FiatGasPaymaster per version (owned and managed by the wallet's
 * account, `signer` authorised, `deposit` in its EntryPoint deposit and `stake` staked for a day,
 * since validation reads the paymaster's storage), and a MockAggregatorV3 owned by the same account.
 */
export async function deployLocalContracts(
  { publicClient, walletClient }: { publicClient: PublicClient; walletClient: WalletClient<Transport, Chain, Account> },
  { signer, deposit = parseEther("100"), stake = parseEther("1") }: { signer: Address; deposit?: bigint; stake?: bigint },
): Promise<LocalContracts> {
  const clients = { publicClient, walletClient };
  const owner = walletClient.account.address;
  const contracts = { entryPoints: {}, simpleAccountFactories: {}, paymasters: {} } as LocalContracts;
  for (const version of ENTRYPOINT_VERSIONS) {
    const entryPoint = await deployEntryPoint(version, clients);
    const factory = await deployArtifact(aaArtifact(version, "SimpleAccountFactory"), [entryPoint], clients);
    const name = paymasterContractName[version];
    const artifact = projectArtifact(`contracts/${name}.sol`, name);
    const paymaster = await deployArtifact(artifact, [entryPoint, owner, owner, [signer]], clients);
    for (const [functionName, value, args] of [["deposit", deposit, []], ["addStake", stake, [86_400]]] as const) {
      const hash = await walletClient.writeContract({ address: paymaster, abi: artifact.abi, functionName, args, value });
      const receipt = await publicClient.waitForTransactionReceipt({ hash });
      if (receipt.status !== "success") throw new Error(`${name}.${functionName} reverted`);
    }
    contracts.entryPoints[version] = entryPoint;
    contracts.simpleAccountFactories[version] = factory;
    contracts.paymasters[version] = paymaster;
  }
  const feed = projectArtifact("contracts/mocks/MockAggregatorV3.sol", "MockAggregatorV3");
  contracts.priceFeed = await deployArtifact(feed, [LOCAL_PRICE_FEED.decimals, LOCAL_PRICE_FEED.description, LOCAL_PRICE_FEED.answer], clients);
  return contracts;
}
