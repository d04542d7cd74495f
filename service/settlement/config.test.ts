import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { checkSettlementConfig, settlementConfigSchema } from "./config.ts";

const schema = settlementConfigSchema.superRefine(checkSettlementConfig);
const problems = (env: Record<string, string>) => {
  const parsed = schema.safeParse(env);
  return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
};

describe("settlement settings", () => {
  it("defaults to a running worker with 12 confirmations, polling every 2 s", () => {
    assert.deepEqual(schema.parse({}), {
      SETTLEMENT_ENABLED: true,
      SETTLEMENT_CONFIRMATIONS: 12,
      SETTLEMENT_POLL_MS: 2_000,
      SETTLEMENT_BATCH: 500,
      SETTLEMENT_LOG_BLOCK_RANGE: 1_000,
      SETTLEMENT_NONCE_CHECK_SECONDS: 30,
      SETTLEMENT_CLAIM_IDLE_MS: 60_000,
      DEPOSIT_MAX_AGE_SECONDS: 60,
    });
  });

  it("parses each setting into the type the worker uses", () => {
    const config = schema.parse({ SETTLEMENT_ENABLED: "false", SETTLEMENT_CONFIRMATIONS: "0", SETTLEMENT_START_BLOCK: "21000000", SETTLEMENT_BATCH: " 50 " });
    assert.equal(config.SETTLEMENT_ENABLED, false);
    assert.equal(config.SETTLEMENT_CONFIRMATIONS, 0);
    assert.equal(config.SETTLEMENT_START_BLOCK, 21_000_000n);
    assert.equal(config.SETTLEMENT_BATCH, 50);
  });

  it("names the variable and the allowed values in every refusal", () => {
    assert.deepEqual(problems({ SETTLEMENT_ENABLED: "yes" }), ["SETTLEMENT_ENABLED: SETTLEMENT_ENABLED must be true or false"]);
    assert.deepEqual(problems({ SETTLEMENT_CONFIRMATIONS: "-1" }), ["SETTLEMENT_CONFIRMATIONS: SETTLEMENT_CONFIRMATIONS must be a whole number of blocks from 0 to 10000"]);
    assert.deepEqual(problems({ SETTLEMENT_POLL_MS: "10" }), ["SETTLEMENT_POLL_MS: SETTLEMENT_POLL_MS must be a whole number of milliseconds from 50 to 60000"]);
    assert.deepEqual(problems({ SETTLEMENT_BATCH: "1e3" }), ["SETTLEMENT_BATCH: SETTLEMENT_BATCH must be a whole number of events from 1 to 10000"]);
    assert.deepEqual(problems({ SETTLEMENT_START_BLOCK: "0" }), ["SETTLEMENT_START_BLOCK: SETTLEMENT_START_BLOCK must be a block number from 1, digits only"]);
  });

  it("refuses a deposit max age the poll interval would outlast", () => {
    assert.deepEqual(problems({ SETTLEMENT_POLL_MS: "5000", DEPOSIT_MAX_AGE_SECONDS: "5" }), [
      "DEPOSIT_MAX_AGE_SECONDS: DEPOSIT_MAX_AGE_SECONDS must be longer than SETTLEMENT_POLL_MS, or the deposit would go stale between polls",
    ]);
    assert.deepEqual(problems({ SETTLEMENT_POLL_MS: "5000", DEPOSIT_MAX_AGE_SECONDS: "6" }), []);
  });
});
