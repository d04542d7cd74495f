// Which blocks a period covers: those whose timestamps lie in [from, to). Block timestamps never
// decrease, so a binary search over block numbers finds each end in O(log head) header reads.
import type { PublicClient } from "viem";

export type BlockClient = Pick<PublicClient, "getBlock" | "getBlockNumber">;

/** The period's blocks: fromBlock..toBlock inclusive (toBlock = fromBlock − 1 when it has none), and the head they were judged at. */
export type BlockRange = { fromBlock: bigint; toBlock: bigint; head: bigint };

/** Finds the blocks of [from, to) (unix seconds) on the chain as it stands now. */
export async function blockRangeOf(client: BlockClient, { from, to }: { from: number; to: number }): Promise<BlockRange> {
  const head = await client.getBlockNumber({ cacheTime: 0 });
  const timestamps = new Map<bigint, bigint>();
  const timestampOf = async (number: bigint) => {
    let timestamp = timestamps.get(number);
    if (timestamp === undefined) {
      timestamp = (await client.getBlock({ blockNumber: number })).timestamp;
      timestamps.set(number, timestamp);
    }
    return timestamp;
  };
  /** The first block at or after `seconds`, or head + 1 when there is none yet. */
  const firstAtOrAfter = async (seconds: number): Promise<bigint> => {
    const target = BigInt(seconds);
    if ((await timestampOf(head)) < target) return head + 1n;
    let low = 0n;
    let high = head;
    while (low < high) {
      const middle = (low + high) / 2n;
      if ((await timestampOf(middle)) >= target) high = middle;
      else low = middle + 1n;
    }
    return low;
  };
  const fromBlock = await firstAtOrAfter(from);
  const toBlock = (await firstAtOrAfter(to)) - 1n;
  return { fromBlock, toBlock: toBlock < fromBlock ? fromBlock - 1n : toBlock, head };
}
