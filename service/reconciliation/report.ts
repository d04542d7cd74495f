// The reconciliation report: its zod schema (the admin route's OpenAPI response, and the type the
// CLI prints), the mismatch kinds with the section each belongs to, and the text rendering.
// Money is integer fen or wei as decimal strings: JSON numbers are doubles.
import { formatEther } from "viem";
import { z } from "zod";

/** What a mismatch is about, by section. Each has a `cause` sentence in the report; the README lists them. */
export const MISMATCH_KINDS = {
  gateways: [
    /** Paid at the gateway, still pending here: its notification never arrived and recovery has not run yet. */
    "stuck_order",
    /** Paid at the gateway, never credited, and not pending here (closed or otherwise moved on). */
    "payment_not_credited",
    /** Credited here, but the gateway reports no payment. */
    "credit_without_payment",
    /** Paid and credited, but the amounts or currencies differ. */
    "amount_mismatch",
    /** A refund debited here whose gateway outcome is not final or not applied yet. */
    "refund_pending",
    /** A refund recorded here as succeeded that the gateway does not report as succeeded. */
    "refund_not_at_gateway",
    /** A refund whose amount differs between the debit here and the gateway. */
    "refund_amount_mismatch",
    /** A journal debit naming a refund the order does not hold. */
    "debit_without_refund",
    /** The gateway did not answer (or is not configured): the order could not be checked. */
    "gateway_unreachable",
  ],
  ledgerVsChain: [
    /** An event for our paymaster that settlement could not charge (an anomaly, or no record although settlement is past it). */
    "unmatched_event",
    /** An event in a block settlement has not reached yet. */
    "not_yet_settled",
    /** The settled record names another block hash than the chain's event: a reorg past the confirmations. */
    "settled_block_mismatch",
    /** The settled record's actualGasCost differs from the event's. */
    "charged_wei_mismatch",
    /** A settled record in the period's blocks with no event on the chain now. */
    "settled_without_event",
  ],
  chainVsDeposit: [
    /** The deposit moved by more or less than deposits − withdrawals − Σ actualGasCost. */
    "deposit_unexplained",
  ],
  settlement: [
    /** A settlement anomaly recorded in the period that no mismatch above accounts for (a reorg, an unreadable entry). */
    "settlement_anomaly",
  ],
} as const;

export type MismatchSection = keyof typeof MISMATCH_KINDS;
export type MismatchKind = (typeof MISMATCH_KINDS)[MismatchSection][number];

const allKinds = Object.values(MISMATCH_KINDS).flat() as [MismatchKind, ...MismatchKind[]];

const fen = z.string().regex(/^-?\d+$/).describe("integer fen (1/100 of the currency unit) as a decimal string");
const wei = z.string().regex(/^-?\d+$/).describe("integer wei as a decimal string");
const isoTime = z.iso.datetime();
const detailValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);

const mismatchSchema = z.object({
  kind: z.enum(allKinds),
  section: z.enum(Object.keys(MISMATCH_KINDS) as [MismatchSection, ...MismatchSection[]]),
  cause: z.string().describe("what happened and what to do, in one or two sentences"),
  differenceFen: fen.optional().describe("this mismatch's part of its channel's difference: the ledger's side minus the gateway's"),
  differenceWei: wei.optional().describe("this mismatch's part of its EntryPoint's difference: the ledger's (or the deposit's) side minus the chain's"),
  details: z.record(z.string(), detailValue).describe("the ids and amounts to look up: orderId, refundId, userOpHash, blockNumber, …"),
});

const channelSchema = z.object({
  orders: z.number().int().describe("orders created in the period on this channel"),
  unverifiedOrders: z.number().int().describe("orders left out of the figures because the gateway did not answer (each is a gateway_unreachable mismatch)"),
  paidFen: fen.describe("paid according to the gateway's query"),
  creditedFen: fen.describe("credited according to the accounts' journals"),
  refundedFen: fen.describe("refunded according to the gateway (refund queries, and refunds the gateway notified us of)"),
  debitedFen: fen.describe("debited for refunds according to the journals: refunds − reversals + refunds made at the gateway"),
  paymentsDifferenceFen: fen.describe("creditedFen − paidFen"),
  refundsDifferenceFen: fen.describe("debitedFen − refundedFen"),
  differenceFen: fen.describe("what the ledger holds for users that the gateways do not: (credited − debited) − (paid − refunded)"),
});

const ledgerVsChainSchema = z.object({
  entryPoint: z.string(),
  paymaster: z.string(),
  events: z.number().int().describe("UserOperationEvents for our paymaster in the period's blocks"),
  chargedWei: wei.describe("Σ actualGasCost the settled records hold for those events (and for settled records in those blocks with no event)"),
  chainWei: wei.describe("Σ actualGasCost of those events on the chain"),
  differenceWei: wei.describe("chargedWei − chainWei"),
});

const chainVsDepositSchema = z.object({
  entryPoint: z.string(),
  paymaster: z.string(),
  startDepositWei: wei.describe("EntryPoint.balanceOf(paymaster) at the block before the period's first"),
  endDepositWei: wei.describe("EntryPoint.balanceOf(paymaster) at the period's last block"),
  depositedWei: wei.describe("added by Deposited events in the period"),
  withdrawnWei: wei.describe("taken by Withdrawn events in the period"),
  chainWei: wei.describe("Σ actualGasCost of our paymaster's events: what the EntryPoint took for gas"),
  differenceWei: wei.describe("(endDeposit − startDeposit) − (deposited − withdrawn − chainWei)"),
});

const anomalySchema = z.object({
  kind: z.string(),
  id: z.string(),
  at: isoTime,
  details: z.record(z.string(), z.unknown()),
});

/** The report, as the admin route answers it and `npm run reconcile -- --json` prints it. */
export const reconciliationReportSchema = z.object({
  period: z.object({
    from: isoTime.describe("inclusive"),
    to: isoTime.describe("exclusive"),
    fromUnix: z.number().int(),
    toUnix: z.number().int(),
    asOf: isoTime.describe("when the report was made"),
    complete: z.boolean().describe("false while the period has not ended: later events will change the figures"),
    fromBlock: z.number().int().describe("the first block whose timestamp is in the period"),
    toBlock: z.number().int().describe("the last one; fromBlock − 1 when the period holds no block"),
    headBlock: z.number().int().describe("the chain's head when the report was made"),
  }),
  currency: z.string(),
  gateways: z.object({ alipay: channelSchema.optional(), wechatpay: channelSchema.optional() }).describe("per channel, for the orders created in the period and all their money movements to date"),
  ledgerVsChain: z.object({ "0.7": ledgerVsChainSchema.optional(), "0.8": ledgerVsChainSchema.optional() }).describe("per configured EntryPoint"),
  chainVsDeposit: z.object({ "0.7": chainVsDepositSchema.optional(), "0.8": chainVsDepositSchema.optional() }).describe("per configured EntryPoint"),
  settlement: z.object({
    settledThroughBlock: z.number().int().nullable().describe("the newest block whose events are all settled, or null before settlement has run"),
    anomalies: z.array(anomalySchema).describe("settlement anomalies recorded in the period, oldest first"),
  }),
  mismatches: z.array(mismatchSchema),
  clean: z.boolean().describe("true when there is no mismatch: every difference is zero and nothing is pending"),
});

export type ReconciliationReport = z.infer<typeof reconciliationReportSchema>;
export type Mismatch = z.infer<typeof mismatchSchema>;
export type ChannelFigures = z.infer<typeof channelSchema>;
export type LedgerVsChainFigures = z.infer<typeof ledgerVsChainSchema>;
export type ChainVsDepositFigures = z.infer<typeof chainVsDepositSchema>;

/** Fen as an amount of the currency, exactly: 12345 with 2 decimals is "123.45". */
export function formatFen(fenText: string, decimals: number): string {
  const negative = fenText.startsWith("-");
  const digits = (negative ? fenText.slice(1) : fenText).padStart(decimals + 1, "0");
  const whole = decimals === 0 ? digits : `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
  return `${negative ? "-" : ""}${whole}`;
}

/** The report as aligned text for an operator; `decimals` of the currency's minor unit. */
export function reportText(report: ReconciliationReport, { decimals = 2 }: { decimals?: number } = {}): string {
  const money = (value: string) => `${formatFen(value, decimals)} ${report.currency}`;
  const eth = (value: string) => `${formatEther(BigInt(value))} ETH`;
  const table = (rows: string[][]) => {
    const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
    return rows.map((row) => `  ${row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join("  ")}`);
  };
  const { period } = report;
  const lines = [
    `Reconciliation ${period.from} → ${period.to} (blocks ${period.fromBlock}–${period.toBlock}), as of ${period.asOf}${period.complete ? "" : " (period not over yet)"}`,
    "",
    "Gateways against the ledger",
  ];
  const channels = Object.entries(report.gateways);
  if (channels.length === 0) lines.push("  no gateway configured");
  else {
    lines.push(
      ...table([
        ["channel", "orders", "paid", "credited", "refunded", "debited", "difference"],
        ...channels.map(([channel, figures]) => [
          channel,
          `${figures.orders}${figures.unverifiedOrders ? ` (${figures.unverifiedOrders} unchecked)` : ""}`,
          money(figures.paidFen),
          money(figures.creditedFen),
          money(figures.refundedFen),
          money(figures.debitedFen),
          money(figures.differenceFen),
        ]),
      ]),
    );
  }
  lines.push("", "The ledger against the chain");
  lines.push(
    ...table([
      ["EntryPoint", "events", "charged", "on chain", "difference"],
      ...Object.entries(report.ledgerVsChain).map(([version, figures]) => [`v${version}`, String(figures.events), eth(figures.chargedWei), eth(figures.chainWei), eth(figures.differenceWei)]),
    ]),
  );
  lines.push("", "The chain against the paymaster's deposit");
  lines.push(
    ...table([
      ["EntryPoint", "start", "end", "deposited", "withdrawn", "gas", "difference"],
      ...Object.entries(report.chainVsDeposit).map(([version, figures]) => [
        `v${version}`,
        eth(figures.startDepositWei),
        eth(figures.endDepositWei),
        eth(figures.depositedWei),
        eth(figures.withdrawnWei),
        eth(figures.chainWei),
        eth(figures.differenceWei),
      ]),
    ]),
  );
  const { anomalies, settledThroughBlock } = report.settlement;
  lines.push("", `Settlement: settled through block ${settledThroughBlock ?? "(none yet)"}; ${anomalies.length} anomal${anomalies.length === 1 ? "y" : "ies"} recorded in the period`);
  for (const anomaly of anomalies) lines.push(`  ${anomaly.at}  ${anomaly.kind}  ${anomaly.id}`);
  lines.push("");
  if (report.mismatches.length === 0) lines.push("Clean: no mismatch, every difference is zero.");
  else {
    lines.push(`${report.mismatches.length} mismatch${report.mismatches.length === 1 ? "" : "es"}:`);
    for (const mismatch of report.mismatches) {
      const amount = mismatch.differenceFen !== undefined ? ` [${money(mismatch.differenceFen)}]` : mismatch.differenceWei !== undefined ? ` [${eth(mismatch.differenceWei)}]` : "";
      lines.push(`  ${mismatch.kind}${amount}: ${mismatch.cause}`);
      const ids = Object.entries(mismatch.details).map(([key, value]) => `${key}=${value}`);
      if (ids.length > 0) lines.push(`    ${ids.join(" ")}`);
    }
  }
  return lines.join("\n");
}
