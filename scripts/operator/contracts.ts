// What the operator CLI knows about the contracts: the ABI subset it calls and the compiled
// paymaster bytecode it deploys.
import { readFile } from "node:fs/promises";

import { type Hex, parseAbi } from "viem";
import { z } from "zod";

import { type EntryPointVersion, paymasterContractName } from "../../service/chain/entryPoints.ts";
import { OperatorError } from "./errors.ts";

/**
 * The FiatGasPaymaster functions and errors the CLI uses, written out so viem types every call.
 * A test checks each entry against the compiled artifact, so this cannot drift from the contract.
 */
export const paymasterAbi = parseAbi([
  "constructor(address entryPoint_, address owner_, address manager_, address[] signers_)",
  "function entryPoint() view returns (address)",
  "function owner() view returns (address)",
  "function pendingOwner() view returns (address)",
  "function manager() view returns (address)",
  "function signers() view returns (address[])",
  "function isSigner(address signer) view returns (bool)",
  "function getDeposit() view returns (uint256)",
  "function deposit() payable",
  "function withdrawTo(address to, uint256 amount)",
  "function addStake(uint32 unstakeDelaySec) payable",
  "function unlockStake()",
  "function withdrawStake(address to)",
  "function addSigner(address signer)",
  "function removeSigner(address signer)",
  "error NotManager()",
  "error ZeroAddress()",
  "error SignerAlreadyAdded(address signer)",
  "error SignerNotFound(address signer)",
  "error OwnableUnauthorizedAccount(address account)",
  "error OwnableInvalidOwner(address owner)",
]);

/** The EntryPoint's view of an account's deposit and stake (the same struct on v0.7 and v0.8). */
export const entryPointAbi = parseAbi([
  "struct DepositInfo { uint256 deposit; bool staked; uint112 stake; uint32 unstakeDelaySec; uint48 withdrawTime; }",
  "function getDepositInfo(address account) view returns (DepositInfo info)",
]);

const artifactSchema = z.object({ bytecode: z.string().regex(/^0x([0-9a-fA-F]{2})+$/) });

/** Creation bytecode of the paymaster for `version`, from the Hardhat build output. */
export async function paymasterBytecode(version: EntryPointVersion): Promise<Hex> {
  const name = paymasterContractName[version];
  const path = `artifacts/contracts/${name}.sol/${name}.json`;
  let text: string;
  try {
    text = await readFile(new URL(`../../${path}`, import.meta.url), "utf8");
  } catch {
    throw new OperatorError(`no compiled ${name} at ${path}: run \`npx hardhat build\` first`);
  }
  const artifact = artifactSchema.safeParse(JSON.parse(text));
  if (!artifact.success) throw new OperatorError(`${path} has no creation bytecode: rebuild with \`npx hardhat build\``);
  return artifact.data.bytecode as Hex;
}
