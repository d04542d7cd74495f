// The WeChat Pay channel's settings. The channel is optional: it is on only when every required
// WECHATPAY_* variable is set, and a partial set is an error naming what is missing. Keys are
// parsed here, at boot, into KeyObjects; no error message ever contains key material.
import { type KeyObject } from "node:crypto";

import { z } from "zod";

import { WECHATPAY_API_URL, type WechatPayGatewayOptions } from "./adapter.ts";
import { KeyLoadError, type PlatformKeys, apiV3KeyFrom, loadPrivateKey, loadPublicKey } from "./signing.ts";

/** The settings without which the channel cannot run; WECHATPAY_API_URL has a default. */
export const REQUIRED_WECHATPAY_SETTINGS = [
  "WECHATPAY_MCHID",
  "WECHATPAY_APPID",
  "WECHATPAY_MERCHANT_SERIAL",
  "WECHATPAY_MERCHANT_PRIVATE_KEY",
  "WECHATPAY_APIV3_KEY",
  "WECHATPAY_PLATFORM_KEYS",
] as const;

/** Names of WeChat Pay settings whose values must never be logged. */
export const WECHATPAY_SECRET_SETTINGS = ["WECHATPAY_MERCHANT_PRIVATE_KEY", "WECHATPAY_APIV3_KEY"] as const;

const PUB_KEY_ID = /^PUB_KEY_ID_[0-9A-Za-z]{1,64}$/;
const CERT_SERIAL = /^[0-9A-Fa-f]{8,40}$/;

// .env templates often carry `WECHATPAY_MCHID=`; an empty value counts as unset, not as a bad value.
const unsetWhenBlank = (value: unknown) => (typeof value === "string" && value.trim() === "" ? undefined : value);

function setting<T extends z.ZodType>(schema: T) {
  return z.preprocess(unsetWhenBlank, schema.optional());
}

// Env files rarely hold real newlines; a PEM written with literal \n escapes is read the same.
const pemText = (value: string) => (value.includes("\n") ? value : value.replaceAll("\\n", "\n")).trim();

const platformKeysMessage =
  'WECHATPAY_PLATFORM_KEYS must be a JSON object of {"PUB_KEY_ID_…": "<public key PEM>", "<platform certificate serial (hex)>": "<certificate or public key PEM>"}';

/** The WECHATPAY_* settings' fields; a schema that spreads them must also run checkWechatPayConfig. */
export const wechatPayConfigShape = {
    WECHATPAY_MCHID: setting(z.string().trim().regex(/^\d{1,32}$/, "WECHATPAY_MCHID must be the merchant id: digits only, e.g. 1900000109")),
    WECHATPAY_APPID: setting(
      z.string().trim().regex(/^wx[0-9A-Za-z]{16}$/, "WECHATPAY_APPID must be the AppID bound to the merchant: wx followed by 16 letters or digits"),
    ),
    WECHATPAY_MERCHANT_SERIAL: setting(
      z
        .string()
        .trim()
        .regex(CERT_SERIAL, "WECHATPAY_MERCHANT_SERIAL must be the merchant API certificate's serial number: 8-40 hex digits")
        .transform((serial) => serial.toUpperCase()),
    ),
    WECHATPAY_MERCHANT_PRIVATE_KEY: setting(
      z.string().transform((value, context): KeyObject => {
        try {
          return loadPrivateKey(pemText(value));
        } catch (error) {
          context.addIssue({ code: "custom", message: `WECHATPAY_MERCHANT_PRIVATE_KEY ${error instanceof KeyLoadError ? error.message : "does not load"}` });
          return z.NEVER;
        }
      }),
    ),
    // A KeyObject, not a string: logging or serialising the config then shows no key.
    WECHATPAY_APIV3_KEY: setting(
      z
        .string()
        .regex(/^[\x21-\x7e]{32}$/, "WECHATPAY_APIV3_KEY must be the 32-character APIv3 key set in the merchant platform (printable ASCII, no spaces)")
        .transform((value) => apiV3KeyFrom(value)),
    ),
    WECHATPAY_PLATFORM_KEYS: setting(z.string().transform(parsePlatformKeys)),
    WECHATPAY_API_URL: setting(
      z
        .string()
        .trim()
        .refine((value) => {
          try {
            const url = new URL(value);
            return (url.protocol === "https:" || url.protocol === "http:") && !url.search && !url.hash;
          } catch {
            return false;
          }
        }, "WECHATPAY_API_URL must be an http(s) URL without a query string, e.g. https://api.mch.weixin.qq.com")
        .transform((value) => value.replace(/\/+$/, "")),
    ),
};

// Unknown values: a setting that failed its own parse is still present, raw.
type ParsedSettings = Readonly<Partial<Record<keyof typeof wechatPayConfigShape, unknown>>>;

/**
 * The cross-field checks: all required settings or none, and the merchant's own serial never among
 * the gateway's keys. A setting that failed its own parse is not reported again as missing.
 */
export function checkWechatPayConfig(config: ParsedSettings, context: z.RefinementCtx<ParsedSettings>): void {
  const set = Object.entries(config).filter(([, value]) => value !== undefined).map(([name]) => name);
  if (set.length === 0) return;
  const missing = REQUIRED_WECHATPAY_SETTINGS.filter((name) => config[name] === undefined);
  for (const name of missing) {
    context.addIssue({ code: "custom", path: [name], message: `${name} is required to enable WeChat Pay (set: ${set.join(", ")}); unset every WECHATPAY_* variable to turn the channel off` });
  }
  const serial = config.WECHATPAY_MERCHANT_SERIAL;
  if (typeof serial === "string" && config.WECHATPAY_PLATFORM_KEYS instanceof Map && config.WECHATPAY_PLATFORM_KEYS.has(serial)) {
    context.addIssue({ code: "custom", path: ["WECHATPAY_PLATFORM_KEYS"], message: "WECHATPAY_PLATFORM_KEYS must not hold the merchant's own certificate serial (WECHATPAY_MERCHANT_SERIAL): it would trust our key as the gateway's" });
  }
}

/** The WECHATPAY_* settings, keyed by environment variable, with their cross-field checks. */
export const wechatPayConfigSchema = z
  .object(wechatPayConfigShape)
  // Name missing settings alongside bad ones, not only once everything else parses.
  .superRefine(checkWechatPayConfig, { when: () => true });

export type WechatPayConfig = z.output<typeof wechatPayConfigSchema>;

function parsePlatformKeys(value: string, context: z.RefinementCtx): PlatformKeys {
  let entries: unknown;
  try {
    entries = JSON.parse(value);
  } catch {
    // JSON.parse's message quotes the input; say nothing about it.
    context.addIssue({ code: "custom", message: `${platformKeysMessage}; it is not valid JSON` });
    return z.NEVER;
  }
  if (typeof entries !== "object" || entries === null || Array.isArray(entries) || Object.keys(entries).length === 0) {
    context.addIssue({ code: "custom", message: `${platformKeysMessage}, with at least one key` });
    return z.NEVER;
  }
  const keys = new Map<string, KeyObject>();
  for (const [id, pem] of Object.entries(entries)) {
    const problem = platformKeyProblem(id, pem, keys);
    if (problem) context.addIssue({ code: "custom", message: `WECHATPAY_PLATFORM_KEYS ${problem}` });
  }
  return keys;
}

/** Loads one entry into `keys`; returns what is wrong with it, naming only its id. */
function platformKeyProblem(id: string, pem: unknown, keys: Map<string, KeyObject>): string | undefined {
  const isPublicKeyId = PUB_KEY_ID.test(id);
  if (!isPublicKeyId && !CERT_SERIAL.test(id)) return `key ${JSON.stringify(id.slice(0, 80))} must be a PUB_KEY_ID_… id or a platform certificate serial (8-40 hex digits)`;
  if (typeof pem !== "string") return `${id} must map to a PEM string`;
  try {
    const loaded = loadPublicKey(pemText(pem));
    const serial = isPublicKeyId ? id : id.toUpperCase();
    if (isPublicKeyId && loaded.certificateSerial) return `${id} must map to the WeChat Pay public key (-----BEGIN PUBLIC KEY-----), not a certificate`;
    if (loaded.certificateSerial && loaded.certificateSerial !== serial) return `${id} maps to a certificate whose serial is ${loaded.certificateSerial}`;
    if (keys.has(serial)) return `${id} appears twice`;
    keys.set(serial, loaded.key);
    return undefined;
  } catch (error) {
    return `${id} ${error instanceof KeyLoadError ? error.message : "does not load"}`;
  }
}

/** Whether the WeChat Pay channel is configured (the schema already refused a partial set). */
export function wechatPayEnabled(config: WechatPayConfig): boolean {
  return REQUIRED_WECHATPAY_SETTINGS.every((name) => config[name] !== undefined);
}

/** The adapter's options from the parsed settings, or undefined when the channel is off. */
export function wechatPayGatewayOptions(
  config: WechatPayConfig,
  { notifyUrl, fetch, timeoutMs }: { notifyUrl: string; fetch?: typeof globalThis.fetch; timeoutMs?: number },
): WechatPayGatewayOptions | undefined {
  if (!wechatPayEnabled(config)) return undefined;
  return {
    mchid: config.WECHATPAY_MCHID!,
    appid: config.WECHATPAY_APPID!,
    merchantSerial: config.WECHATPAY_MERCHANT_SERIAL!,
    merchantPrivateKey: config.WECHATPAY_MERCHANT_PRIVATE_KEY!,
    apiV3Key: config.WECHATPAY_APIV3_KEY!,
    platformKeys: config.WECHATPAY_PLATFORM_KEYS!,
    apiUrl: config.WECHATPAY_API_URL ?? WECHATPAY_API_URL,
    notifyUrl,
    ...(fetch ? { fetch } : {}),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  };
}
