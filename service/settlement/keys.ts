// The settlement worker's keys. All carry the hash tag `{settlement}`, so in Redis Cluster they
// share one slot and one script can move the cursor and append the events it read atomically.

/** Key names of the settlement worker. */
export function settlementKeys(prefix: string) {
  const base = `${prefix}:{settlement}`;
  return {
    /** STRING: the instance id holding the log reader's lease (SET NX PX). */
    lease: `${base}:lease`,
    /** HASH {block, hash, timestamp, lastId, epoch}: the last block read, and the stream id of the last event appended. */
    cursor: `${base}:cursor`,
    /** ZSET block → JSON {block, hash, timestamp, lastId}: recent cursor positions, to find a reorg's common ancestor and how far events are settled. */
    positions: `${base}:positions`,
    /** STREAM of UserOperationEvents for our paymasters, fields `event` (JSON) and `epoch`. */
    events: `${base}:events`,
    /** HASH epoch → block: after a reorg the cursor was rewound to that block; events of older epochs past it are orphaned. */
    rewinds: `${base}:rewinds`,
    /** HASH {block, timestamp}: the newest block whose events are all settled, which releases are judged by. */
    through: `${base}:through`,
    /** HASH `<kind>:<id>` → JSON: events and situations reconciliation must look at. */
    anomalies: `${base}:anomalies`,
    /** HASH kind → count of anomalies recorded. */
    anomalyCounts: `${base}:anomaly-counts`,
  };
}

export type SettlementKeys = ReturnType<typeof settlementKeys>;

/** The stream's consumer group: every instance's consumers share it, so each event goes to one of them. */
export const CONSUMER_GROUP = "settlers";
