// Settlement on a real chain: sponsored ops asked from the service over HTTP, signed by the
// account's owner, sent in a real handleOps, and settlement workers built from the service's parts.
import { type Address, type Hex, type TransactionReceipt, numberToHex, parseEventLogs } from "viem";
import { type UserOperation, getUserOperationHash, toPackedUserOperation } from "viem/account-abstraction";
import type { PrivateKeyAccount } from "viem/accounts";

import type { EntryPointVersion } from "../../service/chain/entryPoints.ts";
import { createLedger } from "../../service/ledger/ledger.ts";
import { createKeys } from "../../service/redis.ts";
import { type CreateSettlementParameters, createSettlement } from "../../service/settlement/settlement.ts";
import { entryPointAbi, executeCall, signAsAccount } from "./aa.ts";
import type { ServiceStack } from "./serviceFixture.ts";

/** The call target of the ops here: an address with no code, so the call does nothing. */
export const TARGET: Address = "0x00000000000000000000000000000000000000cc";

/** A signed-in SimpleAccount with fen to spend. */
export type FundedAccount = { owner: PrivateKeyAccount; sender: Address; factory: Address; factoryData: Hex; session: string };

/** A new account for `version`, signed in and credited with `fen`. */
export async function fundedAccount(stack: ServiceStack, version: EntryPointVersion, fen = 1_000_000n): Promise<FundedAccount> {
  const account = await stack.newAccount(version);
  const session = await stack.signIn(account);
  if (fen > 0n) await stack.service.ledger.credit(account.sender, fen);
  return { ...account, session };
}

/** The op as the EntryPoint will see it: 100k + 500k + 60k gas (+ the paymaster's) at 3 gwei, deploying the account at nonce 0. */
export function unsignedOp(account: FundedAccount, { nonce = 0n, callData = executeCall(TARGET, 0n, "0x"), deployed = false }: { nonce?: bigint; callData?: Hex; deployed?: boolean } = {}): UserOperation<"0.7"> {
  return {
    sender: account.sender,
    nonce,
    ...(deployed ? {} : { factory: account.factory, factoryData: account.factoryData }),
    callData,
    callGasLimit: 100_000n,
    verificationGasLimit: 500_000n,
    preVerificationGas: 60_000n,
    maxFeePerGas: 3_000_000_000n,
    maxPriorityFeePerGas: 1_000_000_000n,
    signature: "0x",
  };
}

/** pm_getPaymasterData for `op` with the account's session, as a wallet would ask; the raw answer. */
export async function requestFinal(stack: ServiceStack, version: EntryPointVersion, account: FundedAccount, op: UserOperation<"0.7"> = unsignedOp(account)) {
  const fields = {
    sender: op.sender,
    nonce: numberToHex(op.nonce),
    ...(op.factory ? { factory: op.factory, factoryData: op.factoryData } : {}),
    callData: op.callData,
    callGasLimit: numberToHex(op.callGasLimit),
    verificationGasLimit: numberToHex(op.verificationGasLimit),
    preVerificationGas: numberToHex(op.preVerificationGas),
    maxFeePerGas: numberToHex(op.maxFeePerGas),
    maxPriorityFeePerGas: numberToHex(op.maxPriorityFeePerGas),
  };
  const { body } = await stack.post("/rpc", { jsonrpc: "2.0", id: 1, method: "pm_getPaymasterData", params: [fields, stack.entryPoint(version), numberToHex(stack.anvil.chainId), { session: account.session }] });
  return body;
}

/** Asks the service for final paymaster data (pm_getPaymasterData), then signs the op as its owner. */
export async function sponsoredOp(stack: ServiceStack, version: EntryPointVersion, account: FundedAccount, op: UserOperation<"0.7"> = unsignedOp(account)) {
  const body = await requestFinal(stack, version, account, op);
  if (!body.result) throw new Error(`pm_getPaymasterData failed: ${JSON.stringify(body.error)}`);
  const result = body.result as { paymaster: Address; paymasterData: Hex; paymasterVerificationGasLimit: Hex; paymasterPostOpGasLimit: Hex };
  const sponsored: UserOperation<"0.7"> = {
    ...op,
    paymaster: result.paymaster,
    paymasterData: result.paymasterData,
    paymasterVerificationGasLimit: BigInt(result.paymasterVerificationGasLimit),
    paymasterPostOpGasLimit: BigInt(result.paymasterPostOpGasLimit),
  };
  const signed = await signAsAccount(sponsored, version, stack.anvil.chainId, account.owner);
  const userOpHash = getUserOperationHash({ userOperation: signed, entryPointAddress: stack.entryPoint(version), entryPointVersion: version, chainId: stack.anvil.chainId });
  return { signed, userOpHash };
}

/** Sends `ops` in one handleOps from anvil's first account and returns the receipt and the UserOperationEvents. */
export async function includeOps(stack: ServiceStack, version: EntryPointVersion, ops: UserOperation<"0.7">[]): Promise<{ receipt: TransactionReceipt; events: ReturnType<typeof parseUserOperationEvents> }> {
  const hash = await stack.anvil.walletClient.writeContract({
    address: stack.entryPoint(version),
    abi: entryPointAbi,
    functionName: "handleOps",
    args: [ops.map((op) => toPackedUserOperation(op)), stack.anvil.walletClient.account.address],
    chain: stack.anvil.chain,
  });
  const receipt = await stack.anvil.publicClient.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`handleOps reverted in ${hash}`);
  return { receipt, events: parseUserOperationEvents(receipt) };
}

/** The UserOperationEvents of a receipt. */
export function parseUserOperationEvents(receipt: TransactionReceipt) {
  return parseEventLogs({ abi: entryPointAbi, logs: receipt.logs, eventName: "UserOperationEvent" });
}

/** Mines `blocks` empty blocks. */
export async function mine(stack: ServiceStack, blocks: number): Promise<void> {
  await stack.anvil.testClient.mine({ blocks });
}

/**
 * A settlement worker on the stack's Redis and chain, with the service's settings and `config`
 * overrides, on a connection of its own; stop() it when done.
 */
export function newSettlementWorker(
  stack: ServiceStack,
  { config = {}, name, onEvent }: { config?: Partial<CreateSettlementParameters["config"]>; name?: string; onEvent?: CreateSettlementParameters["onEvent"] } = {},
) {
  const redis = stack.redis.client();
  const { config: serviceConfig } = stack.service;
  const ledger = createLedger({ redis, keys: createKeys(serviceConfig.REDIS_KEY_PREFIX), maxLiveReservations: serviceConfig.MAX_LIVE_RESERVATIONS_PER_SENDER, nonceCheckSeconds: serviceConfig.SETTLEMENT_NONCE_CHECK_SECONDS });
  return createSettlement({
    redis,
    ledger,
    publicClient: stack.service.publicClient,
    prefix: serviceConfig.REDIS_KEY_PREFIX,
    paymasters: { "0.7": stack.deployment("0.7").paymaster, "0.8": stack.deployment("0.8").paymaster },
    config: { ...serviceConfig, ...config },
    name,
    onEvent,
  });
}

export type SettlementWorker = ReturnType<typeof newSettlementWorker>;

/** Drives a worker until every confirmed event is read and settled and releases have run once; then gives its lease up. */
export async function settleAll(worker: SettlementWorker): Promise<void> {
  for (let reads = 0; reads < 1_000; reads++) {
    const read = await worker.readOnce();
    if (read.kind === "not_leader") throw new Error("another worker holds the reader's lease");
    if (read.kind !== "read" && read.kind !== "rewound" && read.kind !== "unstable") break;
  }
  while ((await worker.consumeOnce()).entries > 0);
  await worker.releaseOnce();
  await worker.dropLease();
}
