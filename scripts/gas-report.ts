// Side-by-side gas report: what one sponsored UserOperation costs on EntryPoint v0.7 and v0.8
// when a SimpleAccount pays for itself, when the eth-infinitism VerifyingPaymaster sample pays,
// and when FiatGasPaymaster pays.
//
//   npm run gas                          prints the table
//   GAS_SNAPSHOT_UPDATE=1 npm run gas    also rewrites test/gas/gas-snapshot.json (commit it)
//
// The update switch is an environment variable because `hardhat run` rejects arguments it does not
// know, so `npm run gas -- --update` cannot reach this script.
import type { EntryPointVersion } from "../service/chain/entryPoints.ts";
import { ENTRYPOINT_VERSIONS } from "../test/support/aa.ts";
import {
  BUNDLE_SIZE,
  GAS_SNAPSHOT_PATH,
  type BundleGas,
  type GasReport,
  PAYERS,
  createGasBench,
  payerLabel,
  writeGasSnapshot,
} from "../test/support/gasBench.ts";
import { TARGET } from "../test/support/paymasterFixture.ts";

/** `value / base` to three decimals, computed in integers so no gas figure passes through a float. */
function ratio(value: bigint, base: bigint): string {
  const thousandths = (value * 1000n + base / 2n) / base;
  return `${thousandths / 1000n}.${(thousandths % 1000n).toString().padStart(3, "0")}`;
}

const gas = (value: bigint) => value.toLocaleString("en-US");

function table(report: GasReport): string {
  const header = [
    "EntryPoint",
    "Payer",
    "1-op bundle",
    `${BUNDLE_SIZE}-op bundle`,
    "Marginal per op",
    "1-op vs VP",
    "Marginal vs VP",
  ];
  const rows = ENTRYPOINT_VERSIONS.flatMap((version: EntryPointVersion) => {
    const baseline: BundleGas = report[version].verifyingPaymaster;
    return PAYERS.map((payer) => {
      const { oneOp, fullBundle, perOp } = report[version][payer];
      return [
        `v${version}`,
        payerLabel[payer],
        gas(oneOp),
        gas(fullBundle),
        gas(perOp),
        ratio(oneOp, baseline.oneOp),
        ratio(perOp, baseline.perOp),
      ];
    });
  });
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  // Text columns flush left, numbers flush right.
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => (column < 2 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join(" | ")} |`;
  const rule = `|${widths.map((width, column) => (column < 2 ? `-${"-".repeat(width)}-` : `-${"-".repeat(width)}:`)).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

const report = await createGasBench().then((bench) => bench.measureAll());

console.log(
  [
    `Gas of EntryPoint.handleOps (the transaction's gasUsed). Each op: SimpleAccount.execute(${TARGET}, 0, "")`,
    `from an already deployed account (nonce 1), one account per op. Marginal per op = (${BUNDLE_SIZE}-op − 1-op) / ${BUNDLE_SIZE - 1}.`,
    `Same gas limits and fees for every payer. "vs VP" = this row ÷ the VerifyingPaymaster row of the same EntryPoint.`,
    "",
    table(report),
  ].join("\n"),
);

if (process.env.GAS_SNAPSHOT_UPDATE === "1") {
  writeGasSnapshot(report);
  console.log(`\nWrote ${GAS_SNAPSHOT_PATH.pathname}`);
}
