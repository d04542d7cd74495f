// Lua scripts for the ledger. Each runs atomically in Redis, so concurrent requests can never
// reserve more than a balance holds. All amounts are integer fen, passed and stored as decimal
// strings; Lua numbers are doubles, exact below 2^53 fen, which the TypeScript side enforces.

/**
 * Reserves up to ARGV[2] fen for one (entryPoint version, nonce) slot.
 * KEYS[1] balance hash, KEYS[2] reservations hash.
 * ARGV[1] slot, ARGV[2] amount, ARGV[3] reservation JSON (no ops yet), ARGV[4] validUntil,
 * ARGV[5] max live reservations for the account.
 * A slot signed again keeps the larger amount and the later validUntil: either signature can
 * still land, and only one can, since they share a nonce.
 * Returns {1, available after} or {0, reason, available, held, live}.
 */
export const RESERVE = `
local amount = tonumber(ARGV[2])
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
    return {0, 'TOO_MANY_RESERVATIONS', balance - reserved, 0, live}
  end
  record = cjson.decode(ARGV[3])
end
local target = math.max(amount, held)
if amount > balance - reserved + held then
  return {0, 'INSUFFICIENT_BALANCE', balance - reserved + held, held, 0}
end
record.chargeFen = string.format('%.0f', target)
if tonumber(ARGV[4]) > tonumber(record.validUntil) then record.validUntil = tonumber(ARGV[4]) end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(record))
redis.call('HINCRBY', KEYS[1], 'reserved', string.format('%.0f', target - held))
return {1, balance - reserved - (target - held)}
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
