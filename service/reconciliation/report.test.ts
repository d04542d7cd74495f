import assert from "node:assert/strict";
import { it } from "node:test";

import { MISMATCH_KINDS, type ReconciliationReport, formatFen, reconciliationReportSchema, reportText } from "./report.ts";

it("formats fen exactly, in any number of decimals and with a sign", () => {
  assert.equal(formatFen("12345", 2), "123.45");
  assert.equal(formatFen("5", 2), "0.05");
  assert.equal(formatFen("-1100", 2), "-11.00");
  assert.equal(formatFen("0", 2), "0.00");
  assert.equal(formatFen("90071992547409931", 2), "900719925474099.31", "beyond 2^53 without a float");
  assert.equal(formatFen("7", 0), "7");
});

it("gives every mismatch kind one section", () => {
  const all = Object.values(MISMATCH_KINDS).flat();
  assert.equal(new Set(all).size, all.length);
});

it("renders a report as text with its verdict and each mismatch's cause and ids", () => {
  const report: ReconciliationReport = reconciliationReportSchema.parse({
    period: { from: "2025-06-01T00:00:00.000Z", to: "2025-06-02T00:00:00.000Z", fromUnix: 1748736000, toUnix: 1748822400, asOf: "2025-06-03T00:00:00.000Z", complete: true, fromBlock: 10, toBlock: 20, headBlock: 30 },
    currency: "CNY",
    gateways: { alipay: { orders: 1, unverifiedOrders: 0, paidFen: "1100", creditedFen: "0", refundedFen: "0", debitedFen: "0", paymentsDifferenceFen: "-1100", refundsDifferenceFen: "0", differenceFen: "-1100" } },
    ledgerVsChain: { "0.7": { entryPoint: "0xE", paymaster: "0xP", events: 0, chargedWei: "0", chainWei: "0", differenceWei: "0" } },
    chainVsDeposit: { "0.7": { entryPoint: "0xE", paymaster: "0xP", startDepositWei: "1000000000000000000", endDepositWei: "1000000000000000000", depositedWei: "0", withdrawnWei: "0", chainWei: "0", differenceWei: "0" } },
    settlement: { settledThroughBlock: 20, anomalies: [] },
    mismatches: [{ kind: "stuck_order", section: "gateways", cause: "paid at the gateway but still pending here", differenceFen: "-1100", details: { orderId: "TU1" } }],
    clean: false,
  });
  const text = reportText(report);
  assert.match(text, /alipay\s+1\s+11\.00 CNY\s+0\.00 CNY\s+0\.00 CNY\s+0\.00 CNY\s+-11\.00 CNY/);
  assert.match(text, /v0\.7\s+1 ETH\s+1 ETH\s+0 ETH/);
  assert.match(text, /1 mismatch:\n {2}stuck_order \[-11\.00 CNY\]: paid at the gateway but still pending here\n {4}orderId=TU1/);
  assert.doesNotMatch(text, /Clean/);
});
