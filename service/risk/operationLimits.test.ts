import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { UserOperationGas } from "../pricing/index.ts";
import { checkOperationLimits } from "./operationLimits.ts";
import { type PolicyDocument, policySchema } from "./policy.ts";

const GWEI = 1_000_000_000n;
const op: UserOperationGas = {
  callGasLimit: 100_000n,
  verificationGasLimit: 500_000n,
  preVerificationGas: 60_000n,
  paymasterVerificationGasLimit: 30_000n,
  paymasterPostOpGasLimit: 0n,
  maxFeePerGas: 3n * GWEI,
  maxPriorityFeePerGas: 1n * GWEI,
};
const NOW = 1_900_000_000;

function check(document: PolicyDocument, overrides: Partial<UserOperationGas> = {}, { chargeFen = 5_694n, baseFee = 2n * GWEI } = {}) {
  return checkOperationLimits({ op: { ...op, ...overrides }, chargeFen, baseFee, policy: policySchema.parse(document), now: NOW });
}

describe("per-operation limits", () => {
  it("accepts an op within every limit", () => {
    assert.equal(check({ perOperation: { maxChargeFen: "5694", maxPriorityFeePerGasWei: "1000000000" }, global: { baseFeeCeilingWei: "2000000000" } }), null);
  });

  const gasCases = [
    ["maxCallGasLimit", "callGasLimit"],
    ["maxVerificationGasLimit", "verificationGasLimit"],
    ["maxPreVerificationGas", "preVerificationGas"],
    ["maxPaymasterVerificationGasLimit", "paymasterVerificationGasLimit"],
    ["maxPaymasterPostOpGasLimit", "paymasterPostOpGasLimit"],
  ] as const;
  for (const [limit, field] of gasCases) {
    it(`caps ${field} with perOperation.${limit}, at the limit and one above`, () => {
      const at = op[field];
      assert.equal(check({ perOperation: { [limit]: Number(at) } }), null);
      assert.deepEqual(check({ perOperation: { [limit]: Number(at) } }, { [field]: at + 1n }), {
        code: "LIMIT_GAS",
        limit: `perOperation.${limit}`,
        limitValue: String(at),
        currentValue: String(at + 1n),
        message: `${field} ${at + 1n} is above the operator's cap of ${at}; lower it`,
      });
    });
  }

  it("caps the worst-case charge in fen", () => {
    const rejection = check({ perOperation: { maxChargeFen: "5693" } });
    assert.deepEqual([rejection?.code, rejection?.limit, rejection?.limitValue, rejection?.currentValue], ["LIMIT_CHARGE", "perOperation.maxChargeFen", "5693", "5694"]);
  });

  it("caps maxFeePerGas at k × the base fee plus the tip, and the tip absolutely", () => {
    // 3 gwei against 2 gwei × 1 + 1 gwei tip = 3 gwei: allowed; 0.99× is not.
    assert.equal(check({ perOperation: { maxFeeToBaseFeeBps: 10_000 } }), null);
    const fee = check({ perOperation: { maxFeeToBaseFeeBps: 10_000 } }, {}, { baseFee: 2n * GWEI - 1n });
    assert.deepEqual([fee?.code, fee?.limit, fee?.limitValue, fee?.currentValue], ["LIMIT_FEE", "perOperation.maxFeeToBaseFeeBps", "2999999999", "3000000000"]);
    // A small base fee next to the tip, as on a quiet chain: our own advice (1.2657 × base + tip) passes 3×.
    const advice = check({}, { maxFeePerGas: 1_389_000_000n, maxPriorityFeePerGas: 1n * GWEI }, { baseFee: 308_000_000n });
    assert.equal(advice, null);
    const tip = check({ perOperation: { maxPriorityFeePerGasWei: "999999999" } });
    assert.deepEqual([tip?.code, tip?.limit], ["LIMIT_FEE", "perOperation.maxPriorityFeePerGasWei"]);
  });

  it("stops sponsoring while the base fee is above the ceiling", () => {
    assert.equal(check({ global: { baseFeeCeilingWei: "2000000000" } }), null);
    const breaker = check({ global: { baseFeeCeilingWei: "1999999999" } });
    assert.deepEqual([breaker?.code, breaker?.limit, breaker?.currentValue], ["BASE_FEE_CIRCUIT_BREAKER", "global.baseFeeCeilingWei", "2000000000"]);
  });

  it("sponsors only inside the policy's active period, saying when it starts", () => {
    assert.equal(check({ time: { activeFrom: NOW, activeUntil: NOW + 1 } }), null);
    const early = check({ time: { activeFrom: NOW + 60 } });
    assert.deepEqual([early?.code, early?.limit, early?.retryAfter], ["POLICY_INACTIVE", "time.activeFrom", NOW + 60]);
    const late = check({ time: { activeUntil: NOW } });
    assert.deepEqual([late?.code, late?.limit, late?.retryAfter], ["POLICY_INACTIVE", "time.activeUntil", undefined]);
  });
});
