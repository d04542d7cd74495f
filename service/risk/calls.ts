// Which contracts an operation calls, read from the account's callData, and the policy's call
// lists (calls.deniedSenders, calls.deniedTargets, calls.allowedTargets) applied to them.
//
// Supported callData layouts (selector → format):
//   0xb61d27f6 execute(address,uint256,bytes)                SimpleAccount v0.7 and BaseAccount v0.8
//   0x47e1da2a executeBatch(address[],uint256[],bytes[])      SimpleAccount v0.7 (empty value[] = all zero)
//   0x34fcd5be executeBatch((address,uint256,bytes)[])        BaseAccount v0.8 (struct Call)
//   0xe9ae5c53 execute(bytes32 mode,bytes executionCalldata)  ERC-7579, call types single (0x00) and batch (0x01)
//   "0x" (no callData)                                        no call at all: the EntryPoint skips the account call
// ERC-7579 mode (bytes32): [0] callType, [1] execType, [2..5] unused, [6..9] modeSelector, [10..31] modePayload.
//   single: executionCalldata = abi.encodePacked(address target /*20*/, uint256 value /*32*/, bytes callData /*rest*/)
//   batch:  executionCalldata = abi.encode(Execution[]), Execution = (address target, uint256 value, bytes callData)
//
// Decoding is strict: the ABI-encoded parts must be exactly what a standard encoder writes for the
// decoded values. Solidity and viem agree on canonical encodings but not necessarily on odd offsets,
// dirty address bits or trailing bytes, and a gap between what we read and what the account runs
// would let a caller show us one target and call another.
//
// Limits of what this can see: only the account's direct calls. A call through any intermediary
// (a multicall, a contract the user deployed, or the account calling itself) reaches targets this
// cannot see, so deniedTargets is a best-effort filter; allowedTargets is the real control, and a
// call to the account itself is refused under it unless the account is listed.
import { type AbiParameter, type Address, type DecodeAbiParametersReturnType, type Hex, BaseError, decodeAbiParameters, encodeAbiParameters, getAddress, hexToBigInt, parseAbiItem, parseAbiParameters } from "viem";

import type { Policy } from "./policy.ts";

/** One call the account makes: the contract (or EOA), the wei it sends, and the call data. */
export type AccountCall = { target: Address; value: bigint; data: Hex };

/** The calls a callData makes, or why they cannot be known. */
export type DecodeAccountCallsReturnType = { calls: AccountCall[] } | { undecodable: string };

/** The account functions whose callData this module reads, as declared by their contracts. */
export const ACCOUNT_CALL_ABI = [
  parseAbiItem("function execute(address dest, uint256 value, bytes func)"),
  parseAbiItem("function executeBatch(address[] dest, uint256[] value, bytes[] func)"),
  parseAbiItem(["struct Call { address target; uint256 value; bytes data; }", "function executeBatch(Call[] calls)"]),
  parseAbiItem("function execute(bytes32 mode, bytes executionCalldata)"),
  parseAbiItem([
    "struct PackedUserOperation { address sender; uint256 nonce; bytes initCode; bytes callData; bytes32 accountGasLimits; uint256 preVerificationGas; bytes32 gasFees; bytes paymasterAndData; bytes signature; }",
    "function executeUserOp(PackedUserOperation userOp, bytes32 userOpHash)",
  ]),
] as const;

const [EXECUTE, EXECUTE_BATCH_V07, EXECUTE_BATCH_V08, ERC7579_EXECUTE] = ACCOUNT_CALL_ABI;

/** Selectors, written out so a reader can grep callData for them; the tests recompute them from the ABIs. */
export const ACCOUNT_CALL_SELECTORS = {
  execute: "0xb61d27f6",
  executeBatchV07: "0x47e1da2a",
  executeBatchV08: "0x34fcd5be",
  erc7579Execute: "0xe9ae5c53",
  executeUserOp: "0x8dd7712f",
} as const satisfies Record<string, Hex>;

/** abi.encode(Execution[]) in an ERC-7579 batch. */
const ERC7579_BATCH = parseAbiParameters(["Execution[]", "struct Execution { address target; uint256 value; bytes callData; }"]);

const ERC7579_CALLTYPE_SINGLE = "00";
const ERC7579_CALLTYPE_BATCH = "01";
const ERC7579_CALLTYPE_STATIC = "fe";
const ERC7579_CALLTYPE_DELEGATECALL = "ff";
/** 0x00 reverts the op on a failed call, 0x01 ("try") carries on; both attempt the same calls. */
const ERC7579_EXECTYPES = new Set(["00", "01"]);
/** abi.encodePacked(address, uint256): where the inner callData starts in a single execution. */
const ERC7579_SINGLE_HEADER_BYTES = 52;

const HEX_BYTES = /^0x(?:[0-9a-fA-F]{2})*$/;

/** The calls `callData` makes from a smart account; never throws, and says why when it cannot tell. */
export function decodeAccountCalls(callData: Hex): DecodeAccountCallsReturnType {
  if (typeof callData !== "string" || !HEX_BYTES.test(callData)) return { undecodable: "callData is not 0x-prefixed hex of whole bytes" };
  // The EntryPoint calls the account only when callData is non-empty (deploy-only operations).
  if (callData.length === 2) return { calls: [] };
  if (callData.length < 10) return { undecodable: `callData is ${bytes(byteLength(callData))}, shorter than a 4-byte function selector` };

  const selector = callData.slice(0, 10).toLowerCase();
  const args = `0x${callData.slice(10)}` as Hex;
  try {
    switch (selector) {
      case ACCOUNT_CALL_SELECTORS.execute: {
        const decoded = decodeCanonical(EXECUTE.inputs, args, "execute");
        if ("undecodable" in decoded) return decoded;
        const [target, value, data] = decoded.values;
        return { calls: [{ target, value, data: lower(data) }] };
      }
      case ACCOUNT_CALL_SELECTORS.executeBatchV07: {
        const decoded = decodeCanonical(EXECUTE_BATCH_V07.inputs, args, "executeBatch(address[],uint256[],bytes[])");
        if ("undecodable" in decoded) return decoded;
        const [targets, values, datas] = decoded.values;
        // SimpleAccount v0.7 requires these lengths and reverts otherwise; an empty value[] means all zero.
        if (targets.length !== datas.length) return { undecodable: `executeBatch(address[],uint256[],bytes[]): ${targets.length} targets but ${datas.length} call data; the account would revert` };
        if (values.length !== 0 && values.length !== datas.length) return { undecodable: `executeBatch(address[],uint256[],bytes[]): ${values.length} values for ${datas.length} calls; the account would revert` };
        return { calls: targets.map((target, i) => ({ target, value: values.length === 0 ? 0n : values[i], data: lower(datas[i]) })) };
      }
      case ACCOUNT_CALL_SELECTORS.executeBatchV08: {
        const decoded = decodeCanonical(EXECUTE_BATCH_V08.inputs, args, "executeBatch((address,uint256,bytes)[])");
        if ("undecodable" in decoded) return decoded;
        const [calls] = decoded.values;
        return { calls: calls.map(({ target, value, data }) => ({ target, value, data: lower(data) })) };
      }
      case ACCOUNT_CALL_SELECTORS.erc7579Execute: {
        const decoded = decodeCanonical(ERC7579_EXECUTE.inputs, args, "ERC-7579 execute");
        if ("undecodable" in decoded) return decoded;
        const [mode, executionCalldata] = decoded.values;
        return decodeErc7579Execution(mode, executionCalldata);
      }
      case ACCOUNT_CALL_SELECTORS.executeUserOp:
        // The EntryPoint hands the account the whole UserOperation; IAccountExecute defines no format
        // for the bytes after the selector, so each account reads them its own way.
        return { undecodable: "executeUserOp: the account reads the bytes after the selector in its own format, so its calls cannot be known" };
      default:
        return { undecodable: `unknown account function ${selector}; use execute(address,uint256,bytes), executeBatch, or ERC-7579 execute(bytes32,bytes)` };
    }
  } catch (error) {
    // Every expected failure is handled above; this keeps a decoder bug from escaping as a throw.
    return { undecodable: `callData could not be decoded (${describe(error)})` };
  }
}

function decodeErc7579Execution(mode: Hex, executionCalldata: Hex): DecodeAccountCallsReturnType {
  const modeHex = mode.slice(2).toLowerCase();
  const callType = modeHex.slice(0, 2);
  const execType = modeHex.slice(2, 4);
  const unused = modeHex.slice(4, 12);
  const modeSelector = modeHex.slice(12, 20);
  const modePayload = modeHex.slice(20);
  if (callType === ERC7579_CALLTYPE_DELEGATECALL) {
    return { undecodable: "ERC-7579 delegatecall mode: the target's code runs with the account's own storage and balance, so the target does not say what it does" };
  }
  if (callType === ERC7579_CALLTYPE_STATIC) return { undecodable: "ERC-7579 staticcall mode is not supported; it changes nothing worth sponsoring" };
  if (callType !== ERC7579_CALLTYPE_SINGLE && callType !== ERC7579_CALLTYPE_BATCH) return { undecodable: `unknown ERC-7579 call type 0x${callType}` };
  if (!ERC7579_EXECTYPES.has(execType)) return { undecodable: `unknown ERC-7579 exec type 0x${execType}` };
  // A non-zero mode selector asks the account for its own behaviour (for example ERC-7821 opData),
  // which may read executionCalldata differently; the default mode leaves the other bytes zero.
  if (modeSelector !== "00000000") return { undecodable: `ERC-7579 mode selector 0x${modeSelector} is account-specific` };
  if (!/^0*$/.test(unused + modePayload)) return { undecodable: "ERC-7579 mode has non-zero reserved or payload bytes" };

  if (callType === ERC7579_CALLTYPE_SINGLE) {
    const size = byteLength(executionCalldata);
    if (size < ERC7579_SINGLE_HEADER_BYTES) {
      return { undecodable: `ERC-7579 single execution is ${bytes(size)}; it needs at least ${ERC7579_SINGLE_HEADER_BYTES} (20-byte target, 32-byte value)` };
    }
    const hex = executionCalldata.slice(2).toLowerCase();
    return {
      calls: [{ target: getAddress(`0x${hex.slice(0, 40)}`), value: hexToBigInt(`0x${hex.slice(40, 104)}`), data: `0x${hex.slice(104)}` }],
    };
  }
  const decoded = decodeCanonical(ERC7579_BATCH, executionCalldata, "ERC-7579 batch");
  if ("undecodable" in decoded) return decoded;
  const [executions] = decoded.values;
  return { calls: executions.map(({ target, value, callData }) => ({ target, value, data: lower(callData) })) };
}

/**
 * ABI-decodes `data` and accepts it only if it is byte for byte the standard encoding of what it
 * decoded to: no trailing bytes, no unusual offsets, no dirty padding.
 */
function decodeCanonical<const params extends readonly AbiParameter[]>(
  params: params,
  data: Hex,
  what: string,
): { values: DecodeAbiParametersReturnType<params> } | { undecodable: string } {
  let values: DecodeAbiParametersReturnType<params>;
  try {
    values = decodeAbiParameters(params, data);
  } catch (error) {
    return { undecodable: `${what}: malformed ABI encoding (${describe(error)})` };
  }
  // Decoded values always re-encode; the types differ only in viem's readonly-ness.
  const canonical = encodeAbiParameters(params, values as never).toLowerCase();
  const actual = data.toLowerCase();
  if (actual === canonical) return { values };
  if (actual.startsWith(canonical)) return { undecodable: `${what}: ${bytes(byteLength(actual) - byteLength(canonical))} extra after the encoded arguments` };
  if (canonical.startsWith(actual)) return { undecodable: `${what}: truncated, ${bytes(byteLength(canonical) - byteLength(actual))} short of the encoded arguments` };
  return { undecodable: `${what}: non-standard ABI encoding (offsets, lengths or padding differ from a standard encoder's)` };
}

const byteLength = (hex: string) => (hex.length - 2) / 2;
const bytes = (n: number) => (n === 1 ? "1 byte" : `${n} bytes`);
const lower = (hex: Hex) => hex.toLowerCase() as Hex;

/** One line about a decoding error, without viem's docs links and version footer. */
function describe(error: unknown): string {
  const message = error instanceof BaseError ? error.shortMessage : error instanceof Error ? error.message : String(error);
  return message.split("\n")[0]!.trim();
}

// ---------------------------------------------------------------------------------------------
// Policy

/** A stable code for a call-policy rejection, to be mapped in the service's error table. */
export type CallRejectionCode = "SENDER_DENIED" | "TARGET_DENIED" | "CALLDATA_UNDECODABLE" | "TARGET_NOT_ALLOWED" | "SELECTOR_NOT_ALLOWED";
/** Every CallRejectionCode, for tables and tests. */
export const CALL_REJECTION_CODES = ["SENDER_DENIED", "TARGET_DENIED", "CALLDATA_UNDECODABLE", "TARGET_NOT_ALLOWED", "SELECTOR_NOT_ALLOWED"] as const satisfies readonly CallRejectionCode[];

/**
 * The selector a call with empty data stands for in `allowedTargets[].selectors`: a plain ETH
 * transfer (receive()). With a selector list, such a call is allowed only if this is listed.
 */
export const PLAIN_TRANSFER_SELECTOR = "0x00000000" as const satisfies Hex;

/** A refused operation: its code, the limit's path in the policy, one line saying what to do, and facts. */
export type CallRejection = { ok: false; code: CallRejectionCode; message: string } & (
  | { code: "SENDER_DENIED"; limit: "calls.deniedSenders"; data: { sender: Address } }
  | { code: "TARGET_DENIED"; limit: "calls.deniedTargets"; data: { target: Address; index: number } }
  | { code: "CALLDATA_UNDECODABLE"; limit: "calls.allowedTargets" | "calls.deniedTargets"; data: { reason: string } }
  | { code: "TARGET_NOT_ALLOWED"; limit: "calls.allowedTargets"; data: { target: Address; index: number } }
  | {
      code: "SELECTOR_NOT_ALLOWED";
      limit: `calls.allowedTargets[${number}].selectors`;
      /** `selector` is null when the call data is 1–3 bytes (a fallback call with no selector). */
      data: { target: Address; index: number; selector: Hex | null; allowedSelectors: Hex[] };
    }
);

export type CheckCallsParameters = { sender: Address; callData: Hex; policy: Policy };
/** Accepted with the calls it makes (null: undecodable, which the policy did not need to read), or refused. */
export type CheckCallsReturnType = { ok: true; calls: AccountCall[] | null } | CallRejection;

// The policy's lists in lookup form (lowercase addresses), built once per validated policy.
type CallsIndex = {
  deniedSenders: Set<string>;
  deniedTargets: Set<string>;
  allowedTargets: Map<string, { index: number; selectors: Hex[] | null }> | null;
};
const indexes = new WeakMap<Policy["calls"], CallsIndex>();

function indexOf(calls: Policy["calls"]): CallsIndex {
  let index = indexes.get(calls);
  if (index) return index;
  let allowedTargets: CallsIndex["allowedTargets"] = null;
  if (calls.allowedTargets !== null) {
    allowedTargets = new Map();
    calls.allowedTargets.forEach(({ address, selectors }, i) => {
      const key = address.toLowerCase();
      const earlier = allowedTargets!.get(key);
      // A target listed twice allows the union of its entries; any null entry allows everything.
      if (!earlier) allowedTargets!.set(key, { index: i, selectors: selectors === null ? null : [...selectors] });
      else if (earlier.selectors !== null) earlier.selectors = selectors === null ? null : [...new Set([...earlier.selectors, ...selectors])];
    });
  }
  index = {
    deniedSenders: new Set(calls.deniedSenders.map((a) => a.toLowerCase())),
    deniedTargets: new Set(calls.deniedTargets.map((a) => a.toLowerCase())),
    allowedTargets,
  };
  indexes.set(calls, index);
  return index;
}

/** The selector `data` calls: the pseudo-selector for empty data, null for 1–3 bytes. */
function selectorOf(data: Hex): Hex | null {
  if (data.length === 2) return PLAIN_TRANSFER_SELECTOR;
  if (data.length < 10) return null;
  return data.slice(0, 10).toLowerCase() as Hex;
}

/** Applies the policy's call lists to an operation; the first rule it breaks, or its calls. */
export function checkCalls({ sender, callData, policy }: CheckCallsParameters): CheckCallsReturnType {
  const lists = indexOf(policy.calls);
  if (lists.deniedSenders.has(String(sender).toLowerCase())) {
    return {
      ok: false,
      code: "SENDER_DENIED",
      limit: "calls.deniedSenders",
      message: `the operator does not sponsor operations from account ${sender}; pay gas yourself or contact the operator`,
      data: { sender },
    };
  }

  const decoded = decodeAccountCalls(callData);
  if ("undecodable" in decoded) {
    // A list of allowed or denied targets can only be enforced on calls we can read.
    const limit = lists.allowedTargets !== null ? "calls.allowedTargets" : lists.deniedTargets.size > 0 ? "calls.deniedTargets" : null;
    if (limit === null) return { ok: true, calls: null };
    return {
      ok: false,
      code: "CALLDATA_UNDECODABLE",
      limit,
      message: `the operator only sponsors calls it can check, and this callData cannot be read (${decoded.undecodable}); send the calls through execute, executeBatch or ERC-7579 execute in single or batch mode`,
      data: { reason: decoded.undecodable },
    };
  }
  const { calls } = decoded;

  for (const [index, { target }] of calls.entries()) {
    if (lists.deniedTargets.has(target.toLowerCase())) {
      return {
        ok: false,
        code: "TARGET_DENIED",
        limit: "calls.deniedTargets",
        message: `call ${index} goes to ${target}, which the operator does not sponsor calls to; remove that call or pay gas yourself`,
        data: { target, index },
      };
    }
  }

  if (lists.allowedTargets !== null) {
    for (const [index, { target, data }] of calls.entries()) {
      const allowed = lists.allowedTargets.get(target.toLowerCase());
      if (!allowed) {
        return {
          ok: false,
          code: "TARGET_NOT_ALLOWED",
          limit: "calls.allowedTargets",
          message: `call ${index} goes to ${target}, which is not on the operator's allowlist; call an allowed contract or ask the operator to allow ${target}`,
          data: { target, index },
        };
      }
      if (allowed.selectors === null) continue;
      const selector = selectorOf(data);
      if (selector !== null && allowed.selectors.includes(selector)) continue;
      const what =
        selector === null
          ? `call ${index} to ${target} has ${bytes(byteLength(data))} of data, too short for a function selector; call an allowed function`
          : selector === PLAIN_TRANSFER_SELECTOR && data.length === 2
            ? `call ${index} sends ETH to ${target} without calling a function, which the operator does not allow there; call an allowed function or ask the operator to allow plain transfers (${PLAIN_TRANSFER_SELECTOR}) on ${target}`
            : `call ${index} calls function ${selector} on ${target}, which the operator does not allow there; call an allowed function or ask the operator to allow ${selector} on ${target}`;
      return {
        ok: false,
        code: "SELECTOR_NOT_ALLOWED",
        limit: `calls.allowedTargets[${allowed.index}].selectors`,
        message: what,
        data: { target, index, selector, allowedSelectors: [...allowed.selectors] },
      };
    }
  }
  return { ok: true, calls };
}
