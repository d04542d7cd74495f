import { type Address, encodeDeployData, getAddress } from "viem";

import { ENTRYPOINT_ADDRESS, type EntryPointVersion, paymasterContractName } from "../../service/chain/entryPoints.ts";
import { type Operator, openPaymaster, send } from "./chain.ts";
import { paymasterAbi, paymasterBytecode } from "./contracts.ts";
import { OperatorError } from "./errors.ts";
import { type WriteResult, readStatus } from "./status.ts";

export type DeployParameters = {
  entryPointVersion: EntryPointVersion;
  owner: Address;
  manager: Address;
  signers: readonly Address[];
};

/** Deploys a FiatGasPaymaster for the canonical EntryPoint of `entryPointVersion`. */
export async function deploy(operator: Operator, parameters: DeployParameters): Promise<WriteResult> {
  const { entryPointVersion, owner, manager, signers } = parameters;
  const entryPoint = ENTRYPOINT_ADDRESS[entryPointVersion];
  const chainId = operator.publicClient.chain.id;
  if (!(await operator.publicClient.getCode({ address: entryPoint }))) {
    throw new OperatorError(`EntryPoint v${entryPointVersion} is not deployed at ${entryPoint} on chain ${chainId}`);
  }
  const bytecode = await paymasterBytecode(entryPointVersion);
  const { transaction, contractAddress } = await send(operator, {
    data: encodeDeployData({ abi: paymasterAbi, bytecode, args: [entryPoint, owner, manager, [...signers]] }),
    description: `deployment of ${paymasterContractName[entryPointVersion]}`,
  });
  if (!contractAddress) throw new OperatorError(`transaction ${transaction.hash} created no contract`);
  const status = await readStatus(operator, await openPaymaster(operator, getAddress(contractAddress)));
  return { transaction, status };
}
