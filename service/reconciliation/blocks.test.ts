import assert from "node:assert/strict";
import { it } from "node:test";

import { type BlockClient, blockRangeOf } from "./blocks.ts";

/** A chain whose block n has timestamps[n]; counts header reads. */
function chain(timestamps: number[]) {
  const reads = { count: 0 };
  const client = {
    getBlockNumber: async () => BigInt(timestamps.length - 1),
    getBlock: async ({ blockNumber }: { blockNumber: bigint }) => {
      reads.count++;
      return { timestamp: BigInt(timestamps[Number(blockNumber)]) };
    },
  } as unknown as BlockClient;
  return { client, reads };
}

it("finds the blocks whose timestamps are in [from, to), with equal timestamps and gaps", async () => {
  // Blocks 0..9; several share a second, and nothing was mined between 130 and 200.
  const { client } = chain([100, 100, 110, 110, 110, 120, 130, 200, 200, 210]);
  assert.deepEqual(await blockRangeOf(client, { from: 110, to: 130 }), { fromBlock: 2n, toBlock: 5n, head: 9n });
  assert.deepEqual(await blockRangeOf(client, { from: 105, to: 111 }), { fromBlock: 2n, toBlock: 4n, head: 9n });
  assert.deepEqual(await blockRangeOf(client, { from: 0, to: 100 }), { fromBlock: 0n, toBlock: -1n, head: 9n }, "before the first block: none");
  assert.deepEqual(await blockRangeOf(client, { from: 140, to: 190 }), { fromBlock: 7n, toBlock: 6n, head: 9n }, "a gap: none, and toBlock = fromBlock - 1");
  assert.deepEqual(await blockRangeOf(client, { from: 200, to: 1_000 }), { fromBlock: 7n, toBlock: 9n, head: 9n }, "up to the head while the period is open");
  assert.deepEqual(await blockRangeOf(client, { from: 211, to: 1_000 }), { fromBlock: 10n, toBlock: 9n, head: 9n }, "after the head: none yet");
});

it("reads O(log n) headers", async () => {
  const { client, reads } = chain(Array.from({ length: 1_000_000 }, (_, index) => 1_000 + index * 2));
  assert.deepEqual(await blockRangeOf(client, { from: 1_000 + 2 * 400_000, to: 1_000 + 2 * 400_010 + 1 }), { fromBlock: 400_000n, toBlock: 400_010n, head: 999_999n });
  assert.ok(reads.count <= 2 * 21, `${reads.count} header reads`);
});
