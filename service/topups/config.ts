import { z } from "zod";

/** A whole number read from an environment string, with a message naming the variable and its range. */
function whole(name: string, { min, max, fallback, unit }: { min: number; max: number; fallback: number; unit: string }) {
  const range = `${name} must be a whole number of ${unit} from ${min} to ${max}`;
  return z
    .string()
    .trim()
    .regex(/^\d+$/, range)
    .transform(Number)
    .pipe(z.number().min(min, range).max(max, range))
    .default(fallback);
}

/** The top-up settings; the gateways' own settings live with each gateway. */
export const topUpsConfigSchema = z.object({
  PUBLIC_BASE_URL: z
    .url({ protocol: /^https?$/, error: "PUBLIC_BASE_URL must be the http(s) URL the gateways reach this service at, e.g. https://pay.fiatgas.example" })
    .transform((value) => value.replace(/\/+$/, ""))
    .optional(),
  TOPUP_MIN_FEN: whole("TOPUP_MIN_FEN", { min: 1, max: 100_000_000, fallback: 100, unit: "fen" }),
  TOPUP_MAX_FEN: whole("TOPUP_MAX_FEN", { min: 1, max: 100_000_000, fallback: 500_000, unit: "fen" }),
  // WeChat asks merchants not to close an order within 5 minutes of creating it.
  TOPUP_EXPIRY_SECONDS: whole("TOPUP_EXPIRY_SECONDS", { min: 300, max: 7_200, fallback: 900, unit: "seconds" }),
  TOPUP_RECOVERY_INTERVAL_SECONDS: whole("TOPUP_RECOVERY_INTERVAL_SECONDS", { min: 1, max: 3_600, fallback: 60, unit: "seconds" }),
  TOPUP_RECOVERY_AFTER_SECONDS: whole("TOPUP_RECOVERY_AFTER_SECONDS", { min: 0, max: 86_400, fallback: 120, unit: "seconds" }),
  TOPUP_SUBJECT: z.string().trim().min(1).max(128, "TOPUP_SUBJECT must be at most 128 characters").default("FiatGas gas top-up"),
  // A credit acknowledged to a gateway must survive a Redis crash: AOF with fsync on every write.
  REDIS_REQUIRE_DURABLE: z
    .enum(["true", "false"], { error: 'REDIS_REQUIRE_DURABLE must be "true" or "false"' })
    .default("true")
    .transform((value) => value === "true"),
});

export type TopUpsConfig = z.output<typeof topUpsConfigSchema>;
