import assert from "node:assert/strict";

import { BaseError, ContractFunctionRevertedError, type Hex, decodeErrorResult, type Abi } from "viem";

/** The decoded custom error a failed contract call reverted with. */
export async function revertOf(promise: Promise<unknown>): Promise<{ errorName: string; args: readonly unknown[] }> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof BaseError)) throw error;
    const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (reverted instanceof ContractFunctionRevertedError && reverted.data) {
      return { errorName: reverted.data.errorName, args: reverted.data.args ?? [] };
    }
    throw error;
  }
  assert.fail("expected the call to revert");
}

/** Asserts that handleOps failed for op 0 with an EntryPoint reason starting with `code` (e.g. "AA34"). */
export async function assertFailedOp(promise: Promise<unknown>, code: string): Promise<readonly unknown[]> {
  const { errorName, args } = await revertOf(promise);
  assert.match(errorName, /^FailedOp(WithRevert)?$/);
  assert.equal(args[0], 0n);
  assert.ok(String(args[1]).startsWith(code), `expected ${code}, got "${String(args[1])}"`);
  return args;
}

/** Decodes revert data nested in FailedOpWithRevert against `abi`. */
export function innerRevert(abi: Abi, data: Hex) {
  return decodeErrorResult({ abi, data });
}

/** Splits EntryPoint validation data into its parts. */
export function unpackValidationData(validationData: bigint) {
  const mask48 = (1n << 48n) - 1n;
  return {
    sigFailed: (validationData & ((1n << 160n) - 1n)) === 1n,
    validUntil: Number((validationData >> 160n) & mask48),
    validAfter: Number((validationData >> 208n) & mask48),
  };
}
