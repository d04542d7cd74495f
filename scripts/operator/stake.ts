import { type Address, encodeFunctionData, formatEther } from "viem";

import { type Operator, type Paymaster, openPaymaster, requireBalance, requireOwner, send } from "./chain.ts";
import { entryPointAbi, paymasterAbi } from "./contracts.ts";
import { OperatorError } from "./errors.ts";
import { type WriteResult, isoTime, readStatus } from "./status.ts";

/** The paymaster's stake as the EntryPoint records it. */
function depositInfo({ publicClient }: Operator, paymaster: Paymaster) {
  return publicClient.readContract({
    address: paymaster.entryPoint,
    abi: entryPointAbi,
    functionName: "getDepositInfo",
    args: [paymaster.address],
  });
}

/**
 * Adds `amount` wei to the stake and sets the unstake delay. Owner only. An amount of 0 only
 * raises the delay; staking again while unlocking locks the stake again (the EntryPoint's rule).
 */
export async function stake(
  operator: Operator,
  paymasterAddress: Address,
  amount: bigint,
  unstakeDelaySec: number,
): Promise<WriteResult> {
  const paymaster = await openPaymaster(operator, paymasterAddress);
  await requireOwner(operator, paymaster);
  const info = await depositInfo(operator, paymaster);
  if (info.stake + amount === 0n) throw new OperatorError("the paymaster has no stake yet, so the amount must be more than 0");
  if (unstakeDelaySec < info.unstakeDelaySec) {
    throw new OperatorError(
      `the unstake delay can only grow: it is ${info.unstakeDelaySec} s, so pass --unstake-delay ${info.unstakeDelaySec} or more (${unstakeDelaySec} s was asked)`,
    );
  }
  await requireBalance(operator, amount);
  const { transaction } = await send(operator, {
    to: paymaster.address,
    data: encodeFunctionData({ abi: paymasterAbi, functionName: "addStake", args: [unstakeDelaySec] }),
    value: amount,
    description: `stake of ${formatEther(amount)} ETH with an unstake delay of ${unstakeDelaySec} s`,
  });
  return { transaction, status: await readStatus(operator, paymaster) };
}

/** Starts the unstake delay; from now on bundlers treat the paymaster as unstaked. Owner only. */
export async function unlockStake(operator: Operator, paymasterAddress: Address): Promise<WriteResult> {
  const paymaster = await openPaymaster(operator, paymasterAddress);
  await requireOwner(operator, paymaster);
  const info = await depositInfo(operator, paymaster);
  if (info.withdrawTime !== 0) {
    throw new OperatorError(`the stake is already unlocking: it can be withdrawn from ${isoTime(info.withdrawTime)}`);
  }
  if (!info.staked) throw new OperatorError("the paymaster has no stake to unlock");
  const { transaction } = await send(operator, {
    to: paymaster.address,
    data: encodeFunctionData({ abi: paymasterAbi, functionName: "unlockStake" }),
    description: "unlockStake",
  });
  return { transaction, status: await readStatus(operator, paymaster) };
}

/** Withdraws the whole unlocked stake to `to` once the delay has passed. Owner only. */
export async function withdrawStake(operator: Operator, paymasterAddress: Address, to: Address): Promise<WriteResult> {
  const paymaster = await openPaymaster(operator, paymasterAddress);
  await requireOwner(operator, paymaster);
  const [info, block] = await Promise.all([depositInfo(operator, paymaster), operator.publicClient.getBlock()]);
  if (info.stake === 0n) throw new OperatorError("the paymaster has no stake to withdraw");
  if (info.withdrawTime === 0) throw new OperatorError("the stake is locked: run unlock-stake and wait out the delay first");
  const wait = BigInt(info.withdrawTime) - block.timestamp;
  if (wait > 0n) {
    throw new OperatorError(
      `the unstake delay has not passed: the stake can be withdrawn from ${isoTime(info.withdrawTime)} (in ${wait} s)`,
    );
  }
  const { transaction } = await send(operator, {
    to: paymaster.address,
    data: encodeFunctionData({ abi: paymasterAbi, functionName: "withdrawStake", args: [to] }),
    description: `withdrawal of the ${formatEther(info.stake)} ETH stake to ${to}`,
  });
  return { transaction, status: await readStatus(operator, paymaster) };
}
