import { type Address, encodeFunctionData } from "viem";

import { type Operator, type Paymaster, openPaymaster, requireManagerOrOwner, send } from "./chain.ts";
import { paymasterAbi } from "./contracts.ts";
import { OperatorError } from "./errors.ts";
import { type WriteResult, readStatus } from "./status.ts";

function isSigner({ publicClient }: Operator, paymaster: Paymaster, signer: Address) {
  return publicClient.readContract({
    address: paymaster.address,
    abi: paymasterAbi,
    functionName: "isSigner",
    args: [signer],
  });
}

/** Authorises `signer` to sign sponsorships. Manager or owner. */
export async function addSigner(operator: Operator, paymasterAddress: Address, signer: Address): Promise<WriteResult> {
  const paymaster = await openPaymaster(operator, paymasterAddress);
  await requireManagerOrOwner(operator, paymaster);
  if (await isSigner(operator, paymaster, signer)) throw new OperatorError(`${signer} is already a signer`);
  const { transaction } = await send(operator, {
    to: paymaster.address,
    data: encodeFunctionData({ abi: paymasterAbi, functionName: "addSigner", args: [signer] }),
    description: `addSigner(${signer})`,
  });
  return { transaction, status: await readStatus(operator, paymaster) };
}

/** Revokes `signer`; sponsorships it already signed stop validating at once. Manager or owner. */
export async function removeSigner(operator: Operator, paymasterAddress: Address, signer: Address): Promise<WriteResult> {
  const paymaster = await openPaymaster(operator, paymasterAddress);
  await requireManagerOrOwner(operator, paymaster);
  if (!(await isSigner(operator, paymaster, signer))) throw new OperatorError(`${signer} is not a signer`);
  const { transaction } = await send(operator, {
    to: paymaster.address,
    data: encodeFunctionData({ abi: paymasterAbi, functionName: "removeSigner", args: [signer] }),
    description: `removeSigner(${signer})`,
  });
  return { transaction, status: await readStatus(operator, paymaster) };
}
