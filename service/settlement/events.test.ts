import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { type PaymasterEvent, compareStreamIds, decodeEvent, encodeEvent } from "./events.ts";

const EVENT: PaymasterEvent = {
  entryPointVersion: "0.8",
  userOpHash: `0x${"ab".repeat(32)}`,
  sender: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
  paymaster: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
  nonce: (7n << 64n) | 3n,
  success: false,
  actualGasCost: 123_456_789_012_345_678_901n,
  actualGasUsed: 130_653n,
  blockNumber: 21_000_000n,
  blockHash: `0x${"cd".repeat(32)}`,
  transactionHash: `0x${"ef".repeat(32)}`,
  logIndex: 4,
};

describe("settlement stream events", () => {
  it("round-trips an event with bigints past 2^64 exactly", () => {
    assert.deepEqual(decodeEvent(encodeEvent(EVENT)), EVENT);
  });

  it("refuses an entry with a malformed field, naming it", () => {
    const json = (changes: Record<string, unknown>) => JSON.stringify({ ...JSON.parse(encodeEvent(EVENT)), ...changes });
    assert.throws(() => decodeEvent(json({ actualGasCost: "1.5" })), /actualGasCost is malformed/);
    assert.throws(() => decodeEvent(json({ userOpHash: "0x12" })), /userOpHash is malformed/);
    assert.throws(() => decodeEvent(json({ entryPointVersion: "0.6" })), /entryPointVersion is malformed/);
    assert.throws(() => decodeEvent("not json"), SyntaxError);
  });

  it("orders stream ids by time, then sequence, numerically", () => {
    assert.equal(compareStreamIds("1700000000000-10", "1700000000000-9"), 1);
    assert.equal(compareStreamIds("999-0", "1000-0"), -1);
    assert.equal(compareStreamIds("5-5", "5-5"), 0);
  });
});
