// `npm start`'s flags, parsed once into a frozen object; a bad flag names itself and shows the usage.
import path from "node:path";
import { parseArgs } from "node:util";

import { z } from "zod";

const root = path.resolve(import.meta.dirname, "../..");

/** The components that listen, and their default loopback ports. */
export const DEFAULT_PORTS = { chain: 8545, bundler: 4337, service: 8787, sandbox: 8788, redis: 6390 } as const;
export type Component = keyof typeof DEFAULT_PORTS;

export const USAGE = `Usage: npm start [-- options]   (or node scripts/stack/start.ts [options])

Starts the local stack on 127.0.0.1: Hardhat's node with the EntryPoints, factories, paymasters and
price feed; redis-server; the gateway sandbox; the Alto bundler; the service. Every start is clean:
a new chain, an empty Redis and new keys. Ctrl-C stops everything.

  --dir PATH             where stack.json, Redis's data and the logs go (default .local;
                         or FIATGAS_STACK_DIR)
  --chain-port N         Hardhat's node (default ${DEFAULT_PORTS.chain})
  --bundler-port N       Alto (default ${DEFAULT_PORTS.bundler})
  --service-port N       the service (default ${DEFAULT_PORTS.service})
  --sandbox-port N       the gateway sandbox (default ${DEFAULT_PORTS.sandbox})
  --redis-port N         redis-server (default ${DEFAULT_PORTS.redis})
                         (0 for any port: a free one is picked)
  --block-time SECONDS   mine a block every SECONDS on top of automine, so settlement's
                         confirmations advance (default 1; 0: blocks only for transactions)
  --siwe-domain HOST     the host[:port] of your DApp, which sign-in messages must name
                         (default localhost:5173)
  -h, --help             this text

Production runs the service alone: node service/main.ts with its environment (see the README).`;

const port = (flag: string) =>
  z
    .string()
    .regex(/^\d+$/, `${flag} must be a port number from 0 to 65535`)
    .transform(Number)
    .refine((value) => value <= 65_535, `${flag} must be a port number from 0 to 65535`);

const optionsSchema = z.object({
  dir: z.string().min(1, "--dir needs a path").default(path.join(root, ".local")),
  "chain-port": port("--chain-port").default(DEFAULT_PORTS.chain),
  "bundler-port": port("--bundler-port").default(DEFAULT_PORTS.bundler),
  "service-port": port("--service-port").default(DEFAULT_PORTS.service),
  "sandbox-port": port("--sandbox-port").default(DEFAULT_PORTS.sandbox),
  "redis-port": port("--redis-port").default(DEFAULT_PORTS.redis),
  "block-time": z
    .string()
    .regex(/^\d+$/, "--block-time must be a whole number of seconds")
    .transform(Number)
    .refine((value) => value <= 3_600, "--block-time must be at most 3600 seconds")
    .default(1),
  "siwe-domain": z
    .string()
    .regex(/^[a-zA-Z0-9.-]+(?::\d{1,5})?$/, "--siwe-domain must be a host[:port] such as localhost:5173, with no scheme or path")
    .default("localhost:5173"),
  help: z.boolean().default(false),
});

export type StackOptions = {
  dir: string;
  ports: Record<Component, number>;
  blockTimeSeconds: number;
  siweDomain: string;
  help: boolean;
};

/** A problem with how the stack was asked to start: the CLI prints it and exits with code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * Settings that mean "run against external infrastructure": with any of them set, the caller wants
 * production mode (`node service/main.ts`), not a local stack that would silently ignore them.
 */
export const PRODUCTION_SETTINGS = ["RPC_URL", "REDIS_URL", "SIGNER_PRIVATE_KEY", "PAYMASTER_V07_ADDRESS", "PAYMASTER_V08_ADDRESS", "ALIPAY_APP_ID", "WECHATPAY_MCHID"] as const;

/** The message for a caller who set production settings, or null when none is set. */
export function productionModeProblem(env: NodeJS.ProcessEnv = process.env): string | null {
  const set = PRODUCTION_SETTINGS.filter((name) => env[name]);
  if (set.length === 0) return null;
  return (
    `${set.join(", ")} ${set.length === 1 ? "is" : "are"} set, which is production mode: the service alone against your infrastructure, ` +
    "starting nothing else. Run it with node service/main.ts (see the README). npm start runs the local stack only: unset them to use it."
  );
}

/** Parses `argv` (without node and the script) and FIATGAS_STACK_DIR from the environment. */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): Readonly<StackOptions> {
  let values: ReturnType<typeof parseArgs>["values"];
  try {
    values = parseArgs({
      args: argv,
      options: {
        dir: { type: "string" },
        "chain-port": { type: "string" },
        "bundler-port": { type: "string" },
        "service-port": { type: "string" },
        "sandbox-port": { type: "string" },
        "redis-port": { type: "string" },
        "block-time": { type: "string" },
        "siwe-domain": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const parsed = optionsSchema.safeParse({ dir: env.FIATGAS_STACK_DIR || undefined, ...values });
  if (!parsed.success) throw new UsageError(parsed.error.issues.map((issue) => issue.message).join("\n"));
  const options = parsed.data;
  return Object.freeze({
    dir: path.resolve(options.dir),
    ports: {
      chain: options["chain-port"],
      bundler: options["bundler-port"],
      service: options["service-port"],
      sandbox: options["sandbox-port"],
      redis: options["redis-port"],
    },
    blockTimeSeconds: options["block-time"],
    siweDomain: options["siwe-domain"],
    help: options.help,
  });
}
