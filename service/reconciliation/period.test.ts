import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { MAX_PERIOD_SECONDS, parseInstant, periodSchema } from "./period.ts";

describe("parseInstant", () => {
  it("reads unix seconds, ISO dates (UTC midnight) and ISO times with Z or an offset", () => {
    assert.equal(parseInstant("1748736000"), 1_748_736_000);
    assert.equal(parseInstant("2025-06-01"), 1_748_736_000);
    assert.equal(parseInstant("2025-06-01T00:00:00Z"), 1_748_736_000);
    assert.equal(parseInstant("2025-06-01T00:00Z"), 1_748_736_000);
    assert.equal(parseInstant("2025-06-01T08:00:00+08:00"), 1_748_736_000, "Beijing time");
    assert.equal(parseInstant("2025-05-31T20:30:00-03:30"), 1_748_736_000);
    assert.equal(parseInstant("2024-02-29"), Date.UTC(2024, 1, 29) / 1000, "a leap day");
  });

  it("refuses dates that do not exist, fractions of a second, and anything else", () => {
    for (const text of ["2025-02-30", "2025-02-29", "2025-13-01", "2025-06-01T24:00:00Z", "2025-06-01T10:60Z", "2025-06-01T00:00:00.5Z", "2025-06-01T00:00:00", "2025-06-01T00:00:00+15:00", "-1", "1e9", "0x10", "", "yesterday", "123456789012"]) {
      assert.equal(parseInstant(text), null, text);
    }
  });
});

describe("periodSchema", () => {
  const now = 1_750_000_000;
  const schema = periodSchema(() => now);
  const issues = (input: unknown) => {
    const parsed = schema.safeParse(input);
    assert.equal(parsed.success, false, JSON.stringify(input));
    return parsed.error!.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
  };

  it("parses a valid period to unix seconds", () => {
    assert.deepEqual(schema.parse({ from: "2025-06-01", to: "1748822400" }), { from: 1_748_736_000, to: 1_748_822_400 });
  });

  it("names the bad end, and refuses empty, reversed, future and over-long periods", () => {
    assert.deepEqual(issues({ from: "June", to: "2025-06-02" }), ["from: must be an ISO 8601 date or time (2025-06-01, 2025-06-01T08:00:00Z, 2025-06-01T16:00:00+08:00) or unix seconds"]);
    assert.deepEqual(issues({ to: "2025-06-02" }), ["from: is required"]);
    assert.deepEqual(issues({ from: "2025-06-02", to: "2025-06-02" }), ["to: must be after from (the period is [from, to))"]);
    assert.deepEqual(issues({ from: "2025-06-02", to: "2025-06-01" }), ["to: must be after from (the period is [from, to))"]);
    assert.deepEqual(issues({ from: String(now), to: String(now + 10) }), ["from: must be in the past: there is nothing to reconcile yet"]);
    assert.match(issues({ from: "1740000000", to: String(1_740_000_000 + MAX_PERIOD_SECONDS + 1) })[0], /^to: must be at most 31 days after from/);
    assert.deepEqual(schema.parse({ from: "1740000000", to: String(1_740_000_000 + MAX_PERIOD_SECONDS) }).to - 1_740_000_000, MAX_PERIOD_SECONDS, "exactly 31 days is allowed");
  });
});
