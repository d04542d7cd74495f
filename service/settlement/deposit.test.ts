import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ServiceError } from "../errors.ts";
import { createDepositGuard, depositFigures } from "./deposit.ts";

const PAYMASTER = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0";

/** A guard over a fake node and ledger whose figures the test sets. */
function guardWith(state: { block: bigint; deposit: bigint; inFlight: bigint; floor: bigint; now: number }) {
  const calls = { deposit: 0 };
  const warnings: object[] = [];
  const infos: object[] = [];
  const guard = createDepositGuard({
    publicClient: {
      getBlockNumber: async () => state.block,
      readContract: (async () => {
        calls.deposit++;
        return state.deposit;
      }) as never,
    },
    inFlightWei: async () => state.inFlight,
    paymasters: { "0.7": PAYMASTER },
    floorWei: () => state.floor,
    pollMs: 1_000,
    maxAgeSeconds: 10,
    logger: { warn: (fields) => warnings.push(fields), info: (fields) => infos.push(fields) },
    now: () => state.now,
  });
  return { guard, calls, warnings, infos };
}

const refusal = (read: () => unknown): ServiceError => {
  try {
    read();
  } catch (error) {
    assert.ok(error instanceof ServiceError);
    return error;
  }
  return assert.fail("expected a refusal");
};

describe("the deposit guard", () => {
  it("computes headroom, cap and degraded from deposit, in-flight and floor, in wei", () => {
    assert.deepEqual(depositFigures({ depositWei: 10n, inFlightWei: 7n, floorWei: 3n }), { depositWei: 10n, inFlightWei: 7n, floorWei: 3n, headroomWei: 3n, capWei: 7n, degraded: false });
    assert.equal(depositFigures({ depositWei: 10n, inFlightWei: 8n, floorWei: 3n }).degraded, true);
    assert.equal(depositFigures({ depositWei: 10n, inFlightWei: 12n, floorWei: 0n }).headroomWei, -2n);
  });

  it("fails closed before the first read and once the figures are older than the max age", async () => {
    const state = { block: 5n, deposit: 10n ** 19n, inFlight: 0n, floor: 0n, now: 1_000_000 };
    const { guard } = guardWith(state);
    assert.equal(refusal(() => guard.capFor("0.7")).code, "DEPENDENCY_UNAVAILABLE");
    assert.equal(guard.ready(), false);
    await guard.refresh();
    assert.equal(guard.capFor("0.7"), 10n ** 19n);
    state.now += 10_001;
    assert.equal(refusal(() => guard.capFor("0.7")).code, "DEPENDENCY_UNAVAILABLE");
    assert.equal(guard.ready(), false);
  });

  it("reads the deposit once per new block, the in-flight total on every poll", async () => {
    const state = { block: 5n, deposit: 100n, inFlight: 10n, floor: 0n, now: 0 };
    const { guard, calls } = guardWith(state);
    await guard.refresh();
    state.inFlight = 20n;
    state.deposit = 50n;
    await guard.refresh();
    assert.equal(calls.deposit, 1, "same block: the deposit is not read again");
    assert.deepEqual([guard.figures("0.7")?.depositWei, guard.figures("0.7")?.inFlightWei], [100n, 20n]);
    state.block = 6n;
    await guard.refresh();
    assert.deepEqual([calls.deposit, guard.figures("0.7")?.depositWei], [2, 50n]);
  });

  it("refuses with the floor, the headroom and the figures below the floor, and warns once per transition", async () => {
    const state = { block: 5n, deposit: 1_000n, inFlight: 300n, floor: 800n, now: 0 };
    const { guard, warnings, infos } = guardWith(state);
    await guard.refresh();
    await guard.refresh();
    const error = refusal(() => guard.capFor("0.7"));
    assert.equal(error.code, "DEPOSIT_BELOW_FLOOR");
    assert.deepEqual(error.data, {
      limit: "global.depositFloorWei",
      limitValue: "800",
      currentValue: "700",
      depositWei: "1000",
      inFlightWei: "300",
      entryPoint: "0x0000000071727De22E5E9d8BAf0edAc6f37da032",
    });
    assert.equal(warnings.length, 1, "warned once, not on every poll");
    state.floor = 700n;
    await guard.refresh();
    assert.equal(guard.capFor("0.7"), 300n);
    assert.equal(guard.ready(), true);
    assert.equal(infos.length, 1, "and said when it recovered");
  });
});
