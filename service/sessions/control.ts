// Proof that whoever signed a sign-in message controls the account it names. Two kinds of account:
// - Those that answer ERC-1271 (deployed, incl. 7702-delegated EOAs), ERC-6492 (not yet deployed),
//   and plain keys: viem's verifyMessage handles all three in one eth_call.
// - Owner-controlled accounts without ERC-1271 (eth-infinitism SimpleAccount v0.7/v0.8): the
//   owner's EOA signature, then owner() if deployed, or the allowlisted factory's own address
//   computation if not.
import {
  type Address,
  type Hex,
  type PublicClient,
  BaseError,
  ContractFunctionRevertedError,
  ContractFunctionZeroDataError,
  decodeFunctionData,
  isAddressEqual,
  parseAbi,
  recoverMessageAddress,
} from "viem";

import { ServiceError } from "../errors.ts";

/** What SimpleAccount and its factory (same ABI on v0.7 and v0.8) expose to prove ownership. */
export const ownedAccountAbi = parseAbi([
  "function owner() view returns (address)",
  "function createAccount(address owner, uint256 salt) returns (address)",
  "function getAddress(address owner, uint256 salt) view returns (address)",
]);

/** The signed message and how the client says the account is controlled. */
export type ControlClaim = {
  address: Address;
  message: string;
  signature: Hex;
  /** The EOA that signed, for an owner-controlled account without ERC-1271. */
  owner?: Address | undefined;
  /** The account's initCode, split as in a v0.7 UserOperation, while it is not deployed. */
  factory?: Address | undefined;
  factoryData?: Hex | undefined;
};

export type ControlContext = {
  publicClient: PublicClient;
  /** Factories whose getAddress is trusted to say which account an owner and salt create. */
  accountFactories: readonly Address[];
};

const badSignature = (message: string) => new ServiceError("INVALID_SIGNATURE", message);
const rpcUnavailable = (cause: unknown) => new ServiceError("DEPENDENCY_UNAVAILABLE", "the chain RPC is unavailable: retry shortly", { cause });

/** Calls the chain; a failure to reach it is DEPENDENCY_UNAVAILABLE, not the caller's fault. */
async function onChain<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw rpcUnavailable(error);
  }
}

function decodeCall(data: Hex) {
  try {
    return decodeFunctionData({ abi: ownedAccountAbi, data });
  } catch {
    return null;
  }
}

function isContractFailure(error: unknown): boolean {
  return (
    error instanceof BaseError &&
    error.walk((cause) => cause instanceof ContractFunctionRevertedError || cause instanceof ContractFunctionZeroDataError) !== null
  );
}

/** Resolves if the claim proves control of `claim.address`; otherwise throws saying what failed. */
export async function proveControl(claim: ControlClaim, context: ControlContext): Promise<void> {
  return claim.owner === undefined ? proveBySignature(claim, context) : proveByOwner(claim, claim.owner, context);
}

// No allowlist is needed here, unlike the owner path: ERC-6492 verification really runs the
// factory call in an eth_call and then asks the code at `address`, so the EVM, not the factory's
// word, decides which account was created. A plain EOA is accepted too (decision in README.md).
async function proveBySignature({ address, message, signature }: ControlClaim, { publicClient }: ControlContext) {
  const valid = await onChain(() => publicClient.verifyMessage({ address, message, signature }));
  if (!valid) {
    // viem reports a failed eth_call (the RPC down included) as an invalid signature: rule out an outage first.
    await onChain(() => publicClient.getChainId());
    throw badSignature(
      `signature does not verify for ${address} by ERC-1271, ERC-6492 or its own key; ` +
        "for an owner-signed account without ERC-1271, also send owner (and factory, factoryData while it is not deployed)",
    );
  }
}

async function proveByOwner({ address, message, signature, factory, factoryData }: ControlClaim, owner: Address, context: ControlContext) {
  const signer = await recoverMessageAddress({ message, signature }).catch(() => null);
  if (signer === null || !isAddressEqual(signer, owner)) throw badSignature(`signature is not from owner ${owner}`);

  const { publicClient, accountFactories } = context;
  const code = await onChain(() => publicClient.getCode({ address }));
  // Once deployed, the chain is the authority and any factory the client sent is irrelevant.
  if (code !== undefined && code !== "0x") {
    let onChainOwner: Address;
    try {
      onChainOwner = await publicClient.readContract({ address, abi: ownedAccountAbi, functionName: "owner" });
    } catch (error) {
      if (isContractFailure(error)) throw badSignature(`account ${address} has no owner() to check: omit owner to verify it by ERC-1271`);
      throw rpcUnavailable(error);
    }
    if (!isAddressEqual(onChainOwner, owner)) throw badSignature(`${owner} is not the owner of account ${address}`);
    return;
  }

  if (factory === undefined || factoryData === undefined) {
    throw new ServiceError("INVALID_PARAMS", `account ${address} is not deployed: send factory and factoryData (its initCode) with owner`);
  }
  // The factory's getAddress is only a view: a factory we do not know could answer any address.
  if (!accountFactories.some((allowed) => isAddressEqual(allowed, factory))) {
    throw new ServiceError("UNAUTHENTICATED", `factory ${factory} is not an allowed account factory`);
  }
  const call = decodeCall(factoryData);
  if (call?.functionName !== "createAccount") {
    throw new ServiceError("INVALID_PARAMS", "factoryData is not a createAccount(address owner, uint256 salt) call");
  }
  const [accountOwner, salt] = call.args;
  if (!isAddressEqual(accountOwner, owner)) throw badSignature("factoryData creates an account for another owner");
  const created = await onChain(() =>
    publicClient.readContract({ address: factory, abi: ownedAccountAbi, functionName: "getAddress", args: [accountOwner, salt] }),
  );
  if (!isAddressEqual(created, address)) throw badSignature(`factory and factoryData do not create account ${address}`);
}
