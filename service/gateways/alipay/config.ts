// The Alipay channel's environment settings. All optional as a group: the channel is on only when
// every required one is set, and a partial set is an error naming what is missing. Keys are parsed
// here, at boot, into KeyObjects, so a bad key stops the service with a message that never shows it.
import { createPublicKey, KeyObject } from "node:crypto";

import { z } from "zod";

import type { AlipayGatewayOptions } from "./adapter.ts";
import { AlipayProtocolError, loadPrivateKey, loadPublicKey } from "./signing.ts";

/** Alipay's production v1 gateway. */
export const DEFAULT_ALIPAY_GATEWAY_URL = "https://openapi.alipay.com/gateway.do";

/** The settings that must all be set to turn the channel on. */
export const ALIPAY_REQUIRED_SETTINGS = ["ALIPAY_APP_ID", "ALIPAY_APP_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY", "ALIPAY_SELLER_ID"] as const;

/** Settings whose values must never be logged. */
export const ALIPAY_SECRET_SETTINGS = ["ALIPAY_APP_PRIVATE_KEY"] as const;

// `ALIPAY_APP_ID=` in an env template means "not set", not "an invalid app id".
const unsetIfBlank = (value: unknown) => (typeof value === "string" && value.trim() === "" ? undefined : value);

function optional<T extends z.ZodType>(schema: T) {
  return z.preprocess(unsetIfBlank, schema.optional());
}

function key<K>(name: string, load: (text: string, what: string) => K) {
  return optional(
    z.string().transform((text, context): K => {
      try {
        return load(text, name);
      } catch (error) {
        // Our loaders' messages name the setting and never include key material.
        const message = error instanceof AlipayProtocolError ? error.message : `${name} could not be read as a key`;
        context.addIssue({ code: "custom", message });
        return z.NEVER;
      }
    }),
  );
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

function isGatewayUrl(value: string): boolean {
  try {
    const url = new URL(value);
    if (url.username || url.password) return false;
    return url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname));
  } catch {
    return false;
  }
}

/** The Alipay settings' fields, keyed by environment variable; each transforms on its own. */
export const alipayConfigFields = z.object({
  ALIPAY_APP_ID: optional(z.string().trim().regex(/^\d{16}$/, "ALIPAY_APP_ID must be the app's 16-digit APPID from the Alipay open platform")),
  ALIPAY_APP_PRIVATE_KEY: key<KeyObject>("ALIPAY_APP_PRIVATE_KEY", loadPrivateKey),
  ALIPAY_PUBLIC_KEY: key<KeyObject>("ALIPAY_PUBLIC_KEY", loadPublicKey),
  ALIPAY_SELLER_ID: optional(z.string().trim().regex(/^2088\d{12}$/, "ALIPAY_SELLER_ID must be the merchant's 16-digit PID starting with 2088")),
  ALIPAY_GATEWAY_URL: optional(
    z.string().trim().refine(isGatewayUrl, "ALIPAY_GATEWAY_URL must be an https URL without credentials (http only for a loopback sandbox)"),
  ).transform((url) => url ?? DEFAULT_ALIPAY_GATEWAY_URL),
});

/**
 * The cross-field checks: a partial set names what is missing, and the app's own public key is refused
 * as Alipay's. A schema that spreads `alipayConfigFields.shape` must add this too, with ALIPAY_REFINE_OPTIONS.
 */
export function checkAlipayConfig(config: z.output<typeof alipayConfigFields>, context: z.RefinementCtx): void {
  const set = ALIPAY_REQUIRED_SETTINGS.filter((name) => config[name] !== undefined);
  if (set.length > 0 && set.length < ALIPAY_REQUIRED_SETTINGS.length) {
    for (const name of ALIPAY_REQUIRED_SETTINGS.filter((name) => config[name] === undefined)) {
      context.addIssue({
        code: "custom",
        path: [name],
        message: `${name} is required when the Alipay channel is configured (${set.join(", ")} ${set.length === 1 ? "is" : "are"} set); set all of ${ALIPAY_REQUIRED_SETTINGS.join(", ")}, or none to turn Alipay off`,
      });
    }
  }
  // The commonest mix-up: pasting the app's own public key where Alipay's belongs.
  const { ALIPAY_APP_PRIVATE_KEY: privateKey, ALIPAY_PUBLIC_KEY: publicKey } = config;
  if (privateKey instanceof KeyObject && publicKey instanceof KeyObject && createPublicKey(privateKey).equals(publicKey)) {
    context.addIssue({
      code: "custom",
      path: ["ALIPAY_PUBLIC_KEY"],
      message: "ALIPAY_PUBLIC_KEY is the public key of ALIPAY_APP_PRIVATE_KEY; it must be Alipay's public key (支付宝公钥) from the open platform, not the app's",
    });
  }
}

/** Run the checks even when some field is bad: a value that failed to parse still counts as set, so nothing is reported twice. */
export const ALIPAY_REFINE_OPTIONS = { when: () => true };

/** The Alipay settings with their cross-field checks; `.safeExtend()` keeps the checks, `.shape` does not. */
export const alipayConfigSchema = alipayConfigFields.superRefine(checkAlipayConfig, ALIPAY_REFINE_OPTIONS);

export type AlipayConfig = z.output<typeof alipayConfigSchema>;

/** Whether the parsed settings turn the Alipay channel on. */
export function alipayEnabled(config: AlipayConfig): boolean {
  return ALIPAY_REQUIRED_SETTINGS.every((name) => config[name] !== undefined);
}

/** The adapter's options from the parsed settings, or undefined when the channel is off. */
export function alipayGatewayOptions(
  config: AlipayConfig,
  runtime: { notifyUrl: string; fetch?: typeof globalThis.fetch; timeoutMs?: number },
): AlipayGatewayOptions | undefined {
  if (!alipayEnabled(config)) return undefined;
  return {
    appId: config.ALIPAY_APP_ID!,
    appPrivateKey: config.ALIPAY_APP_PRIVATE_KEY!,
    alipayPublicKey: config.ALIPAY_PUBLIC_KEY!,
    sellerId: config.ALIPAY_SELLER_ID!,
    gatewayUrl: config.ALIPAY_GATEWAY_URL,
    ...runtime,
  };
}
