// A real JSON-RPC chain for service tests: anvil (from npm) on a free loopback port, with both
// canonical EntryPoints, SimpleAccount factories and a staked, funded FiatGasPaymaster per version.
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";

import {
  type Address,
  createPublicClient,
  createTestClient,
  createWalletClient,
  http,
  parseAbi,
  parseEther,
} from "viem";
import { type Account, type PrivateKeyAccount, generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";

import { ENTRYPOINT_VERSIONS, type EntryPointVersion, paymasterContractName } from "../../service/chain/entryPoints.ts";
import { devAccount, projectArtifact } from "../../scripts/stack/contracts.ts";
import { freePort } from "../../scripts/stack/ports.ts";
import { aaArtifact, deployArtifact, deployEntryPoint } from "./aa.ts";

// Shared with the local stack (`npm start`): anvil's dev accounts and this project's build output.
export { devAccount, projectArtifact };

const require = createRequire(import.meta.url);

export type AnvilChain = Awaited<ReturnType<typeof startAnvil>>;

/** Starts anvil on 127.0.0.1 with automine and the given chain id. */
export async function startAnvil({ chainId = 31337 }: { chainId?: number } = {}) {
  const port = await freePort();
  const binary = path.join(path.dirname(require.resolve("@foundry-rs/anvil/package.json")), "bin.mjs");
  const child: ChildProcess = spawn(process.execPath, [binary, "--host", "127.0.0.1", "--port", String(port), "--chain-id", String(chainId), "--silent"], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  const chain = { ...foundry, id: chainId, rpcUrls: { default: { http: [url] } } };
  const transport = http(url, { retryCount: 0 });
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 50 });
  for (let attempt = 0; ; attempt++) {
    try {
      await publicClient.getChainId();
      break;
    } catch (error) {
      if (attempt > 200) throw new Error(`anvil did not start on port ${port}`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  const deployer = devAccount(0);
  const walletClient = createWalletClient({ chain, transport, account: deployer });
  const testClient = createTestClient({ chain, transport, mode: "anvil" });
  return {
    url,
    chainId,
    chain,
    publicClient,
    walletClient,
    testClient,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

export type Deployment = {
  entryPoint: Address;
  factory: Address;
  paymaster: Address;
};

/** Deploys EntryPoints (canonical addresses), factories and a funded, staked paymaster per version. */
export async function deployPaymasters(
  anvil: AnvilChain,
  { signer = privateKeyToAccount(generatePrivateKey()), owner = anvil.walletClient.account }: { signer?: PrivateKeyAccount; owner?: Account } = {},
): Promise<{ signer: PrivateKeyAccount; deployments: Record<EntryPointVersion, Deployment> }> {
  const clients = { publicClient: anvil.publicClient, walletClient: anvil.walletClient };
  const deployments = {} as Record<EntryPointVersion, Deployment>;
  for (const version of ENTRYPOINT_VERSIONS) {
    const entryPoint = await deployEntryPoint(version, clients);
    const factory = await deployArtifact(aaArtifact(version, "SimpleAccountFactory"), [entryPoint], clients);
    const name = paymasterContractName[version];
    const artifact = projectArtifact(`contracts/${name}.sol`, name);
    const paymaster = await deployArtifact(artifact, [entryPoint, owner.address, owner.address, [signer.address]], clients);
    for (const [functionName, value, args] of [["deposit", parseEther("10"), []], ["addStake", parseEther("1"), [86_400]]] as const) {
      const hash = await anvil.walletClient.writeContract({ address: paymaster, abi: artifact.abi, functionName, args, value, account: owner, chain: anvil.chain });
      await anvil.publicClient.waitForTransactionReceipt({ hash });
    }
    deployments[version] = { entryPoint, factory, paymaster };
  }
  return { signer, deployments };
}

/** Adds `wei` to a paymaster's EntryPoint deposit from anvil's first account (deposit() is open to anyone). */
export async function depositTo(anvil: AnvilChain, paymaster: Address, wei: bigint): Promise<void> {
  const abi = parseAbi(["function deposit() payable"]);
  const hash = await anvil.walletClient.writeContract({ address: paymaster, abi, functionName: "deposit", value: wei, account: anvil.walletClient.account, chain: anvil.chain });
  await anvil.publicClient.waitForTransactionReceipt({ hash });
}
