// Fails when FiatGasPaymaster costs more gas than the committed snapshot (test/gas/gas-snapshot.json).
// The measured bundles are byte-identical from run to run (see test/support/gasBench.ts), so the
// tolerance is only a margin for a few signature bytes changing between zero and non-zero, which
// would happen if the signed fields change: 12 gas of calldata per byte.
// After an intended gas change, refresh the snapshot with `GAS_SNAPSHOT_UPDATE=1 npm run gas` and commit it.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";

import { ENTRYPOINT_VERSIONS } from "../support/aa.ts";
import { BUNDLE_SIZE, type BundleGas, createGasBench, readGasSnapshot } from "../support/gasBench.ts";

/** Allowed excess over the snapshot, in basis points of the snapshot figure (0.1%). */
const TOLERANCE_BPS = 10n;

const snapshot = readGasSnapshot();
const bench = await createGasBench();

const figures = {
  oneOp: "a 1-op handleOps bundle",
  perOp: `each further op in a ${BUNDLE_SIZE}-op bundle`,
} as const satisfies Partial<Record<keyof BundleGas, string>>;

for (const version of ENTRYPOINT_VERSIONS) {
  describe(`FiatGasPaymaster gas on EntryPoint v${version}`, () => {
    let measured: BundleGas;
    before(async () => {
      measured = await bench.measure(version, "fiatGasPaymaster");
    });

    for (const [figure, what] of Object.entries(figures) as [keyof typeof figures, string][]) {
      it(`costs no more than the snapshot for ${what}`, () => {
        const now = measured[figure];
        const recorded = snapshot[version].fiatGasPaymaster[figure];
        const allowed = recorded + (recorded * TOLERANCE_BPS) / 10_000n;
        const summary = `v${version} ${figure}: measured ${now} gas, snapshot ${recorded} gas (allowed up to ${allowed})`;
        console.log(summary);
        assert.ok(now <= allowed, `${summary}: gas went up. If intended, run GAS_SNAPSHOT_UPDATE=1 npm run gas and commit the snapshot.`);
        if (now < recorded - (recorded * TOLERANCE_BPS) / 10_000n) {
          console.log(`v${version} ${figure}: cheaper than the snapshot; refresh it with GAS_SNAPSHOT_UPDATE=1 npm run gas.`);
        }
      });
    }
  });
}
