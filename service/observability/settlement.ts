// Settlement and deposit-guard metrics. Counters count what this instance did; gauges report the
// shared state in Redis and this instance's cached deposit figures, read when Prometheus scrapes.
// Wei gauges are floats, as every Prometheus value is: exact figures come from the status command.
import { Counter, Gauge, type Registry } from "prom-client";

import { ENTRYPOINT_ADDRESS, type EntryPointVersion } from "../chain/entryPoints.ts";
import type { ReservedTotals } from "../ledger/ledger.ts";
import type { DepositFigures } from "../settlement/deposit.ts";
import type { SettlementProgress } from "../settlement/settlement.ts";

export type SettlementMetricsSources = {
  versions: EntryPointVersion[];
  progress: () => Promise<SettlementProgress>;
  anomalyCounts: () => Promise<Partial<Record<string, number>>>;
  totals: () => Promise<ReservedTotals>;
  deposit: (version: EntryPointVersion) => DepositFigures | null;
  headBlock: () => bigint | null;
  /** Unix seconds. */
  now?: () => number;
};

/** Reads `read` at most once per 100 ms, sharing the answer between the gauges of one scrape. */
function shared<T>(read: () => Promise<T>): () => Promise<T | undefined> {
  let last: { at: number; value: Promise<T | undefined> } | undefined;
  return () => {
    if (!last || Date.now() - last.at > 100) last = { at: Date.now(), value: read().catch(() => undefined) };
    return last.value;
  };
}

/** Registers the settlement metrics in `registry`; returns the counters the worker increments. */
export function createSettlementMetrics(registry: Registry, sources: SettlementMetricsSources) {
  const { versions, deposit, headBlock, now = () => Math.floor(Date.now() / 1000) } = sources;
  const progress = shared(sources.progress);
  const anomalyCounts = shared(sources.anomalyCounts);
  const totals = shared(sources.totals);
  const registers = [registry];
  const entryPointLabel = (version: EntryPointVersion) => ({ entry_point: ENTRYPOINT_ADDRESS[version] });

  new Gauge({
    name: "fiatgas_settlement_lag_blocks",
    help: "Blocks between the chain head and the newest block whose events are all settled",
    registers,
    async collect() {
      const [settled, head] = [(await progress())?.settledBlock, headBlock()];
      if (settled !== null && settled !== undefined && head !== null) this.set(Number(head - settled));
    },
  });
  new Gauge({
    name: "fiatgas_settlement_lag_seconds",
    help: "Seconds since the timestamp of the newest block whose events are all settled",
    registers,
    async collect() {
      const settled = (await progress())?.settledTimestamp;
      if (settled !== null && settled !== undefined) this.set(now() - settled);
    },
  });
  new Gauge({
    name: "fiatgas_settlement_backlog_events",
    help: "Events read from the chain and not yet settled",
    registers,
    async collect() {
      const backlog = (await progress())?.backlog;
      if (backlog !== undefined) this.set(backlog);
    },
  });
  new Gauge({
    name: "fiatgas_settlement_anomalies",
    help: "Anomalies recorded for reconciliation, by kind (all instances)",
    labelNames: ["kind"] as const,
    registers,
    async collect() {
      for (const [kind, count] of Object.entries((await anomalyCounts()) ?? {})) this.set({ kind }, count ?? 0);
    },
  });
  new Gauge({
    name: "fiatgas_reserved_fen",
    help: "Fen held by all live reservations",
    registers,
    async collect() {
      const reserved = (await totals())?.reservedFen;
      if (reserved !== undefined) this.set(Number(reserved));
    },
  });
  new Gauge({
    name: "fiatgas_reservations_live",
    help: "Entries in the live-reservation index: live reservations, plus entries of refused requests until they come due",
    registers,
    async collect() {
      const live = (await totals())?.liveReservations;
      if (live !== undefined) this.set(live);
    },
  });
  new Gauge({
    name: "fiatgas_in_flight_wei",
    help: "Wei the live reservations can take from the paymaster's deposit at worst, by EntryPoint",
    labelNames: ["entry_point"] as const,
    registers,
    async collect() {
      const inFlight = (await totals())?.inFlightWei;
      if (inFlight) for (const version of versions) this.set(entryPointLabel(version), Number(inFlight[version]));
    },
  });
  const depositGauge = (name: string, help: string, value: (figures: DepositFigures) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["entry_point"] as const,
      registers,
      collect() {
        for (const version of versions) {
          const figures = deposit(version);
          if (figures) this.set(entryPointLabel(version), value(figures));
        }
      },
    });
  depositGauge("fiatgas_paymaster_deposit_wei", "The paymaster's EntryPoint deposit, by EntryPoint", (figures) => Number(figures.depositWei));
  depositGauge("fiatgas_paymaster_deposit_floor_wei", "The policy's global.depositFloorWei", (figures) => Number(figures.floorWei));
  depositGauge("fiatgas_paymaster_deposit_headroom_wei", "The deposit minus the wei in flight, by EntryPoint", (figures) => Number(figures.headroomWei));
  depositGauge("fiatgas_paymaster_deposit_degraded", "1 while the headroom is below the floor and sponsorship is paused", (figures) => (figures.degraded ? 1 : 0));

  return {
    events: new Counter({ name: "fiatgas_settlement_events_total", help: "UserOperationEvents handled by this instance, by outcome", labelNames: ["outcome"] as const, registers }),
    releases: new Counter({ name: "fiatgas_settlement_releases_total", help: "Reservations released without landing, by reason (expired, nonce)", labelNames: ["reason"] as const, registers }),
    chargedFen: new Counter({ name: "fiatgas_settlement_charged_fen_total", help: "Fen charged for settled operations by this instance", registers }),
  };
}

export type SettlementMetrics = ReturnType<typeof createSettlementMetrics>;
