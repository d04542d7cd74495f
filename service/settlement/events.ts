// UserOperationEvent, as the EntryPoint emits it and as the settlement stream carries it. The event
// is the same on v0.7 and v0.8; the EntryPoint's address tells the version.
import { type Address, type GetLogsReturnType, type Hex, getAddress, parseAbiItem } from "viem";

import type { EntryPointVersion } from "../chain/entryPoints.ts";

/** The event, with the paymaster indexed: the reader filters on our paymasters' topic. */
export const userOperationEvent = parseAbiItem(
  "event UserOperationEvent(bytes32 indexed userOpHash, address indexed sender, address indexed paymaster, uint256 nonce, bool success, uint256 actualGasCost, uint256 actualGasUsed)",
);

/** A UserOperationEvent for one of our paymasters, where it was read. */
export type PaymasterEvent = {
  entryPointVersion: EntryPointVersion;
  userOpHash: Hex;
  sender: Address;
  paymaster: Address;
  nonce: bigint;
  success: boolean;
  actualGasCost: bigint;
  actualGasUsed: bigint;
  blockNumber: bigint;
  blockHash: Hex;
  transactionHash: Hex;
  logIndex: number;
};

/** One decoded (strict) log of the event, as the EntryPoint of `entryPointVersion` emitted it. */
export function paymasterEventFromLog(log: GetLogsReturnType<typeof userOperationEvent, [typeof userOperationEvent], true>[number], entryPointVersion: EntryPointVersion): PaymasterEvent {
  return {
    entryPointVersion,
    userOpHash: log.args.userOpHash,
    sender: getAddress(log.args.sender),
    paymaster: getAddress(log.args.paymaster),
    nonce: log.args.nonce,
    success: log.args.success,
    actualGasCost: log.args.actualGasCost,
    actualGasUsed: log.args.actualGasUsed,
    blockNumber: log.blockNumber,
    blockHash: log.blockHash,
    transactionHash: log.transactionHash,
    logIndex: log.logIndex,
  };
}

/** The event as one stream field: bigints as decimal strings. */
export function encodeEvent(event: PaymasterEvent): string {
  return JSON.stringify({
    ...event,
    nonce: event.nonce.toString(),
    actualGasCost: event.actualGasCost.toString(),
    actualGasUsed: event.actualGasUsed.toString(),
    blockNumber: event.blockNumber.toString(),
  });
}

const HASH = /^0x[0-9a-fA-F]{64}$/;
const DIGITS = /^\d+$/;

/** An event back from the stream; throws a TypeError naming the bad field if it is not one. */
export function decodeEvent(json: string): PaymasterEvent {
  const raw = JSON.parse(json) as Record<string, unknown>;
  const text = (field: string, pattern: RegExp): string => {
    const value = raw[field];
    if (typeof value !== "string" || !pattern.test(value)) throw new TypeError(`stream event field ${field} is malformed`);
    return value;
  };
  const version = raw.entryPointVersion;
  if (version !== "0.7" && version !== "0.8") throw new TypeError("stream event field entryPointVersion is malformed");
  if (typeof raw.success !== "boolean" || !Number.isInteger(raw.logIndex)) throw new TypeError("stream event fields success or logIndex are malformed");
  return {
    entryPointVersion: version,
    userOpHash: text("userOpHash", HASH) as Hex,
    sender: getAddress(text("sender", /^0x[0-9a-fA-F]{40}$/)),
    paymaster: getAddress(text("paymaster", /^0x[0-9a-fA-F]{40}$/)),
    nonce: BigInt(text("nonce", DIGITS)),
    success: raw.success,
    actualGasCost: BigInt(text("actualGasCost", DIGITS)),
    actualGasUsed: BigInt(text("actualGasUsed", DIGITS)),
    blockNumber: BigInt(text("blockNumber", DIGITS)),
    blockHash: text("blockHash", HASH) as Hex,
    transactionHash: text("transactionHash", HASH) as Hex,
    logIndex: raw.logIndex as number,
  };
}

/** Stream entry ids ("<ms>-<seq>") in order: negative if a comes first. */
export function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split("-").map(BigInt);
  const [bm, bs] = b.split("-").map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}
