// Connecting to the chain, opening the paymaster, the role checks every write needs, and the one
// path by which a transaction is sent: simulate, send, wait, and refuse a revert.
import {
  type Address,
  type Chain,
  type Hash,
  type Hex,
  type PublicClient,
  type Transport,
  type WalletClient,
  BaseError,
  ContractFunctionRevertedError,
  ContractFunctionZeroDataError,
  createPublicClient,
  createWalletClient,
  decodeErrorResult,
  defineChain,
  formatEther,
  http,
  isHex,
  parseAbi,
} from "viem";
import type { PrivateKeyAccount } from "viem/accounts";

import { type EntryPointVersion, entryPointVersionAt } from "../../service/chain/entryPoints.ts";
import { entryPointAbi, paymasterAbi } from "./contracts.ts";
import { OperatorError } from "./errors.ts";
import { redactUrl } from "./inputs.ts";

/** Read access to a chain. */
export type Reader = { publicClient: PublicClient<Transport, Chain> };

/** Read access plus a key to send with; `progress` hears about each transaction as it goes. */
export type Operator = Reader & {
  walletClient: WalletClient<Transport, Chain, PrivateKeyAccount>;
  account: PrivateKeyAccount;
  progress: (line: string) => void;
};

/** A deployed paymaster and the EntryPoint it serves. */
export type Paymaster = { address: Address; entryPoint: Address; entryPointVersion: EntryPointVersion | null };

/** A mined transaction. */
export type TransactionSummary = { hash: Hash; blockNumber: bigint; gasUsed: bigint };

// Receipts on a live chain take seconds; a second's polling costs nothing and keeps local runs quick.
const POLLING_INTERVAL_MS = 1_000;

/** Connects to `rpcUrl`, failing with a clear message (and a redacted URL) when it does not answer. */
export async function connect(rpcUrl: string): Promise<Reader> {
  const probe = createPublicClient({ transport: http(rpcUrl, { retryCount: 1 }) });
  let chainId: number;
  try {
    chainId = await probe.getChainId();
  } catch (error) {
    const reason = error instanceof BaseError ? error.shortMessage : String(error);
    throw new OperatorError(`cannot reach RPC_URL ${redactUrl(rpcUrl)}: ${reason}`);
  }
  const chain = defineChain({
    id: chainId,
    name: `chain ${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  return { publicClient: createPublicClient({ chain, transport: http(rpcUrl), pollingInterval: POLLING_INTERVAL_MS }) };
}

/** Connects and binds `account` as the sender. */
export async function connectOperator(
  rpcUrl: string,
  account: PrivateKeyAccount,
  progress: (line: string) => void,
): Promise<Operator> {
  const { publicClient } = await connect(rpcUrl);
  const walletClient = createWalletClient({
    account,
    chain: publicClient.chain,
    transport: http(rpcUrl),
    pollingInterval: POLLING_INTERVAL_MS,
  });
  return { publicClient, walletClient, account, progress };
}

/** The paymaster at `address`, after checking it has code and answers like a FiatGasPaymaster. */
export async function openPaymaster({ publicClient }: Reader, address: Address): Promise<Paymaster> {
  const chainId = publicClient.chain.id;
  if (!(await publicClient.getCode({ address }))) {
    throw new OperatorError(`PAYMASTER_ADDRESS ${address} has no code on chain ${chainId}`);
  }
  let entryPoint: Address;
  try {
    entryPoint = await publicClient.readContract({ address, abi: paymasterAbi, functionName: "entryPoint" });
  } catch (error) {
    const refused = (cause: unknown) =>
      cause instanceof ContractFunctionRevertedError || cause instanceof ContractFunctionZeroDataError;
    // A network failure is reported as itself, not as a wrong contract.
    if (!(error instanceof BaseError) || !error.walk(refused)) throw error;
    throw new OperatorError(`PAYMASTER_ADDRESS ${address} is not a FiatGasPaymaster: it has no entryPoint()`);
  }
  return { address, entryPoint, entryPointVersion: entryPointVersionAt(entryPoint) };
}

/** Refuses unless the sender is the paymaster's owner. */
export async function requireOwner({ publicClient, account }: Operator, paymaster: Paymaster): Promise<void> {
  const [owner, pendingOwner] = await Promise.all([
    publicClient.readContract({ address: paymaster.address, abi: paymasterAbi, functionName: "owner" }),
    publicClient.readContract({ address: paymaster.address, abi: paymasterAbi, functionName: "pendingOwner" }),
  ]);
  if (owner === account.address) return;
  const hint = pendingOwner === account.address ? "; it is the pending owner and must accept ownership first" : "";
  throw new OperatorError(`only the owner ${owner} may do this, and PRIVATE_KEY is ${account.address}${hint}`);
}

/** Refuses unless the sender is the paymaster's manager or owner. */
export async function requireManagerOrOwner({ publicClient, account }: Operator, paymaster: Paymaster): Promise<void> {
  const [manager, owner] = await Promise.all([
    publicClient.readContract({ address: paymaster.address, abi: paymasterAbi, functionName: "manager" }),
    publicClient.readContract({ address: paymaster.address, abi: paymasterAbi, functionName: "owner" }),
  ]);
  if (account.address === manager || account.address === owner) return;
  throw new OperatorError(
    `only the manager ${manager} or the owner ${owner} may do this, and PRIVATE_KEY is ${account.address}`,
  );
}

/** Refuses when the sender cannot cover `value` (gas comes on top; the node refuses that case itself). */
export async function requireBalance({ publicClient, account }: Operator, value: bigint): Promise<void> {
  const balance = await publicClient.getBalance({ address: account.address });
  if (balance < value) {
    throw new OperatorError(
      `PRIVATE_KEY's account ${account.address} holds ${formatEther(balance)} ETH, less than the ${formatEther(value)} ETH to send`,
    );
  }
}

// Error(string) carries the EntryPoint's require() reasons, which bubble up through the paymaster.
const revertAbi = [...paymasterAbi, ...entryPointAbi, ...parseAbi(["error Error(string reason)"])];

/** Revert data as nodes report it: a hex string, or (some nodes) an object holding one. */
function revertDataOf(value: unknown): Hex | undefined {
  if (typeof value === "string") return isHex(value) ? value : undefined;
  if (typeof value === "object" && value !== null && "data" in value) return revertDataOf(value.data);
  return undefined;
}

/** The decoded revert a failed call carried (`SignerAlreadyAdded(0x…)` or a reason string), if any. */
export function revertReason(error: unknown): string | undefined {
  if (!(error instanceof BaseError)) return undefined;
  // Where the data sits depends on the node and the action; viem's own getContractError looks the same way.
  const carrier = error.walk((cause) => revertDataOf((cause as { data?: unknown }).data) !== undefined);
  const data = revertDataOf((carrier as { data?: unknown } | null)?.data);
  if (!data || data === "0x") return undefined;
  try {
    const { errorName, args = [] } = decodeErrorResult({ abi: revertAbi, data });
    if (errorName === "Error") return String(args[0]);
    return `${errorName}(${args.map(String).join(", ")})`;
  } catch {
    return `unrecognised revert data ${data}`;
  }
}

/**
 * Sends a call (or, without `to`, a deployment) after simulating it, and waits for the receipt.
 * The simulation turns a revert into a refusal before anything is signed.
 */
export async function send(
  { publicClient, walletClient, account, progress }: Operator,
  call: { to?: Address; data: Hex; value?: bigint; description: string },
): Promise<{ transaction: TransactionSummary; contractAddress: Address | null }> {
  const { to, data, value = 0n, description } = call;
  try {
    await publicClient.call({ account, to, data, value });
  } catch (error) {
    const reason = revertReason(error) ?? (error instanceof BaseError ? error.shortMessage : String(error));
    throw new OperatorError(`${description} would fail: ${reason}`);
  }
  progress(`sending ${description} from ${account.address}`);
  const hash = await walletClient.sendTransaction({ to, data, value });
  progress(`sent ${hash}, waiting for the receipt`);
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") {
    throw new OperatorError(`${description} reverted on chain in transaction ${hash} (block ${receipt.blockNumber})`);
  }
  return {
    transaction: { hash, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed },
    contractAddress: receipt.contractAddress ?? null,
  };
}
