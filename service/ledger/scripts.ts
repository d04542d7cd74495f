// Lua scripts for the ledger. Each runs atomically in Redis, so concurrent requests can never
// reserve more than a balance holds. All amounts are integer fen, passed and stored as decimal
// strings; Lua numbers are doubles, exact below 2^53 fen, which the TypeScript side enforces.

/**
 * Reserves up to ARGV[2] fen for one (entryPoint version, nonce) slot, after the account's risk
 * limits, all in one atomic step.
 * KEYS: 1 balance hash, 2 reservations hash, 3 frozen hash, 4 ops this minute, 5 ops today,
 * 6 fen reserved today, 7 credits (sorted set of "<reference>:<fen>" by credit time).
 * ARGV: 1 slot, 2 amount, 3 reservation JSON (no ops yet), 4 validUntil, 5 max live reservations,
 * 6 now, 7 max ops per minute (-1: none), 8 max ops per day, 9 max fen per day, 10 cooling seconds,
 * 11 end of this minute, 12 end of today (unix seconds).
 * A slot signed again keeps the larger amount and the later validUntil (either signature can still
 * land, and only one can) and is not a new operation for the counts.
 * Returns {1, available after, fen added} or {0, reason, limit value, current value, retryAfter (0: none)}.
 */
export const RESERVE = `
local amount = tonumber(ARGV[2])
local now = tonumber(ARGV[6])
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {0, 'ACCOUNT_FROZEN', 0, 0, 0}
end
local balance = tonumber(redis.call('HGET', KEYS[1], 'balance') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local existing = redis.call('HGET', KEYS[2], ARGV[1])
local held = 0
local record
if existing then
  record = cjson.decode(existing)
  held = tonumber(record.chargeFen)
else
  local live = redis.call('HLEN', KEYS[2])
  if live >= tonumber(ARGV[5]) then
    return {0, 'TOO_MANY_RESERVATIONS', tonumber(ARGV[5]), live, 0}
  end
  local perMinute = tonumber(ARGV[7])
  local minuteOps = tonumber(redis.call('GET', KEYS[4]) or '0')
  if perMinute >= 0 and minuteOps + 1 > perMinute then
    return {0, 'LIMIT_OPS_PER_MINUTE', perMinute, minuteOps, tonumber(ARGV[11])}
  end
  local perDay = tonumber(ARGV[8])
  local dayOps = tonumber(redis.call('GET', KEYS[5]) or '0')
  if perDay >= 0 and dayOps + 1 > perDay then
    return {0, 'LIMIT_OPS_PER_DAY', perDay, dayOps, tonumber(ARGV[12])}
  end
  record = cjson.decode(ARGV[3])
end
local target = math.max(amount, held)
local added = target - held
local spendCap = tonumber(ARGV[9])
local spentToday = tonumber(redis.call('GET', KEYS[6]) or '0')
if spendCap >= 0 and added > 0 and spentToday + added > spendCap then
  return {0, 'LIMIT_ACCOUNT_SPEND_PER_DAY', spendCap, spentToday, tonumber(ARGV[12])}
end
local available = balance - reserved + held
if amount > available then
  return {0, 'INSUFFICIENT_BALANCE', amount, available, 0}
end
local cooling = tonumber(ARGV[10])
if cooling > 0 then
  -- Credits younger than the cooling period cannot be spent yet; find when enough have matured.
  local young = redis.call('ZRANGEBYSCORE', KEYS[7], '(' .. (now - cooling), '+inf', 'WITHSCORES')
  local coolingFen = 0
  for i = 1, #young, 2 do coolingFen = coolingFen + tonumber(string.match(young[i], ':(%d+)$')) end
  local short = amount - (available - coolingFen)
  if short > 0 then
    local retryAfter = 0
    for i = 1, #young, 2 do
      short = short - tonumber(string.match(young[i], ':(%d+)$'))
      if short <= 0 then retryAfter = tonumber(young[i + 1]) + cooling break end
    end
    return {0, 'TOPUP_COOLING', cooling, available - coolingFen, retryAfter}
  end
end
record.chargeFen = string.format('%.0f', target)
if tonumber(ARGV[4]) > tonumber(record.validUntil) then record.validUntil = tonumber(ARGV[4]) end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(record))
redis.call('HINCRBY', KEYS[1], 'reserved', string.format('%.0f', added))
if not existing then
  redis.call('INCR', KEYS[4])
  redis.call('EXPIREAT', KEYS[4], tonumber(ARGV[11]) + 60)
  redis.call('INCR', KEYS[5])
  redis.call('EXPIREAT', KEYS[5], tonumber(ARGV[12]) + 86400)
end
if added > 0 then
  redis.call('INCRBY', KEYS[6], string.format('%.0f', added))
  redis.call('EXPIREAT', KEYS[6], tonumber(ARGV[12]) + 86400)
end
return {1, available - amount, added}
`;

/**
 * Claims fen against the global daily spending limit, before the account's own step; the caller
 * gives back what the account step does not use. Global keys cannot share an account's Cluster
 * slot, so the two steps are separate, and the claim-first order means concurrent requests can
 * never push the total past the limit (a crash in between only over-counts).
 * KEYS[1] global fen reserved today. ARGV[1] fen, ARGV[2] limit (-1: none), ARGV[3] end of today.
 * Returns {1} or {0, limit, current}.
 */
export const CLAIM_GLOBAL_SPEND = `
local amount = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if cap >= 0 and spent + amount > cap then return {0, cap, spent} end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIREAT', KEYS[1], tonumber(ARGV[3]) + 86400)
return {1}
`;

/**
 * Records a signed op (its userOpHash and locked rate) on a live reservation.
 * KEYS[1] reservations hash. ARGV[1] slot, ARGV[2] op JSON. Returns 1, or 0 if the slot is gone.
 */
export const ATTACH_OP = `
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if not existing then return 0 end
local record = cjson.decode(existing)
local ops = record.ops
if type(ops) ~= 'table' then ops = {} end
ops[#ops + 1] = cjson.decode(ARGV[2])
record.ops = ops
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(record))
return 1
`;

/**
 * Drops a reservation and returns its fen to the available balance.
 * KEYS[1] balance hash, KEYS[2] reservations hash. ARGV[1] slot. Returns the fen released.
 */
export const RELEASE = `
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if not existing then return 0 end
local held = tonumber(cjson.decode(existing).chargeFen)
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'reserved', string.format('%.0f', -held))
return held
`;
