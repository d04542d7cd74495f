// The limits one operation can be judged on alone, before any Redis round trip: gas caps, the
// charge cap, fees against the current base fee, the base-fee circuit breaker and the policy's
// active period. Each rejection names its limit, the limit's value and the op's value.
import type { UserOperationGas } from "../pricing/index.ts";
import type { Policy } from "./policy.ts";

/** A refused operation: a stable code per limit kind, the limit's path in the policy, and values. */
export type LimitRejection = {
  code: "LIMIT_GAS" | "LIMIT_CHARGE" | "LIMIT_FEE" | "BASE_FEE_CIRCUIT_BREAKER" | "POLICY_INACTIVE";
  limit: string;
  limitValue: string;
  currentValue: string;
  /** Unix seconds when the refusal may lift, when that is known. */
  retryAfter?: number;
  message: string;
};

const GAS_LIMITS = [
  ["maxCallGasLimit", "callGasLimit"],
  ["maxVerificationGasLimit", "verificationGasLimit"],
  ["maxPreVerificationGas", "preVerificationGas"],
  ["maxPaymasterVerificationGasLimit", "paymasterVerificationGasLimit"],
  ["maxPaymasterPostOpGasLimit", "paymasterPostOpGasLimit"],
] as const;

/** The first per-operation limit `op` breaks, or null. `chargeFen` is the op's worst-case charge. */
export function checkOperationLimits({
  op,
  chargeFen,
  baseFee,
  policy,
  now,
}: {
  op: UserOperationGas;
  chargeFen: bigint;
  baseFee: bigint;
  policy: Policy;
  now: number;
}): LimitRejection | null {
  const { activeFrom, activeUntil } = policy.time;
  if (activeFrom !== null && now < activeFrom) {
    return { code: "POLICY_INACTIVE", limit: "time.activeFrom", limitValue: String(activeFrom), currentValue: String(now), retryAfter: activeFrom, message: "sponsorship has not started yet; retry after the time in retryAfter" };
  }
  if (activeUntil !== null && now >= activeUntil) {
    return { code: "POLICY_INACTIVE", limit: "time.activeUntil", limitValue: String(activeUntil), currentValue: String(now), message: "sponsorship has ended for this application; contact the operator" };
  }

  const { baseFeeCeilingWei } = policy.global;
  if (baseFeeCeilingWei !== null && baseFee > baseFeeCeilingWei) {
    return { code: "BASE_FEE_CIRCUIT_BREAKER", limit: "global.baseFeeCeilingWei", limitValue: baseFeeCeilingWei.toString(), currentValue: baseFee.toString(), message: "network fees are above the operator's ceiling; sponsorship resumes when they fall" };
  }

  const limits = policy.perOperation;
  for (const [limit, field] of GAS_LIMITS) {
    const cap = limits[limit];
    if (cap !== null && op[field] > BigInt(cap)) {
      return { code: "LIMIT_GAS", limit: `perOperation.${limit}`, limitValue: String(cap), currentValue: op[field].toString(), message: `${field} ${op[field]} is above the operator's cap of ${cap}; lower it` };
    }
  }
  if (limits.maxPriorityFeePerGasWei !== null && op.maxPriorityFeePerGas > limits.maxPriorityFeePerGasWei) {
    return { code: "LIMIT_FEE", limit: "perOperation.maxPriorityFeePerGasWei", limitValue: limits.maxPriorityFeePerGasWei.toString(), currentValue: op.maxPriorityFeePerGas.toString(), message: "maxPriorityFeePerGas is above the operator's cap; use the fees from GET /v1/gas-prices" };
  }
  if (limits.maxFeeToBaseFeeBps !== null) {
    // The cap bounds the base-fee part of maxFeePerGas: k × baseFee plus the op's own tip, which
    // maxPriorityFeePerGasWei caps. A cap on maxFeePerGas alone would refuse our own fee advice on
    // chains whose base fee is small next to the tip. Integer form, rounding the cap down.
    const cap = (baseFee * BigInt(limits.maxFeeToBaseFeeBps)) / 10_000n + op.maxPriorityFeePerGas;
    if (op.maxFeePerGas > cap) {
      return { code: "LIMIT_FEE", limit: "perOperation.maxFeeToBaseFeeBps", limitValue: cap.toString(), currentValue: op.maxFeePerGas.toString(), message: `maxFeePerGas is above ${limits.maxFeeToBaseFeeBps / 10_000}× the base fee plus the tip; use the fees from GET /v1/gas-prices` };
    }
  }
  if (limits.maxChargeFen !== null && chargeFen > limits.maxChargeFen) {
    return { code: "LIMIT_CHARGE", limit: "perOperation.maxChargeFen", limitValue: limits.maxChargeFen.toString(), currentValue: chargeFen.toString(), message: "this operation's worst-case cost is above the operator's cap per operation; lower its gas limits or fees" };
  }
  return null;
}
