// The paymaster's on-chain state, read at one block so the figures agree with each other,
// and its two renderings: aligned text for people and JSON (wei as decimal strings) for scripts.
import { Redis } from "ioredis";
import { type Address, formatEther, zeroAddress } from "viem";
import { z } from "zod";

import type { EntryPointVersion } from "../../service/chain/entryPoints.ts";
import { ledgerKeys } from "../../service/ledger/keys.ts";
import { createKeys } from "../../service/redis.ts";
import { DEFAULT_POLICY, policySchema } from "../../service/risk/policy.ts";
import { policyKeys } from "../../service/risk/policyStore.ts";
import { type DepositFigures, depositFigures, depositFiguresJson } from "../../service/settlement/deposit.ts";
import type { Paymaster, Reader, TransactionSummary } from "./chain.ts";
import { entryPointAbi, paymasterAbi } from "./contracts.ts";

/** Everything `status` reports. Wei figures are bigint; times are unix seconds. */
export type PaymasterStatus = {
  paymaster: Address;
  chainId: number;
  block: { number: bigint; timestamp: bigint };
  entryPoint: { address: Address; version: EntryPointVersion | null };
  owner: Address;
  /** Set while an ownership transfer awaits acceptance (Ownable2Step). */
  pendingOwner: Address | null;
  manager: Address;
  signers: readonly Address[];
  deposit: bigint;
  stake: bigint;
  staked: boolean;
  unstakeDelaySec: number;
  /** When an unlocked stake becomes withdrawable; 0 while the stake is locked or absent. */
  withdrawTime: number;
  /** The service's deposit guard for this paymaster, when REDIS_URL is given: the same figures its readiness and metrics use. */
  depositGuard?: DepositFigures;
};

/** The service's Redis (its REDIS_URL); it may carry a password, so it is read from the environment only. */
export const redisUrl = z
  .string()
  .refine((value) => {
    try {
      return ["redis:", "rediss:"].includes(new URL(value).protocol);
    } catch {
      return false;
    }
  }, "must be a redis:// or rediss:// URL")
  .optional();

/** The service's REDIS_KEY_PREFIX. */
export const redisKeyPrefix = z.string().regex(/^[a-z0-9-]{1,32}$/, "must be 1-32 of a-z, 0-9 and -");

/**
 * The deposit guard's figures as the service computes them: `status`'s deposit, the wei in flight
 * the service holds in Redis for this EntryPoint, and the floor of the risk policy in force.
 * Null for a paymaster on a non-canonical EntryPoint, which the service cannot sign for.
 */
export async function readDepositGuard(url: string, prefix: string, status: PaymasterStatus): Promise<DepositFigures | null> {
  const version = status.entryPoint.version;
  if (!version) return null;
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 5_000, commandTimeout: 5_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on("error", () => {});
  try {
    await redis.connect();
    const [inFlight, document] = await Promise.all([redis.get(ledgerKeys(createKeys(prefix)).inFlightWei(version)), redis.hget(policyKeys(prefix).current, "document")]);
    const policy = document === null ? DEFAULT_POLICY : policySchema.parse(JSON.parse(document));
    return depositFigures({ depositWei: status.deposit, inFlightWei: BigInt(inFlight ?? "0"), floorWei: policy.global.depositFloorWei });
  } finally {
    redis.disconnect();
  }
}

/** Reads the paymaster's roles, signers, deposit and stake at the latest block. */
export async function readStatus({ publicClient }: Reader, paymaster: Paymaster): Promise<PaymasterStatus> {
  const block = await publicClient.getBlock();
  const at = { address: paymaster.address, abi: paymasterAbi, blockNumber: block.number } as const;
  const [owner, pendingOwner, manager, signers, info] = await Promise.all([
    publicClient.readContract({ ...at, functionName: "owner" }),
    publicClient.readContract({ ...at, functionName: "pendingOwner" }),
    publicClient.readContract({ ...at, functionName: "manager" }),
    publicClient.readContract({ ...at, functionName: "signers" }),
    publicClient.readContract({
      address: paymaster.entryPoint,
      abi: entryPointAbi,
      functionName: "getDepositInfo",
      args: [paymaster.address],
      blockNumber: block.number,
    }),
  ]);
  return {
    paymaster: paymaster.address,
    chainId: publicClient.chain.id,
    block: { number: block.number, timestamp: block.timestamp },
    entryPoint: { address: paymaster.entryPoint, version: paymaster.entryPointVersion },
    owner,
    pendingOwner: pendingOwner === zeroAddress ? null : pendingOwner,
    manager,
    signers,
    deposit: info.deposit,
    stake: info.stake,
    staked: info.staked,
    unstakeDelaySec: info.unstakeDelaySec,
    withdrawTime: info.withdrawTime,
  };
}

/** An amount in both units, wei as a string because JSON numbers lose precision past 2^53. */
const amountJson = (wei: bigint) => ({ eth: formatEther(wei), wei: wei.toString() });

/** The status as plain JSON values. */
export function statusJson(status: PaymasterStatus) {
  return {
    paymaster: status.paymaster,
    chainId: status.chainId,
    block: { number: Number(status.block.number), timestamp: Number(status.block.timestamp) },
    entryPoint: status.entryPoint,
    owner: status.owner,
    pendingOwner: status.pendingOwner,
    manager: status.manager,
    signers: status.signers,
    deposit: amountJson(status.deposit),
    stake: amountJson(status.stake),
    staked: status.staked,
    unstakeDelaySec: status.unstakeDelaySec,
    withdrawTime: status.withdrawTime,
    ...(status.depositGuard ? { depositGuard: depositFiguresJson(status.depositGuard) } : {}),
  };
}

/** A unix time as an ISO-8601 UTC string. */
export const isoTime = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString();

const amountText = (wei: bigint) => `${formatEther(wei)} ETH (${wei} wei)`;

function withdrawTimeText({ withdrawTime, block }: PaymasterStatus): string {
  if (withdrawTime === 0) return "none";
  const wait = BigInt(withdrawTime) - block.timestamp;
  const when = wait <= 0n ? "withdrawable now" : `withdrawable in ${wait} s`;
  return `${isoTime(withdrawTime)} (unix ${withdrawTime}, ${when})`;
}

function depositGuardRows(guard: DepositFigures | undefined): [string, string][] {
  if (!guard) return [];
  return [
    ["in flight", `${amountText(guard.inFlightWei)}: live reservations' worst case`],
    ["deposit floor", amountText(guard.floorWei)],
    ["headroom", `${amountText(guard.headroomWei)}: deposit less in flight`],
    ["in-flight cap", `${amountText(guard.capWei)}: deposit less floor`],
    ["sponsorship", guard.degraded ? "PAUSED: the headroom is below the floor; top the deposit up" : "open"],
  ];
}

/** The status as aligned `label  value` lines. */
export function statusText(status: PaymasterStatus): string {
  const version = status.entryPoint.version ? `v${status.entryPoint.version}` : "not a canonical EntryPoint";
  const rows: [string, string][] = [
    ["paymaster", status.paymaster],
    ["chain id", String(status.chainId)],
    ["block", `${status.block.number} (${isoTime(Number(status.block.timestamp))})`],
    ["entry point", `${status.entryPoint.address} (${version})`],
    ["owner", status.owner],
    ["pending owner", status.pendingOwner ?? "none"],
    ["manager", status.manager],
    ["signers", status.signers.length === 0 ? "none: nothing can be sponsored" : status.signers.join("\n")],
    ["deposit", amountText(status.deposit)],
    ["stake", amountText(status.stake)],
    ["staked", status.staked ? "yes" : "no"],
    ["unstake delay", `${status.unstakeDelaySec} s`],
    ["withdraw time", withdrawTimeText(status)],
    ...depositGuardRows(status.depositGuard),
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return rows
    .map(([label, value]) => {
      const [first, ...rest] = value.split("\n");
      return [label.padEnd(width) + first, ...rest.map((line) => " ".repeat(width) + line)].join("\n");
    })
    .join("\n");
}

/** What every write command returns: its mined transaction and the state after it. */
export type WriteResult = { transaction: TransactionSummary; status: PaymasterStatus };
