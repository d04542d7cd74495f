// What a UserOperation can cost the paymaster, in wei, from its gas fields alone.
import type { UserOperation } from "viem/account-abstraction";

/** The gas fields of a v0.7/v0.8 UserOperation, with the paymaster's limits filled in. */
export type UserOperationGas = Required<
  Pick<
    UserOperation<"0.7">,
    | "callGasLimit"
    | "verificationGasLimit"
    | "preVerificationGas"
    | "paymasterVerificationGasLimit"
    | "paymasterPostOpGasLimit"
    | "maxFeePerGas"
    | "maxPriorityFeePerGas"
  >
>;

/** Every gas unit the op may be charged for: the sum the EntryPoint's _getRequiredPrefund adds up. */
export function userOperationGasLimit(op: UserOperationGas): bigint {
  return op.verificationGasLimit + op.callGasLimit + op.paymasterVerificationGasLimit + op.paymasterPostOpGasLimit + op.preVerificationGas;
}

/**
 * The most the EntryPoint can take from the paymaster's deposit for `op`: the required prefund,
 * (verificationGasLimit + callGasLimit + paymasterVerificationGasLimit + paymasterPostOpGasLimit
 * + preVerificationGas) × maxFeePerGas, identical in v0.7 and v0.8 (EntryPoint._getRequiredPrefund).
 *
 * The 10% unused-gas penalty is NOT added on top: it is part of `actualGas` in _postExecution and the
 * charge is capped at the prefund. v0.7: `if (prefund < actualGasCost)` reverts the inner call with
 * INNER_REVERT_LOW_PREFUND, and _executeUserOp then collects exactly `opInfo.prefund`; v0.8 does the
 * same. The prefund is deducted from the deposit during validation and only the rest is refunded, so
 * no path takes more. Adding the penalty would over-reserve by up to 10% of (callGasLimit +
 * paymasterPostOpGasLimit) × maxFeePerGas on every op.
 */
export function maxPrefundWei(op: UserOperationGas): bigint {
  return userOperationGasLimit(op) * op.maxFeePerGas;
}

/**
 * An upper estimate of the actual cost at the current base fee: every gas unit used, at the price the
 * EntryPoint charges, min(maxFeePerGas, baseFee + maxPriorityFeePerGas) (getUserOpGasPrice). Actual gas
 * used is unknown before inclusion; an op that leaves gas unused pays less even with the penalty, which
 * is 10% of the unused gas. A base fee that rises before inclusion can still push the cost above this,
 * up to maxPrefundWei.
 */
export function expectedCostWei(op: UserOperationGas, baseFee: bigint): bigint {
  const tipped = baseFee + op.maxPriorityFeePerGas;
  return userOperationGasLimit(op) * (tipped < op.maxFeePerGas ? tipped : op.maxFeePerGas);
}
