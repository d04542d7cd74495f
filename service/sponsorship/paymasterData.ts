import {
  type Address,
  type Hex,
  concat,
  hashTypedData,
  numberToHex,
  size,
  slice,
  hexToNumber,
  type TypedDataDefinition,
} from "viem";
import { type UserOperation, getInitCode } from "viem/account-abstraction";

import type { EntryPointVersion } from "../chain/entryPoints.ts";

/** paymasterData after the 52-byte paymaster prefix: validUntil (6) ‖ validAfter (6) ‖ signature (65). */
export const PAYMASTER_DATA_LENGTH = 77;

/** The EIP-712 type the contract's SPONSORSHIP_TYPEHASH is built from; keep the two in the same order. */
export const sponsorshipTypes = {
  Sponsorship: [
    { name: "sender", type: "address" },
    { name: "nonce", type: "uint256" },
    { name: "initCode", type: "bytes" },
    { name: "callData", type: "bytes" },
    { name: "accountGasLimits", type: "bytes32" },
    { name: "paymasterGasLimits", type: "bytes32" },
    { name: "preVerificationGas", type: "uint256" },
    { name: "gasFees", type: "bytes32" },
    { name: "validUntil", type: "uint48" },
    { name: "validAfter", type: "uint48" },
  ],
} as const;

/** The fields of a UserOperation that a sponsorship signature covers. */
export type SponsoredUserOperation = Pick<
  UserOperation<"0.7">,
  | "sender"
  | "nonce"
  | "factory"
  | "factoryData"
  | "callData"
  | "callGasLimit"
  | "verificationGasLimit"
  | "preVerificationGas"
  | "maxFeePerGas"
  | "maxPriorityFeePerGas"
  | "paymasterVerificationGasLimit"
  | "paymasterPostOpGasLimit"
  | "authorization"
>;

/** Parameters of {@link getSponsorshipTypedData}. */
export type GetSponsorshipTypedDataParameters = {
  userOperation: SponsoredUserOperation;
  entryPointVersion: EntryPointVersion;
  chainId: number;
  paymaster: Address;
  validUntil: number;
  validAfter: number;
};

/** Two uint128 values packed high ‖ low into a bytes32, as the EntryPoint packs gas limits and fees. */
export function packUint128Pair(high: bigint, low: bigint): Hex {
  return concat([numberToHex(high, { size: 16 }), numberToHex(low, { size: 16 })]);
}

/** The typed data a signer signs to sponsor `userOperation`; its digest equals the contract's getHash. */
export function getSponsorshipTypedData(
  parameters: GetSponsorshipTypedDataParameters,
): TypedDataDefinition<typeof sponsorshipTypes, "Sponsorship"> {
  const { userOperation: op, entryPointVersion, chainId, paymaster, validUntil, validAfter } = parameters;
  return {
    domain: { name: "FiatGasPaymaster", version: "1", chainId, verifyingContract: paymaster },
    types: sponsorshipTypes,
    primaryType: "Sponsorship",
    message: {
      sender: op.sender,
      nonce: op.nonce,
      // v0.8 binds an EIP-7702 account's delegate in place of the 0x7702 marker; v0.7 signs the raw initCode.
      initCode: getInitCode(op, { forHash: entryPointVersion === "0.8" }),
      callData: op.callData,
      accountGasLimits: packUint128Pair(op.verificationGasLimit, op.callGasLimit),
      paymasterGasLimits: packUint128Pair(op.paymasterVerificationGasLimit ?? 0n, op.paymasterPostOpGasLimit ?? 0n),
      preVerificationGas: op.preVerificationGas,
      gasFees: packUint128Pair(op.maxPriorityFeePerGas, op.maxFeePerGas),
      validUntil,
      validAfter,
    },
  };
}

/** The EIP-712 digest of {@link getSponsorshipTypedData}. */
export function getSponsorshipHash(parameters: GetSponsorshipTypedDataParameters): Hex {
  return hashTypedData(getSponsorshipTypedData(parameters));
}

/** paymasterData for a signed sponsorship. */
export function encodePaymasterData(data: { validUntil: number; validAfter: number; signature: Hex }): Hex {
  if (size(data.signature) !== 65) throw new RangeError(`signature must be 65 bytes, got ${size(data.signature)}`);
  return concat([numberToHex(data.validUntil, { size: 6 }), numberToHex(data.validAfter, { size: 6 }), data.signature]);
}

/** Splits paymasterData into its window and signature. */
export function decodePaymasterData(paymasterData: Hex): { validUntil: number; validAfter: number; signature: Hex } {
  if (size(paymasterData) !== PAYMASTER_DATA_LENGTH) {
    throw new RangeError(`paymasterData must be ${PAYMASTER_DATA_LENGTH} bytes, got ${size(paymasterData)}`);
  }
  return {
    validUntil: hexToNumber(slice(paymasterData, 0, 6)),
    validAfter: hexToNumber(slice(paymasterData, 6, 12)),
    signature: slice(paymasterData, 12),
  };
}
