// Lua scripts of the settlement worker, all on `{settlement}` keys. The lease fences writes: a
// reader that lost its lease, or whose cursor moved under it, changes nothing.

/**
 * Takes or renews the reader's lease. KEYS[1] lease. ARGV: 1 owner, 2 milliseconds.
 * Returns 1 if the caller holds it now.
 */
export const HOLD_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
`;

/** Gives the lease up if the caller holds it. KEYS[1] lease. ARGV[1] owner. */
export const DROP_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

/**
 * Sets the first cursor, if there is none. KEYS: 1 lease, 2 cursor, 3 positions, 4 events stream.
 * ARGV: 1 owner, 2 block, 3 hash, 4 timestamp.
 */
export const INIT_CURSOR = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
-- Events already in the stream (a cursor deleted by hand) must settle before anything is released.
local newest = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
local last = '0-0'
if #newest > 0 then last = newest[1][1] end
redis.call('HSET', KEYS[2], 'block', ARGV[2], 'hash', ARGV[3], 'timestamp', ARGV[4], 'lastId', last, 'epoch', '0')
redis.call('ZADD', KEYS[3], ARGV[2], cjson.encode({block = ARGV[2], hash = ARGV[3], timestamp = ARGV[4], lastId = last}))
return 1
`;

const FENCE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, 'LEASE_LOST'} end
if (redis.call('HGET', KEYS[2], 'block') or '') ~= ARGV[2] then return {0, 'CURSOR_MOVED'} end
local epoch = redis.call('HGET', KEYS[2], 'epoch') or '0'
local last = redis.call('HGET', KEYS[2], 'lastId') or '0-0'
`;

/**
 * Appends events without moving the cursor: the first chunks of a large read.
 * KEYS: 1 lease, 2 cursor, 3 events stream. ARGV: 1 owner, 2 cursor block it expects, 3.. events JSON.
 * Returns {1, last id} or {0, reason}.
 */
export const APPEND_EVENTS = `${FENCE}
for i = 3, #ARGV do last = redis.call('XADD', KEYS[3], '*', 'event', ARGV[i], 'epoch', epoch) end
redis.call('HSET', KEYS[2], 'lastId', last)
return {1, last}
`;

/**
 * Appends the last events of a read and moves the cursor past its range, in one step.
 * KEYS: 1 lease, 2 cursor, 3 events stream, 4 positions. ARGV: 1 owner, 2 cursor block it expects,
 * 3 new block, 4 its hash, 5 its timestamp, 6 positions to keep, 7.. events JSON.
 * Returns {1, last id} or {0, reason}.
 */
export const COMMIT_READ = `${FENCE}
for i = 7, #ARGV do last = redis.call('XADD', KEYS[3], '*', 'event', ARGV[i], 'epoch', epoch) end
redis.call('HSET', KEYS[2], 'block', ARGV[3], 'hash', ARGV[4], 'timestamp', ARGV[5], 'lastId', last)
redis.call('ZREMRANGEBYSCORE', KEYS[4], ARGV[3], '+inf')
redis.call('ZADD', KEYS[4], ARGV[3], cjson.encode({block = ARGV[3], hash = ARGV[4], timestamp = ARGV[5], lastId = last}))
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[6]) + 1))
return {1, last}
`;

/**
 * Rewinds the cursor to the newest block still on the chain after a reorg, and opens a new epoch:
 * events of older epochs from blocks past it are orphaned. KEYS: 1 lease, 2 cursor, 3 positions,
 * 4 rewinds. ARGV: 1 owner, 2 cursor block it expects, 3 block, 4 hash, 5 timestamp.
 * Returns {1, new epoch} or {0, reason}.
 */
export const REWIND = `${FENCE}
local newEpoch = tostring(tonumber(epoch) + 1)
redis.call('HSET', KEYS[2], 'block', ARGV[3], 'hash', ARGV[4], 'timestamp', ARGV[5], 'epoch', newEpoch)
redis.call('ZREMRANGEBYSCORE', KEYS[3], ARGV[3], '+inf')
-- Nothing is released by this block until every event appended so far (orphans are dropped) is done.
redis.call('ZADD', KEYS[3], ARGV[3], cjson.encode({block = ARGV[3], hash = ARGV[4], timestamp = ARGV[5], lastId = last}))
redis.call('HSET', KEYS[4], newEpoch, ARGV[3])
return {1, newEpoch}
`;

/**
 * Records an anomaly once per id and counts it by kind. KEYS: 1 anomalies, 2 counts.
 * ARGV: 1 `<kind>:<id>`, 2 kind, 3 JSON. Returns 1 if it is new.
 */
export const RECORD_ANOMALY = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  return 1
end
return 0
`;
