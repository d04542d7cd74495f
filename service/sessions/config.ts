import { type KeyObject, createSecretKey } from "node:crypto";

import { type Address, getAddress, isAddress } from "viem";
import { z } from "zod";

/** Fewest secret bytes: HMAC-SHA256 gains nothing from more than its 32-byte output, and must not have less. */
export const MIN_SECRET_BYTES = 32;

/** A whole number of seconds between `min` and `max`, read from an environment string. */
function seconds(name: string, { min, max, fallback }: { min: number; max: number; fallback: number }) {
  const range = `${name} must be a whole number of seconds from ${min} to ${max}`;
  return z.coerce.number({ error: range }).int(range).min(min, range).max(max, range).default(fallback);
}

/**
 * The sessions module's environment settings, parsed once at boot. Each field transforms on its
 * own (no object-level transform), so the app's config schema can spread `.shape` into its own.
 */
export const sessionsConfigSchema = z.object({
  // Hex, not base64: a hex string is also valid base64, so accepting both would make the byte count ambiguous.
  // A KeyObject, not a Buffer: logging or serialising the config then shows no key material.
  SESSION_SECRET: z
    .string({ error: `SESSION_SECRET is required: ${MIN_SECRET_BYTES}+ random bytes as hex (openssl rand -hex 32)` })
    .regex(/^(?:[0-9a-fA-F]{2})+$/, "SESSION_SECRET must be hex digits, an even number of them, with no 0x (openssl rand -hex 32)")
    .refine(
      (hex) => hex.length >= MIN_SECRET_BYTES * 2,
      `SESSION_SECRET must be at least ${MIN_SECRET_BYTES} bytes (${MIN_SECRET_BYTES * 2} hex digits)`,
    )
    .transform((hex): KeyObject => createSecretKey(Buffer.from(hex, "hex"))),
  SESSION_TTL_SECONDS: seconds("SESSION_TTL_SECONDS", { min: 60, max: 86_400, fallback: 900 }),
  SIWE_DOMAIN: z
    .string({ error: "SIWE_DOMAIN is required: the site's host[:port] that wallets show, e.g. app.fiatgas.example" })
    .regex(/^[a-zA-Z0-9.-]+(?::\d{1,5})?$/, "SIWE_DOMAIN must be a host[:port] such as app.fiatgas.example, with no scheme or path"),
  SIWE_URI: z.url({ error: "SIWE_URI must be an absolute URI such as https://app.fiatgas.example/login" }).optional(),
  SIWE_NONCE_TTL_SECONDS: seconds("SIWE_NONCE_TTL_SECONDS", { min: 30, max: 3_600, fallback: 300 }),
  SIWE_ACCOUNT_FACTORIES: z
    .string()
    .default("")
    .transform((list, context): Address[] => {
      const entries = list
        .split(",")
        .map((entry) => entry.trim())
        .filter((entry) => entry !== "");
      const bad = entries.filter((entry) => !isAddress(entry, { strict: false }));
      if (bad.length > 0) {
        context.addIssue({
          code: "custom",
          message: `SIWE_ACCOUNT_FACTORIES must be comma-separated 0x addresses; not an address: ${bad.join(", ")}`,
        });
        return z.NEVER;
      }
      return [...new Set(entries.map((entry) => getAddress(entry)))];
    }),
});

/** The parsed settings: SESSION_SECRET is a KeyObject, the factories checksummed. */
export type SessionsConfig = z.output<typeof sessionsConfigSchema>;
