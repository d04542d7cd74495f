import { type Address, encodeFunctionData, formatEther } from "viem";

import { type Operator, openPaymaster, requireBalance, requireOwner, send } from "./chain.ts";
import { paymasterAbi } from "./contracts.ts";
import { OperatorError } from "./errors.ts";
import { type WriteResult, readStatus } from "./status.ts";

/** Adds `amount` wei to the paymaster's EntryPoint deposit. Any key may fund it. */
export async function deposit(operator: Operator, paymasterAddress: Address, amount: bigint): Promise<WriteResult> {
  const paymaster = await openPaymaster(operator, paymasterAddress);
  await requireBalance(operator, amount);
  const { transaction } = await send(operator, {
    to: paymaster.address,
    data: encodeFunctionData({ abi: paymasterAbi, functionName: "deposit" }),
    value: amount,
    description: `deposit of ${formatEther(amount)} ETH`,
  });
  return { transaction, status: await readStatus(operator, paymaster) };
}

/** Withdraws `amount` wei of the deposit (or all of it) to `to`. Owner only. */
export async function withdrawDeposit(
  operator: Operator,
  paymasterAddress: Address,
  to: Address,
  amount: bigint | "all",
): Promise<WriteResult> {
  const paymaster = await openPaymaster(operator, paymasterAddress);
  await requireOwner(operator, paymaster);
  const available = await operator.publicClient.readContract({
    address: paymaster.address,
    abi: paymasterAbi,
    functionName: "getDeposit",
  });
  if (available === 0n) throw new OperatorError(`the paymaster's deposit is empty: there is nothing to withdraw`);
  const wei = amount === "all" ? available : amount;
  if (wei > available) {
    throw new OperatorError(
      `cannot withdraw ${formatEther(wei)} ETH: the deposit is only ${formatEther(available)} ETH (${available} wei)`,
    );
  }
  const { transaction } = await send(operator, {
    to: paymaster.address,
    data: encodeFunctionData({ abi: paymasterAbi, functionName: "withdrawTo", args: [to, wei] }),
    description: `withdrawal of ${formatEther(wei)} ETH of the deposit to ${to}`,
  });
  return { transaction, status: await readStatus(operator, paymaster) };
}
