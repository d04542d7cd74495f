// One configuration schema, parsed once from the environment into a frozen object. Every
// setting is documented in the README's configuration reference; a bad value names its variable.
import { createHash } from "node:crypto";

import { type Address, type Hex, isHex } from "viem";
import { z } from "zod";

import { ALIPAY_REFINE_OPTIONS, ALIPAY_SECRET_SETTINGS, alipayConfigFields, checkAlipayConfig } from "./gateways/alipay/config.ts";
import { WECHATPAY_SECRET_SETTINGS, checkWechatPayConfig, wechatPayConfigShape } from "./gateways/wechatpay/config.ts";
import { pricingConfigSchema } from "./pricing/config.ts";
import { address } from "./rpc/schemas.ts";
import { sessionsConfigSchema } from "./sessions/config.ts";
import { checkSettlementConfig, settlementConfigSchema } from "./settlement/config.ts";
import { StartupError } from "./startupError.ts";
import { topUpsConfigSchema } from "./topups/config.ts";

// Digits only: z.coerce would read "" as 0 (PORT= would bind a random port) and accept "0x1f" or "1e3".
const integer = (name: string, { min, max }: { min: number; max: number }) =>
  z
    .string({ error: (issue) => (issue.input === undefined ? `${name} is required` : `${name} must be an integer`) })
    .trim()
    .regex(/^-?\d+$/, `${name} must be an integer`)
    .transform(Number)
    .pipe(z.number().min(min, `${name} must be at least ${min}`).max(max, `${name} must be at most ${max}`));

/** The secp256k1 group order: a private key must lie in [1, n). */
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const url = (name: string, protocols: string[]) =>
  z.string({ error: `${name} is required` }).refine((value) => {
    try {
      return protocols.includes(new URL(value).protocol);
    } catch {
      return false;
    }
  }, `${name} must be a ${protocols.map((p) => p.replace(":", "")).join(" or ")} URL`);

/** A small default sponsor icon (RFC 2397 data URI of a 96×96 SVG), shown by wallets. */
const DEFAULT_ICON =
  "data:image/svg+xml;base64," +
  Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96"><rect width="96" height="96" rx="20" fill="#1d6f42"/><text x="48" y="62" font-family="sans-serif" font-size="44" font-weight="700" text-anchor="middle" fill="#fff">¥</text></svg>',
  ).toString("base64");

/** The core service settings; each domain adds its own schema next to its code. */
export const coreConfigSchema = z.object({
  HOST: z.string().default("127.0.0.1"),
  PORT: integer("PORT", { min: 0, max: 65_535 }).default(8787),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], { error: "LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent" }).default("info"),
  RPC_URL: url("RPC_URL", ["http:", "https:"]),
  CHAIN_ID: integer("CHAIN_ID", { min: 1, max: Number.MAX_SAFE_INTEGER }),
  REDIS_URL: url("REDIS_URL", ["redis:", "rediss:"]),
  REDIS_KEY_PREFIX: z.string().regex(/^[a-z0-9-]{1,32}$/, "REDIS_KEY_PREFIX must be 1-32 of a-z, 0-9 and -").default("fg"),
  PAYMASTER_V07_ADDRESS: address.optional(),
  PAYMASTER_V08_ADDRESS: address.optional(),
  SIGNER_PRIVATE_KEY: z
    .string({ error: "SIGNER_PRIVATE_KEY is required" })
    .refine((value) => isHex(value) && value.length === 66, "SIGNER_PRIVATE_KEY must be a 32-byte 0x-prefixed hex key")
    // Checked here, not by the signer at boot: its error would print the key as a decimal number.
    .refine((value) => !isHex(value) || value.length !== 66 || (BigInt(value) > 0n && BigInt(value) < SECP256K1_N), "SIGNER_PRIVATE_KEY is not a valid secp256k1 private key (it must be from 1 to n-1)")
    .transform((value) => value as Hex),
  // No default: a service must never run with a token anyone can read in the source. Kept only as
  // its SHA-256 digest, which the admin routes compare in constant time, so logging the config shows no token.
  ADMIN_TOKEN: z
    .string({ error: "ADMIN_TOKEN is required: the bearer token of the /admin API, at least 32 characters (openssl rand -hex 32)" })
    .min(32, "ADMIN_TOKEN must be at least 32 characters (openssl rand -hex 32)")
    .regex(/^[\x21-\x7e]+$/, "ADMIN_TOKEN must be printable ASCII without spaces (openssl rand -hex 32)")
    .transform((value) => createHash("sha256").update(value).digest()),
  PAYMASTER_VERIFICATION_GAS_LIMIT: integer("PAYMASTER_VERIFICATION_GAS_LIMIT", { min: 20_000, max: 500_000 }).default(30_000),
  MAX_LIVE_RESERVATIONS_PER_SENDER: integer("MAX_LIVE_RESERVATIONS_PER_SENDER", { min: 1, max: 1_000 }).default(4),
  RPC_MAX_BATCH: integer("RPC_MAX_BATCH", { min: 1, max: 100 }).default(20),
  RATE_LIMIT_PER_MINUTE: integer("RATE_LIMIT_PER_MINUTE", { min: 1, max: 1_000_000 }).default(600),
  LOAD_SHED_UTILIZATION_PERCENT: integer("LOAD_SHED_UTILIZATION_PERCENT", { min: 0, max: 100 }).default(98),
  SPONSOR_NAME: z.string().min(1).max(64).default("FiatGas"),
  SPONSOR_ICON: z
    .string()
    .regex(/^data:image\/(png|svg\+xml|webp|jpeg);base64,[A-Za-z0-9+/=]+$/, "SPONSOR_ICON must be a base64 data URI of an image (RFC 2397)")
    .default(DEFAULT_ICON),
});

export type CoreConfig = z.output<typeof coreConfigSchema>;

/** A configuration that failed validation; the message lists every bad variable. */
export class ConfigError extends StartupError {
  override name = "ConfigError";
  constructor(problems: string[]) {
    super("invalid configuration", problems);
  }
}

/** Parses `env` with `schema` once; throws ConfigError naming every bad variable. */
export function parseConfig<Schema extends z.ZodType>(schema: Schema, env: Record<string, string | undefined>): Readonly<z.output<Schema>> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = issue.path.join(".");
        return issue.message.startsWith(name) ? issue.message : `${name}: ${issue.message}`;
      }),
    );
  }
  return Object.freeze(parsed.data);
}

/** The paymasters the service signs for, by EntryPoint version; at least one is required. */
export function configuredPaymasters(config: CoreConfig): Partial<Record<"0.7" | "0.8", Address>> {
  return {
    ...(config.PAYMASTER_V07_ADDRESS ? { "0.7": config.PAYMASTER_V07_ADDRESS } : {}),
    ...(config.PAYMASTER_V08_ADDRESS ? { "0.8": config.PAYMASTER_V08_ADDRESS } : {}),
  };
}

/** Names of settings whose values must never be logged. */
export const SECRET_SETTINGS = ["SIGNER_PRIVATE_KEY", "SESSION_SECRET", "ADMIN_TOKEN", ...ALIPAY_SECRET_SETTINGS, ...WECHATPAY_SECRET_SETTINGS] as const;

/** Only the WECHATPAY_* settings: its group check counts what is set. */
function wechatPaySettings(config: Record<string, unknown>) {
  return Object.fromEntries(Object.keys(wechatPayConfigShape).map((name) => [name, config[name]]));
}

/**
 * The whole service's settings: core, pricing and sessions. Pricing's cross-field checks live in
 * its superRefine, which `.safeExtend()` keeps; then the core's own cross-field check.
 */
export const serviceConfigSchema = pricingConfigSchema
  .safeExtend(coreConfigSchema.shape)
  .safeExtend(sessionsConfigSchema.shape)
  .safeExtend(settlementConfigSchema.shape)
  .superRefine(checkSettlementConfig, { when: (payload) => payload.issues.length === 0 })
  .safeExtend(topUpsConfigSchema.shape)
  .safeExtend(alipayConfigFields.shape)
  .safeExtend(wechatPayConfigShape)
  .superRefine(checkAlipayConfig, ALIPAY_REFINE_OPTIONS)
  .superRefine((config, context) => checkWechatPayConfig(wechatPaySettings(config), context as z.RefinementCtx<Record<string, unknown>>), { when: () => true })
  .superRefine((config, context) => {
    if (config.TOPUP_MIN_FEN > config.TOPUP_MAX_FEN) context.addIssue({ code: "custom", path: ["TOPUP_MIN_FEN"], message: "TOPUP_MIN_FEN must not exceed TOPUP_MAX_FEN" });
    const gatewayConfigured = config.ALIPAY_APP_ID !== undefined || config.WECHATPAY_MCHID !== undefined;
    if (gatewayConfigured && !config.PUBLIC_BASE_URL) {
      context.addIssue({ code: "custom", path: ["PUBLIC_BASE_URL"], message: "PUBLIC_BASE_URL is required when a payment gateway is configured: the gateways send their notifications to <PUBLIC_BASE_URL>/webhooks/<channel>" });
    }
    if (gatewayConfigured && config.FIAT_CURRENCY !== "CNY") {
      context.addIssue({ code: "custom", path: ["FIAT_CURRENCY"], message: "FIAT_CURRENCY must be CNY when Alipay or WeChat Pay is configured: their orders are in CNY" });
    }
  })
  .superRefine(
    (config, context) => {
      if (!config.PAYMASTER_V07_ADDRESS && !config.PAYMASTER_V08_ADDRESS) {
        context.addIssue({ code: "custom", path: ["PAYMASTER_V07_ADDRESS"], message: "PAYMASTER_V07_ADDRESS and/or PAYMASTER_V08_ADDRESS is required: the service needs a paymaster to sign for" });
      }
    },
    // Run even when other settings are bad, so a missing paymaster is named with the other missing settings.
    { when: (payload) => !payload.issues.some((issue) => issue.path?.[0] === "PAYMASTER_V07_ADDRESS" || issue.path?.[0] === "PAYMASTER_V08_ADDRESS") },
  );

export type ServiceConfig = z.output<typeof serviceConfigSchema>;

/** Reads the service configuration from `env` (process.env by default); throws ConfigError. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Readonly<ServiceConfig> {
  return parseConfig(serviceConfigSchema, env);
}
