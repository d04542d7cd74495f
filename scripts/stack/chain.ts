// The local chain: Hardhat's node (EDR) on loopback. Alto runs against it with safe mode off (its
// safe mode traces with a JavaScript tracer, which EDR does not implement); everything else the
// stack needs, the CREATE2 deployer aside, it has. Its state lives in memory only.
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { stripVTControlCharacters } from "node:util";

import { type Address, type Hex, createPublicClient, createWalletClient, defineChain, formatEther, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";

import { type LocalContracts, DEV_MNEMONIC, devAccount, devPrivateKey, deployLocalContracts, installCreate2Deployer } from "./contracts.ts";

const root = path.resolve(import.meta.dirname, "../..");

/** The chain id of the local chain (Hardhat's default). */
export const LOCAL_CHAIN_ID = 31337;
/** Dev accounts Hardhat's node funds, each with 10,000 ETH. */
export const DEV_ACCOUNT_COUNT = 20;
/** The deployer, paymaster owner and manager, and price feed owner. */
export const DEPLOYER_INDEX = 0;

/** The hardhat CLI, run with this process's Node (22) rather than through npx, so stopping the child stops the node itself. */
export const HARDHAT_CLI = path.join(root, "node_modules/hardhat/dist/src/cli.js");

/** Node's arguments that start Hardhat's node on 127.0.0.1:`port`. */
export function hardhatNodeArgs(port: number): string[] {
  return [HARDHAT_CLI, "node", "--hostname", "127.0.0.1", "--port", String(port), "--chain-id", String(LOCAL_CHAIN_ID)];
}

/** Methods whose requests the chain log keeps when they succeed: the ones that change the chain. */
const LOGGED_METHODS = new Set(["eth_sendRawTransaction", "eth_sendTransaction"]);

/**
 * A filter for Hardhat's node's output. It logs every request it serves, as the method's name and,
 * for calls and transactions, an indented block. The service and the bundler poll it every second,
 * so those, and the empty blocks of interval mining, would bury what matters and grow the log by
 * megabytes an hour: this keeps transactions, failed requests (printed in red, SGR 31) and
 * everything else the node says, and drops successful reads.
 */
export function chainLogFilter(): (line: string) => boolean {
  let keepingBlock = true;
  return (line) => {
    const plain = stripVTControlCharacters(line);
    const request = /^([a-z]+_\w+)( \(\d+\))?$/.exec(plain);
    if (request) {
      keepingBlock = LOGGED_METHODS.has(request[1]) || line.includes("\u001b[31m");
      return keepingBlock;
    }
    // A request's block is indented and ends with a blank line.
    if (plain === "" || plain.startsWith(" ")) return keepingBlock;
    keepingBlock = true;
    return !plain.startsWith("Mined empty block");
  };
}

/** The artifacts the stack deploys from this project's build. */
const PROJECT_ARTIFACTS = ["FiatGasPaymasterV7.sol/FiatGasPaymasterV7.json", "FiatGasPaymasterV8.sol/FiatGasPaymasterV8.json", "mocks/MockAggregatorV3.sol/MockAggregatorV3.json"];

/**
 * Whether `hardhat build` must run: an artifact the stack deploys is missing, or a contract source
 * changed since the last build (which rewrites the compile cache, even when it had nothing to do).
 */
export function contractsNeedBuild(): boolean {
  const modified = (file: string) => {
    try {
      return statSync(file).mtimeMs;
    } catch {
      return null;
    }
  };
  const lastBuild = modified(path.join(root, "cache/compile-cache.json"));
  if (lastBuild === null || PROJECT_ARTIFACTS.some((artifact) => modified(path.join(root, "artifacts/contracts", artifact)) === null)) return true;
  return sourceFiles(path.join(root, "contracts")).some((file) => modified(file)! > lastBuild);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(file);
    return entry.name.endsWith(".sol") ? [file] : [];
  });
}

/** Sends one JSON-RPC request; the result, or an Error. */
export async function rpc<T = unknown>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    signal: AbortSignal.timeout(5_000),
  });
  const body = (await response.json()) as { result?: T; error?: { message: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result as T;
}

/** Whether a JSON-RPC node answers at `url`. */
export async function chainAnswers(url: string): Promise<boolean> {
  return rpc(url, "eth_chainId").then(() => true, () => false);
}

/** Mines a block every `seconds` on top of automine, so confirmations advance with no traffic; 0 leaves automine alone. */
export async function setBlockTime(url: string, seconds: number): Promise<void> {
  if (seconds > 0) await rpc(url, "evm_setIntervalMining", [seconds * 1000]);
}

/** Deploys the stack's contracts from the deployer dev account, with `signer` authorised on both paymasters. */
export async function deployContracts(url: string, signer: Address): Promise<LocalContracts> {
  const chain = defineChain({ id: LOCAL_CHAIN_ID, name: "FiatGas local", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [url] } } });
  const transport = http(url, { retryCount: 0 });
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 50 });
  const walletClient = createWalletClient({ chain, transport, account: privateKeyToAccount(devPrivateKey(DEPLOYER_INDEX)) });
  // Hardhat's node has no CREATE2 deployer; the canonical EntryPoint addresses depend on it.
  await installCreate2Deployer((address, code) => rpc(url, "hardhat_setCode", [address, code]).then(() => undefined));
  return deployLocalContracts({ publicClient, walletClient }, { signer });
}

/** Every funded dev account with its key, balance and what the stack uses it for. */
export async function describeDevAccounts(url: string, roles: Record<number, string>) {
  const accounts = await Promise.all(
    Array.from({ length: DEV_ACCOUNT_COUNT }, async (_, index) => {
      const { address } = devAccount(index);
      const balance = BigInt(await rpc<Hex>(url, "eth_getBalance", [address, "latest"]));
      return { index, address, privateKey: devPrivateKey(index), balanceEth: formatEther(balance), role: roles[index] ?? "free for your use" };
    }),
  );
  return { mnemonic: DEV_MNEMONIC, accounts };
}
