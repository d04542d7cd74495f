import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";

import { parseDecimalPrice, pricingConfigSchema } from "./config.ts";

const FEED = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

/** The issues of a rejected env, as "SETTING: message" lines. */
function rejects(env: Record<string, string>): string[] {
  const result = pricingConfigSchema.safeParse(env);
  assert.equal(result.success, false, `expected ${JSON.stringify(env)} to be rejected`);
  return result.error!.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
}

describe("pricingConfigSchema", () => {
  it("fills every default around a feed address", () => {
    assert.deepEqual(pricingConfigSchema.parse({ PRICE_FEED_ADDRESS: FEED.toLowerCase() }), {
      PRICE_SOURCE: "chainlink",
      PRICE_FEED_ADDRESS: FEED,
      PRICE_MAX_AGE_SECONDS: 3900,
      FIAT_CURRENCY: "CNY",
      FIAT_DECIMALS: 2,
      MARKUP_BPS: 0,
      FIXED_FEE_FEN: 0n,
      FEE_PERCENTILES: [10, 50, 90],
      FEE_HISTORY_BLOCKS: 10,
      BASE_FEE_HEADROOM_BPS: 12_657,
      MIN_PRIORITY_FEE_WEI: 1_000_000n,
      FEE_MAX_AGE_SECONDS: 30,
      PRICING_POLL_INTERVAL_MS: 1000,
    });
  });

  it("parses a static price exactly and every number into its type", () => {
    const config = pricingConfigSchema.parse({
      PRICE_SOURCE: "static",
      STATIC_PRICE: " 25000.50 ",
      FIAT_CURRENCY: "USD",
      MARKUP_BPS: "1000",
      FIXED_FEE_FEN: "5",
      FEE_PERCENTILES: "25,25,99",
      MIN_PRIORITY_FEE_WEI: "123456789012345678901234567890",
    });
    assert.deepEqual(config.STATIC_PRICE, { answer: 2_500_050n, decimals: 2 });
    assert.equal(config.PRICE_FEED_ADDRESS, undefined);
    assert.equal(config.MARKUP_BPS, 1000);
    assert.equal(config.FIXED_FEE_FEN, 5n);
    assert.deepEqual(config.FEE_PERCENTILES, [25, 25, 99]);
    assert.equal(config.MIN_PRIORITY_FEE_WEI, 123456789012345678901234567890n);
  });

  it("reads decimal prices without floats", () => {
    assert.deepEqual(parseDecimalPrice("25000"), { answer: 25_000n, decimals: 0 });
    assert.deepEqual(parseDecimalPrice("0.000000000000000001"), { answer: 1n, decimals: 18 });
    // 0.1 + 0.2 style loss would show here: the float 2.675 is 2.67499999...
    assert.deepEqual(parseDecimalPrice("2.675"), { answer: 2675n, decimals: 3 });
    assert.deepEqual(parseDecimalPrice("9007199254740993.01"), { answer: 900719925474099301n, decimals: 2 });
  });

  it("needs a feed address for chainlink and a price for static", () => {
    assert.deepEqual(rejects({}), ["PRICE_FEED_ADDRESS: PRICE_FEED_ADDRESS is required when PRICE_SOURCE is chainlink"]);
    assert.deepEqual(rejects({ PRICE_SOURCE: "static" }), ["STATIC_PRICE: STATIC_PRICE is required when PRICE_SOURCE is static"]);
  });

  it("refuses a setting of the other source, which would otherwise be silently ignored", () => {
    assert.deepEqual(rejects({ PRICE_FEED_ADDRESS: FEED, STATIC_PRICE: "25000" }), [
      "STATIC_PRICE: STATIC_PRICE is set but PRICE_SOURCE is chainlink: set PRICE_SOURCE=static to use it, or remove it",
    ]);
    assert.deepEqual(rejects({ PRICE_SOURCE: "static", STATIC_PRICE: "25000", PRICE_FEED_ADDRESS: FEED }), [
      "PRICE_FEED_ADDRESS: PRICE_FEED_ADDRESS is set but PRICE_SOURCE is static: set PRICE_SOURCE=chainlink to use it, or remove it",
    ]);
  });

  it("refuses an unknown source and malformed or mis-checksummed addresses", () => {
    assert.deepEqual(rejects({ PRICE_SOURCE: "oracle" }), ['PRICE_SOURCE: PRICE_SOURCE must be "chainlink" (an on-chain feed) or "static" (STATIC_PRICE)']);
    const addressMessage = "PRICE_FEED_ADDRESS: PRICE_FEED_ADDRESS must be a 0x-prefixed 20-byte address with a valid checksum (or all lower case)";
    for (const address of ["0x1234", "5FbDB2315678afecb367f032d93F642f64180aa3", FEED.replace("F", "f"), ""]) {
      assert.deepEqual(rejects({ PRICE_FEED_ADDRESS: address }), [addressMessage], address);
    }
  });

  it("refuses static prices that are not plain positive decimals", () => {
    const format =
      "STATIC_PRICE: STATIC_PRICE must be a plain decimal number of fiat units per ETH, such as 25000.50 (no sign, commas or exponent; at most 18 decimals)";
    for (const price of ["25,000.50", "2.5e4", "-25000", "+25000", ".5", "25000.", "¥25000", "0x61a8", "1.0000000000000000001", ""]) {
      assert.deepEqual(rejects({ PRICE_SOURCE: "static", STATIC_PRICE: price }), [format], price);
    }
    assert.deepEqual(rejects({ PRICE_SOURCE: "static", STATIC_PRICE: "0.00" }), ["STATIC_PRICE: STATIC_PRICE must be greater than zero"]);
  });

  it("refuses numbers out of range or not whole, naming the unit", () => {
    const base = { PRICE_FEED_ADDRESS: FEED };
    const cases: [Record<string, string>, string][] = [
      [{ MARKUP_BPS: "-100" }, "MARKUP_BPS: MARKUP_BPS must be a whole number of basis points (1000 = 10%) from 0 to 100000"],
      [{ MARKUP_BPS: "10.5" }, "MARKUP_BPS: MARKUP_BPS must be a whole number of basis points (1000 = 10%) from 0 to 100000"],
      [{ MARKUP_BPS: "100001" }, "MARKUP_BPS: MARKUP_BPS must be a whole number of basis points (1000 = 10%) from 0 to 100000"],
      [{ FIXED_FEE_FEN: "0.5" }, "FIXED_FEE_FEN: FIXED_FEE_FEN must be a whole number of minor units (fen) (digits only, no decimal point)"],
      [{ MIN_PRIORITY_FEE_WEI: "1 gwei" }, "MIN_PRIORITY_FEE_WEI: MIN_PRIORITY_FEE_WEI must be a whole number of wei (digits only, no decimal point)"],
      [{ PRICE_MAX_AGE_SECONDS: "0" }, "PRICE_MAX_AGE_SECONDS: PRICE_MAX_AGE_SECONDS must be a whole number of seconds from 1 to 604800"],
      [{ FEE_HISTORY_BLOCKS: "1025" }, "FEE_HISTORY_BLOCKS: FEE_HISTORY_BLOCKS must be a whole number of blocks from 1 to 1024"],
      [{ BASE_FEE_HEADROOM_BPS: "9999" }, "BASE_FEE_HEADROOM_BPS: BASE_FEE_HEADROOM_BPS must be a whole number of basis points of the base fee (10000 = none) from 10000 to 100000"],
      [{ FIAT_DECIMALS: "7" }, "FIAT_DECIMALS: FIAT_DECIMALS must be a whole number of decimal places of the currency's minor unit from 0 to 6"],
      [{ FIAT_CURRENCY: "cny" }, "FIAT_CURRENCY: FIAT_CURRENCY must be a three-letter ISO 4217 code in capitals, such as CNY"],
      [{ FIAT_CURRENCY: "RMB¥" }, "FIAT_CURRENCY: FIAT_CURRENCY must be a three-letter ISO 4217 code in capitals, such as CNY"],
    ];
    for (const [env, message] of cases) assert.deepEqual(rejects({ ...base, ...env }), [message], JSON.stringify(env));
  });

  it("needs three ascending percentiles up to 100", () => {
    const message =
      "FEE_PERCENTILES: FEE_PERCENTILES must be three whole percentiles from 0 to 100 in ascending order, for slow, standard and fast (e.g. 10,50,90)";
    for (const percentiles of ["50,10,90", "10,50", "10,50,90,99", "10,50,101", "10.5,50,90", "10, 50, 90"]) {
      assert.deepEqual(rejects({ PRICE_FEED_ADDRESS: FEED, FEE_PERCENTILES: percentiles }), [message], percentiles);
    }
  });

  it("refuses a fee max age that the poll interval would outlast", () => {
    assert.deepEqual(rejects({ PRICE_FEED_ADDRESS: FEED, FEE_MAX_AGE_SECONDS: "2", PRICING_POLL_INTERVAL_MS: "2000" }), [
      "FEE_MAX_AGE_SECONDS: FEE_MAX_AGE_SECONDS must be longer than PRICING_POLL_INTERVAL_MS, or fees would expire between polls",
    ]);
    assert.equal(pricingConfigSchema.parse({ PRICE_FEED_ADDRESS: FEED, FEE_MAX_AGE_SECONDS: "2", PRICING_POLL_INTERVAL_MS: "1999" }).FEE_MAX_AGE_SECONDS, 2);
  });

  it("keeps its cross-field checks when merged into a larger schema with safeExtend", () => {
    const merged = pricingConfigSchema.safeExtend({});
    assert.equal(merged.safeParse({}).success, false);
  });

  it("is documented setting by setting, with the defaults the schema applies, in the main README", () => {
    const readme = readFileSync(path.join(import.meta.dirname, "../../README.md"), "utf8");
    const pricingKeys = new Set(Object.keys(pricingConfigSchema.shape));
    const rows = [...readme.matchAll(/^\| `([A-Z_]+)` \| (`[^`]*`|\(none\)) \|/gm)]
      .map(([, name, fallback]) => ({ name, fallback }))
      .filter((row) => pricingKeys.has(row.name));
    assert.deepEqual(rows.map((row) => row.name), Object.keys(pricingConfigSchema.shape));
    // Parsing the documented defaults explicitly must give what parsing nothing gives.
    const documented = Object.fromEntries(rows.filter((row) => row.fallback !== "(none)").map((row) => [row.name, row.fallback.slice(1, -1)]));
    assert.deepEqual(pricingConfigSchema.parse({ ...documented, PRICE_FEED_ADDRESS: FEED }), pricingConfigSchema.parse({ PRICE_FEED_ADDRESS: FEED }));
    assert.deepEqual(Object.keys(documented).sort(), Object.keys(pricingConfigSchema.parse({ PRICE_FEED_ADDRESS: FEED })).filter((key) => key !== "PRICE_FEED_ADDRESS").sort());
  });
});
