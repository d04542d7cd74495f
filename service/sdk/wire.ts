// Reading the service's JSON: money and gas arrive as decimal strings (JSON numbers are doubles) and
// become bigint here, times become Date, and a shape the SDK does not expect fails loudly.
import { type Address, type Hex, getAddress, isAddress, numberToHex } from "viem";

import { InvalidRequestError, UnexpectedResponseError } from "./errors.ts";

/** An answer field that is not what the API documents. */
function unexpected(field: string, value: unknown): UnexpectedResponseError {
  return new UnexpectedResponseError({ code: "UNEXPECTED_RESPONSE", message: `the service's answer has an unexpected ${field}: ${JSON.stringify(value)?.slice(0, 80)}` });
}

/** A decimal integer string from the service as a bigint. */
export function decimal(value: unknown, field: string): bigint {
  if (typeof value !== "string" || !/^-?\d{1,78}$/.test(value)) throw unexpected(field, value);
  return BigInt(value);
}

/** A 0x quantity from the service as a bigint. */
export function quantity(value: unknown, field: string): bigint {
  if (typeof value !== "string" || !/^0x[0-9a-fA-F]{1,64}$/.test(value)) throw unexpected(field, value);
  return BigInt(value);
}

/** An ISO 8601 time from the service. */
export function isoDate(value: unknown, field: string): Date {
  const date = typeof value === "string" ? new Date(value) : undefined;
  if (!date || Number.isNaN(date.getTime())) throw unexpected(field, value);
  return date;
}

export function address(value: unknown, field: string): Address {
  if (typeof value !== "string" || !isAddress(value, { strict: false })) throw unexpected(field, value);
  return getAddress(value);
}

export function string(value: unknown, field: string): string {
  if (typeof value !== "string") throw unexpected(field, value);
  return value;
}

export function hex(value: unknown, field: string): Hex {
  if (typeof value !== "string" || !/^0x([0-9a-fA-F]{2})*$/.test(value)) throw unexpected(field, value);
  return value as Hex;
}

/** A caller's mistake caught before any request: the same class the service would answer with. */
export function invalidParameter(message: string, path: string, cause?: unknown): InvalidRequestError {
  return new InvalidRequestError({ code: "INVALID_PARAMS", message, data: { issues: [{ path, message }] }, cause });
}

/** An address the caller passed, checksummed; INVALID_PARAMS if it is not one. */
export function addressParameter(value: unknown, path: string): Address {
  if (typeof value !== "string" || !isAddress(value, { strict: false })) throw invalidParameter(`${path} must be a 20-byte hex address`, path);
  return getAddress(value);
}

/** A v0.7/v0.8 UserOperation as viem and permissionless hold it: gas and fees as bigint. */
export type UserOperationInput = {
  sender: Address;
  nonce: bigint;
  callData: Hex;
  factory?: Address | undefined;
  factoryData?: Hex | undefined;
  callGasLimit?: bigint | undefined;
  verificationGasLimit?: bigint | undefined;
  preVerificationGas?: bigint | undefined;
  maxFeePerGas?: bigint | undefined;
  maxPriorityFeePerGas?: bigint | undefined;
  paymaster?: Address | undefined;
  paymasterVerificationGasLimit?: bigint | undefined;
  paymasterPostOpGasLimit?: bigint | undefined;
  paymasterData?: Hex | undefined;
  signature?: Hex | undefined;
  /** EIP-7702: the signed authorization (v0.8 with `factory: 0x7702`). */
  authorization?: { address: Address; chainId: number; nonce: number; r: Hex; s: Hex; yParity?: number | undefined } | undefined;
  /** v0.6 fields: the service refuses them with a message saying so. */
  initCode?: Hex | undefined;
  paymasterAndData?: Hex | undefined;
};

const QUANTITIES = [
  "nonce",
  "callGasLimit",
  "verificationGasLimit",
  "preVerificationGas",
  "maxFeePerGas",
  "maxPriorityFeePerGas",
  "paymasterVerificationGasLimit",
  "paymasterPostOpGasLimit",
] as const;
const BYTES = ["sender", "callData", "factory", "factoryData", "paymaster", "paymasterData", "signature", "initCode", "paymasterAndData"] as const;

/** The op in JSON-RPC form (hex quantities, `eip7702Auth`), with only the fields ERC-7677 defines. */
export function formatUserOperation(op: UserOperationInput): Record<string, unknown> {
  const formatted: Record<string, unknown> = {};
  for (const field of BYTES) if (op[field] !== undefined) formatted[field] = op[field];
  for (const field of QUANTITIES) if (op[field] !== undefined) formatted[field] = numberToHex(op[field]);
  if (op.authorization) {
    const { address: delegate, chainId, nonce, r, s, yParity = 0 } = op.authorization;
    formatted.eip7702Auth = { address: delegate, chainId: numberToHex(chainId), nonce: numberToHex(nonce), r, s, yParity: numberToHex(yParity) };
  }
  return formatted;
}
