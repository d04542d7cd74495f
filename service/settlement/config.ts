// The settlement worker's and the deposit guard's environment settings, parsed once at boot. Each
// field transforms on its own, so the service's schema can spread `.shape` into its own; the one
// cross-field check is exported for the service's superRefine.
import { z } from "zod";

/** A whole-number setting given as a string of digits, checked against [min, max]. */
function integer(name: string, { min, max, unit, fallback }: { min: number; max: number; unit: string; fallback: string }) {
  const message = `${name} must be a whole number of ${unit} from ${min} to ${max}`;
  return z
    .string({ error: message })
    .trim()
    .regex(/^\d+$/, { error: message })
    .transform(Number)
    .refine((value) => value >= min && value <= max, { error: message })
    .prefault(fallback);
}

/** The settlement settings, keyed by environment variable; each is documented in the README's configuration reference. */
export const settlementConfigSchema = z.object({
  SETTLEMENT_ENABLED: z
    .enum(["true", "false"], { error: "SETTLEMENT_ENABLED must be true or false" })
    .transform((value) => value === "true")
    .prefault("true"),
  SETTLEMENT_CONFIRMATIONS: integer("SETTLEMENT_CONFIRMATIONS", { min: 0, max: 10_000, unit: "blocks", fallback: "12" }),
  SETTLEMENT_POLL_MS: integer("SETTLEMENT_POLL_MS", { min: 50, max: 60_000, unit: "milliseconds", fallback: "2000" }),
  SETTLEMENT_BATCH: integer("SETTLEMENT_BATCH", { min: 1, max: 10_000, unit: "events", fallback: "500" }),
  SETTLEMENT_LOG_BLOCK_RANGE: integer("SETTLEMENT_LOG_BLOCK_RANGE", { min: 1, max: 100_000, unit: "blocks", fallback: "1000" }),
  SETTLEMENT_START_BLOCK: z
    .string()
    .trim()
    .regex(/^[1-9]\d{0,15}$/, { error: "SETTLEMENT_START_BLOCK must be a block number from 1, digits only" })
    .transform(BigInt)
    .optional(),
  SETTLEMENT_NONCE_CHECK_SECONDS: integer("SETTLEMENT_NONCE_CHECK_SECONDS", { min: 1, max: 3_600, unit: "seconds", fallback: "30" }),
  SETTLEMENT_CLAIM_IDLE_MS: integer("SETTLEMENT_CLAIM_IDLE_MS", { min: 100, max: 3_600_000, unit: "milliseconds", fallback: "60000" }),
  DEPOSIT_MAX_AGE_SECONDS: integer("DEPOSIT_MAX_AGE_SECONDS", { min: 1, max: 3_600, unit: "seconds", fallback: "60" }),
});

/** The parsed settings. */
export type SettlementConfig = z.output<typeof settlementConfigSchema>;

/** The cross-field check: the deposit is re-read once per poll, so it must not expire between polls. */
export function checkSettlementConfig(config: Pick<SettlementConfig, "DEPOSIT_MAX_AGE_SECONDS" | "SETTLEMENT_POLL_MS">, context: z.RefinementCtx): void {
  if (config.DEPOSIT_MAX_AGE_SECONDS * 1000 <= config.SETTLEMENT_POLL_MS) {
    context.addIssue({ code: "custom", path: ["DEPOSIT_MAX_AGE_SECONDS"], message: "DEPOSIT_MAX_AGE_SECONDS must be longer than SETTLEMENT_POLL_MS, or the deposit would go stale between polls" });
  }
}
