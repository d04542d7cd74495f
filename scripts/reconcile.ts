// `npm run reconcile -- --from <time> --to <time> [--json]`: the reconciliation report of
// GET /admin/reconciliation, made from the service's own configuration (the same environment,
// read by loadConfig), without a running service. Exit codes: 0 clean, 1 mismatches, 2 bad
// flags or configuration, 3 the report could not be made (Redis or the node did not answer).
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { createPublicClient, http } from "viem";

import { configuredPaymasters, loadConfig } from "../service/config.ts";
import { ServiceError, hasCode } from "../service/errors.ts";
import { createGateways } from "../service/gateways/index.ts";
import { createLedger } from "../service/ledger/ledger.ts";
import { INSTANT_FORMS, MAX_PERIOD_SECONDS, periodSchema } from "../service/reconciliation/period.ts";
import { createReconciliation } from "../service/reconciliation/reconciliation.ts";
import { reportText } from "../service/reconciliation/report.ts";
import { createKeys, createRedis } from "../service/redis.ts";
import { StartupError } from "../service/startupError.ts";
import { createOrderBook } from "../service/topups/orders.ts";

/** Where the CLI writes: the report to `out`; warnings and errors to `err`. */
export type Io = { out: (text: string) => void; err: (text: string) => void };

/** Exit codes. */
export const EXIT = { clean: 0, mismatches: 1, usage: 2, failed: 3 } as const;

const USAGE = [
  "Usage: npm run reconcile -- --from <time> --to <time> [--json]",
  "",
  "Reconciles [from, to): the gateways against the ledger (orders created in the period), the",
  "ledger against our paymasters' UserOperationEvents, and the EntryPoint deposit against them.",
  "Lists every mismatch with its cause. The same report as GET /admin/reconciliation.",
  "",
  "Options (flag, or the environment variable in brackets; the flag wins):",
  `  --from <time>  [FROM]  start, inclusive: ${INSTANT_FORMS}`,
  `  --to <time>    [TO]    end, exclusive; at most ${MAX_PERIOD_SECONDS / 86_400} days after --from`,
  "  --json                 print the report as JSON (money as decimal strings of fen and wei)",
  "  -h, --help             show this help",
  "",
  "Environment: the service's own settings (RPC_URL, REDIS_URL, REDIS_KEY_PREFIX, PAYMASTER_V07_ADDRESS,",
  "PAYMASTER_V08_ADDRESS, ALIPAY_*, WECHATPAY_*, …), read and validated exactly as the service reads them.",
  "",
  "Exit codes: 0 clean; 1 mismatches found; 2 bad flags or configuration; 3 Redis, the node or",
  "something else failed and no report was made.",
  "",
  "Example:",
  "  npm run reconcile -- --from 2025-06-01T00:00:00+08:00 --to 2025-07-01T00:00:00+08:00",
].join("\n");

/** Runs the CLI on `argv` (without the node and script paths) and returns the exit code. */
export async function main(argv: string[], env: Record<string, string | undefined>, io: Io): Promise<number> {
  let flags: { from?: string; to?: string; json?: boolean; help?: boolean };
  try {
    flags = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: { from: { type: "string" }, to: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    }).values;
  } catch (error) {
    // The argument itself is not echoed: a secret pasted in the wrong place must not be printed.
    const code = (error as { code?: string }).code;
    io.err(`error: ${code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL" ? "takes no positional arguments; give --from and --to" : (error as Error).message.split(". ")[0]} (see --help)`);
    return EXIT.usage;
  }
  if (flags.help) {
    io.out(USAGE);
    return EXIT.clean;
  }
  const empty = (value: string | undefined) => (value === "" ? undefined : value);
  const raw = { from: flags.from ?? empty(env.FROM), to: flags.to ?? empty(env.TO) };
  const source = { from: flags.from !== undefined ? "--from" : "FROM", to: flags.to !== undefined ? "--to" : "TO" };
  const period = periodSchema().safeParse(raw);
  if (!period.success) {
    const problems = period.error.issues.map((issue) => {
      const name = String(issue.path[0]) as "from" | "to";
      return raw[name] === undefined ? `--${name} is required (or set ${name.toUpperCase()})` : `${source[name]} ${issue.message}`;
    });
    io.err(`error: ${[...new Set(problems)].join("; ")} (see --help)`);
    return EXIT.usage;
  }

  let config;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (!(error instanceof StartupError)) throw error;
    io.err(`error: the service's ${error.message}`);
    return EXIT.usage;
  }

  const redis = createRedis(config.REDIS_URL, { connectionName: "fiatgas-reconcile" });
  // Failures surface as command errors; the connection's own events would repeat them.
  redis.on("error", () => {});
  try {
    await redis.connect().catch((error: unknown) => {
      throw new ServiceError("DEPENDENCY_UNAVAILABLE", "Redis at REDIS_URL does not answer", { cause: error });
    });
    const keys = createKeys(config.REDIS_KEY_PREFIX);
    const reconciliation = createReconciliation({
      redis,
      keys,
      prefix: config.REDIS_KEY_PREFIX,
      ledger: createLedger({ redis, keys, maxLiveReservations: config.MAX_LIVE_RESERVATIONS_PER_SENDER }),
      orders: createOrderBook({ redis, keys }),
      gateways: createGateways(config),
      // The URL may carry an API key: viem's short messages, which are all this prints, never show it.
      publicClient: createPublicClient({ transport: http(config.RPC_URL, { retryCount: 1, timeout: 10_000 }) }),
      paymasters: configuredPaymasters(config),
      logBlockRange: config.SETTLEMENT_LOG_BLOCK_RANGE,
      currency: config.FIAT_CURRENCY,
      logger: { warn: (fields, message) => io.err(`warning: ${message} ${JSON.stringify(fields)}`) },
    });
    const report = await reconciliation.report(period.data);
    io.out(flags.json ? JSON.stringify(report, null, 2) : reportText(report, { decimals: config.FIAT_DECIMALS }));
    return report.clean ? EXIT.clean : EXIT.mismatches;
  } catch (error) {
    // Too many orders for one report: a usage problem, fixed by a shorter period.
    if (hasCode(error, "INVALID_PARAMS")) {
      io.err(`error: ${error.message}`);
      return EXIT.usage;
    }
    if (error instanceof ServiceError) {
      io.err(`error: ${error.message}`);
      return EXIT.failed;
    }
    // A bug, not an outage: keep the stack.
    io.err(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return EXIT.failed;
  } finally {
    redis.disconnect();
  }
}

// Run only as a script, not when a test imports main().
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2), process.env, {
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
  });
}
