// `node scripts/sandbox/main.ts`: the gateway sandbox for a local stack, on 127.0.0.1. Prints its
// URL and the merchant environment the service needs; private keys go only to files (--merchant-env,
// --keys-file) or GET /sandbox/environment, never to stdout. Logs (JSON) go to stderr.
import { parseArgs } from "node:util";

import { z } from "zod";

import { ALIPAY_SECRET_SETTINGS } from "../../service/gateways/alipay/config.ts";
import { WECHATPAY_SECRET_SETTINGS } from "../../service/gateways/wechatpay/config.ts";
import { StartupError } from "../../service/startupError.ts";
import { startSandbox, writePrivateFile } from "./server.ts";

const USAGE = `Usage: node scripts/sandbox/main.ts [options]
  --port N                 port on 127.0.0.1 (default 8788; 0 picks a free one)
  --time-scale N           divide the gateways' notification retry waits by N (default 1: real time)
  --duplicates N           send every notification attempt as N concurrent copies (default 1)
  --redeliver-after-ack N  deliver an acknowledged notification N more times (default 0)
  --probes                 send WeChat's mis-signed SIGNTEST probe before each notification
  --keys-file PATH         keep the gateways' keys in PATH (0600), so a restart reuses them
  --merchant-env PATH      write the merchant environment, private keys included, to PATH (0600)
  -h, --help               this text`;

const SECRET_SETTINGS = new Set<string>([...ALIPAY_SECRET_SETTINGS, ...WECHATPAY_SECRET_SETTINGS]);

const wholeNumber = (flag: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `${flag} must be a whole number`)
    .transform(Number)
    .refine((value) => value >= min && value <= max, `${flag} must be from ${min} to ${max}`);

const optionsSchema = z.object({
  port: wholeNumber("--port", 0, 65535).default(8788),
  "time-scale": z
    .string()
    .regex(/^\d+(\.\d+)?$/, "--time-scale must be a number, e.g. 3600")
    .transform(Number)
    .refine((value) => value >= 1, "--time-scale must be at least 1 (it only speeds time up)")
    .default(1),
  duplicates: wholeNumber("--duplicates", 1, 20).default(1),
  "redeliver-after-ack": wholeNumber("--redeliver-after-ack", 0, 20).default(0),
  probes: z.boolean().default(false),
  "keys-file": z.string().min(1, "--keys-file needs a path").optional(),
  "merchant-env": z.string().min(1, "--merchant-env needs a path").optional(),
  help: z.boolean().default(false),
});

/** A usage problem: the message and the usage on stderr, exit status 2. */
function usageError(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

let raw: ReturnType<typeof parseArgs>["values"];
try {
  raw = parseArgs({
    options: {
      port: { type: "string" },
      "time-scale": { type: "string" },
      duplicates: { type: "string" },
      "redeliver-after-ack": { type: "string" },
      probes: { type: "boolean" },
      "keys-file": { type: "string" },
      "merchant-env": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  }).values;
} catch (error) {
  usageError(error instanceof Error ? error.message : String(error));
}
const parsed = optionsSchema.safeParse(raw);
if (!parsed.success) usageError(parsed.error.issues.map((issue) => issue.message).join("\n"));
const options = parsed.data;
if (options.help) {
  console.log(USAGE);
  process.exit(0);
}

try {
  const sandbox = await startSandbox({
    port: options.port,
    timeScale: options["time-scale"],
    duplicates: options.duplicates,
    redeliverAfterAck: options["redeliver-after-ack"],
    probes: options.probes,
    keysFile: options["keys-file"],
    logger: { level: "info", stream: process.stderr },
  });
  const environment = sandbox.environment();
  const merchantEnvFile = options["merchant-env"];
  if (merchantEnvFile !== undefined) writePrivateFile(merchantEnvFile, Object.entries(environment).map(([name, value]) => dotenvLine(name, value)).join("\n") + "\n");

  const { url } = sandbox;
  const secretHint = merchantEnvFile === undefined ? `GET ${url}/sandbox/environment, or run with --merchant-env PATH` : `in ${merchantEnvFile}`;
  console.log(`FiatGas gateway sandbox on ${url}
  cashier        ${url}/cashier/{alipay|wechatpay}/{orderId}
  control API    POST ${url}/sandbox/{channel}/{orderId}/pay, …/refund {"refundFen":"100"};
                 GET ${url}/sandbox/{channel}/{orderId}, /sandbox/notifications, /sandbox/environment
  notifications  retry waits ÷${options["time-scale"]}, ${options.duplicates} concurrent cop${options.duplicates === 1 ? "y" : "ies"}, probes ${options.probes ? "on" : "off"}; held in memory: a restart loses undelivered ones
  keys           ${options["keys-file"] === undefined ? "new for this run (--keys-file PATH keeps them)" : `kept in ${options["keys-file"]}`}

Merchant environment for the service:`);
  for (const [name, value] of Object.entries(environment)) {
    console.log(SECRET_SETTINGS.has(name) || value.includes("PRIVATE KEY") ? `${name}=<secret: ${secretHint}>` : dotenvLine(name, value));
  }

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, async () => {
      console.error(`${signal}: stopping the sandbox`);
      await sandbox.close();
      process.exit(0);
    });
  }
} catch (error) {
  if (error instanceof StartupError) {
    console.error(error.message);
    process.exit(2);
  }
  if ((error as { code?: unknown }).code === "EADDRINUSE") {
    console.error(`port ${options.port} on 127.0.0.1 is in use: pick another with --port N (0: any free port)`);
    process.exit(1);
  }
  throw error;
}

/** NAME='value' as Node's --env-file and shells read it, multi-line values included. */
function dotenvLine(name: string, value: string): string {
  // Double quotes expand \n, so only a value without backslashes may use them.
  const quote = ["'", '"', "`"].find((candidate) => !value.includes(candidate) && !(candidate === '"' && value.includes("\\")));
  if (quote === undefined) throw new Error(`${name} holds every quote character; it cannot be written as a dotenv value`);
  return `${name}=${quote}${value}${quote}`;
}
