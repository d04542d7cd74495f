// `GET /admin/stats`: the operator console's live figures, read from this instance's own metrics
// registry (the values /metrics exposes) and, for wei, from the deposit guard's exact figures, since
// every Prometheus value is a float. Registered inside the admin plugin, so it shares its token
// check, its audit log line and its Cache-Control.
import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { Registry } from "prom-client";
import { z } from "zod";

import { actorHeader } from "../admin/auth.ts";
import { ENTRYPOINT_ADDRESS, type EntryPointVersion } from "../chain/entryPoints.ts";
import type { DepositFigures } from "../settlement/deposit.ts";

export type StatsRoutesOptions = {
  registry: Registry;
  versions: EntryPointVersion[];
  /** The deposit guard's figures for `version`, or null before its first read. */
  deposit: (version: EntryPointVersion) => DepositFigures | null;
  /** Unix milliseconds. */
  now?: () => number;
};

/** The sponsorship method: an outcome of `ok` is a signed sponsorship. */
const SPONSOR_METHOD = "pm_getPaymasterData";

const amount = (unit: string) => z.string().regex(/^-?\d+$/).describe(`integer ${unit} as a decimal string`);
const counts = z.record(z.string(), z.number()).describe("count by label, since this instance started");

export const statsSchema = z.object({
  at: z.iso.datetime().describe("when the figures were read"),
  sponsorships: z.object({
    signed: z.number().int().describe("pm_getPaymasterData calls answered with a signature, since this instance started"),
    rejected: z.number().int().describe("pm_getPaymasterData calls refused"),
    byOutcome: counts.describe("pm_getPaymasterData calls by outcome: ok or the error code"),
  }),
  rejections: z
    .array(z.object({ method: z.string(), code: z.string(), count: z.number().int() }))
    .describe("refused JSON-RPC calls by method and error code since this instance started, most frequent first"),
  settlement: z.object({
    lagBlocks: z.number().nullable().describe("blocks between the head and the newest block whose events are all settled (the gauge's value: 0 until settlement has settled a block); null if the gauge is not registered"),
    lagSeconds: z.number().nullable().describe("seconds since that block's timestamp"),
    backlogEvents: z.number().nullable().describe("events read and not yet settled"),
    events: counts.describe("events handled by this instance, by outcome"),
    releases: counts.describe("reservations released without landing, by reason"),
    chargedFen: amount("fen").describe("fen charged by this instance for settled operations"),
  }),
  reservations: z.object({
    reservedFen: amount("fen").nullable().describe("fen held by all live reservations"),
    live: z.number().nullable().describe("entries in the live-reservation index"),
  }),
  deposits: z
    .array(
      z.object({
        entryPointVersion: z.string(),
        entryPoint: z.string(),
        depositWei: amount("wei"),
        floorWei: amount("wei"),
        inFlightWei: amount("wei"),
        headroomWei: amount("wei").describe("deposit − in flight"),
        capWei: amount("wei").describe("deposit − floor: the most the live reservations may hold"),
        degraded: z.boolean().describe("the headroom is below the floor: sponsorship is paused"),
      }),
    )
    .describe("per configured EntryPoint whose deposit has been read"),
});

export type Stats = z.infer<typeof statsSchema>;

type Sample = { labels: Partial<Record<string, string | number>>; value: number };

/** The samples of one metric in `registry` (running its collect()), or none when it is not registered. */
async function samples(registry: Registry, name: string): Promise<Sample[]> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return [];
  return (await metric.get()).values.map(({ labels, value }) => ({ labels, value }));
}

/** An unlabelled gauge's value, or null while it has none. */
async function single(registry: Registry, name: string): Promise<number | null> {
  const [sample] = await samples(registry, name);
  return sample === undefined || !Number.isFinite(sample.value) ? null : sample.value;
}

/** Sums a metric's samples by one label. */
async function byLabel(registry: Registry, name: string, label: string): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  for (const { labels, value } of await samples(registry, name)) {
    const key = String(labels[label] ?? "");
    result[key] = (result[key] ?? 0) + value;
  }
  return result;
}

/** An integer metric value (fen below 2^53 is exact in a double) as a decimal string. */
const integerString = (value: number) => BigInt(Math.round(value)).toString();

/** Reads the live figures; every metric read runs its collect(), as a scrape would. */
export async function readStats({ registry, versions, deposit, now = Date.now }: StatsRoutesOptions): Promise<Stats> {
  const [rpcCalls, lagBlocks, lagSeconds, backlogEvents, events, releases, chargedFen, reservedFen, live] = await Promise.all([
    samples(registry, "fiatgas_rpc_calls_total"),
    single(registry, "fiatgas_settlement_lag_blocks"),
    single(registry, "fiatgas_settlement_lag_seconds"),
    single(registry, "fiatgas_settlement_backlog_events"),
    byLabel(registry, "fiatgas_settlement_events_total", "outcome"),
    byLabel(registry, "fiatgas_settlement_releases_total", "reason"),
    single(registry, "fiatgas_settlement_charged_fen_total"),
    single(registry, "fiatgas_reserved_fen"),
    single(registry, "fiatgas_reservations_live"),
  ]);

  const byOutcome: Record<string, number> = {};
  const rejections: Stats["rejections"] = [];
  for (const { labels, value } of rpcCalls) {
    const method = String(labels.method ?? "");
    const outcome = String(labels.outcome ?? "");
    if (method === SPONSOR_METHOD) byOutcome[outcome] = (byOutcome[outcome] ?? 0) + value;
    if (outcome !== "ok" && value > 0) rejections.push({ method, code: outcome, count: value });
  }
  rejections.sort((a, b) => b.count - a.count || a.code.localeCompare(b.code) || a.method.localeCompare(b.method));
  const signed = byOutcome.ok ?? 0;
  const rejected = Object.entries(byOutcome).reduce((sum, [outcome, count]) => (outcome === "ok" ? sum : sum + count), 0);

  return {
    at: new Date(now()).toISOString(),
    sponsorships: { signed, rejected, byOutcome },
    rejections,
    settlement: { lagBlocks, lagSeconds, backlogEvents, events, releases, chargedFen: integerString(chargedFen ?? 0) },
    reservations: { reservedFen: reservedFen === null ? null : integerString(reservedFen), live },
    deposits: versions.flatMap((version) => {
      const figures = deposit(version);
      if (!figures) return [];
      return [
        {
          entryPointVersion: version,
          entryPoint: ENTRYPOINT_ADDRESS[version],
          depositWei: figures.depositWei.toString(),
          floorWei: figures.floorWei.toString(),
          inFlightWei: figures.inFlightWei.toString(),
          headroomWei: figures.headroomWei.toString(),
          capWei: figures.capWei.toString(),
          degraded: figures.degraded,
        },
      ];
    }),
  };
}

/** The live-figures route; register it inside the admin plugin. */
export const statsRoutes: FastifyPluginAsync<StatsRoutesOptions> = async (fastify, options) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.get(
    "/admin/stats",
    {
      schema: {
        summary: "Live figures for the operator console",
        description:
          "Sponsorships and JSON-RPC rejections by code (counted by this instance since it started), settlement lag and backlog, live reservations, " +
          "and each EntryPoint deposit against the floor and the wei in flight (exact, as decimal strings). " +
          "Needs `Authorization: Bearer <ADMIN_TOKEN>`; `X-Admin-Actor` may name the operator.",
        tags: ["admin"],
        headers: z.looseObject({ "x-admin-actor": actorHeader.optional() }),
        response: { 200: statsSchema },
      },
    },
    async () => readStats(options),
  );
};
