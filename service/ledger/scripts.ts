// Lua scripts for the ledger. Each runs atomically in Redis, so concurrent requests can never
// reserve more than a balance holds. All amounts are integer fen, passed and stored as decimal
// strings; Lua numbers are doubles, exact below 2^53 fen, which the TypeScript side enforces.
// Wei amounts go through the WEI helpers below, since they pass 2^53.

/**
 * Wei amounts pass 2^53, where Lua's doubles stop being exact, so scripts that add or compare wei
 * keep each amount as {high, low} = high × 10^12 + low, both exact (up to about 9 × 10^27 wei,
 * which the TypeScript side enforces). Prepended to every script that handles wei.
 */
const WEI = `
local function wei(s)
  local n = string.len(s)
  if n <= 12 then return {0, tonumber(s)} end
  return {tonumber(string.sub(s, 1, n - 12)), tonumber(string.sub(s, n - 11))}
end
local function weistr(w)
  if w[1] == 0 then return string.format('%.0f', w[2]) end
  return string.format('%.0f', w[1]) .. string.format('%012.0f', w[2])
end
local function weicmp(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] and -1 or 1 end
  if a[2] ~= b[2] then return a[2] < b[2] and -1 or 1 end
  return 0
end
local function weiadd(a, b)
  local high, low = a[1] + b[1], a[2] + b[2]
  if low >= 1e12 then return {high + 1, low - 1e12} end
  return {high, low}
end
-- a - b, floored at 0: a counter never goes negative.
local function weisub(a, b)
  if weicmp(a, b) <= 0 then return {0, 0} end
  local high, low = a[1] - b[1], a[2] - b[2]
  if low < 0 then return {high - 1, low + 1e12} end
  return {high, low}
end
`;

/** A script that evaluates one Lua expression with the wei helpers, on ARGV: for tests of the helpers. */
export const WEI_EVAL = (expression: string) => `${WEI}\nreturn ${expression}`;

/**
 * Reserves up to ARGV[2] fen for one (entryPoint version, nonce) slot, after the account's risk
 * limits, all in one atomic step.
 * KEYS: 1 balance hash, 2 reservations hash, 3 frozen hash, 4 ops this minute, 5 ops today,
 * 6 fen reserved today, 7 credits (sorted set of "<reference>:<fen>" by credit time).
 * ARGV: 1 slot, 2 amount, 3 reservation JSON (no ops yet), 4 validUntil, 5 max live reservations,
 * 6 now, 7 max ops per minute (-1: none), 8 max ops per day, 9 max fen per day, 10 cooling seconds,
 * 11 end of this minute, 12 end of today (unix seconds), 13 the op's maxWei.
 * A slot signed again keeps the larger amount, the larger maxWei and the later validUntil (either
 * signature can still land, and only one can) and is not a new operation for the counts.
 * Returns {1, available after, fen added, wei added} or
 * {0, reason, limit value, current value, retryAfter (0: none)}.
 */
export const RESERVE = `${WEI}
local amount = tonumber(ARGV[2])
local now = tonumber(ARGV[6])
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {0, 'ACCOUNT_FROZEN', 0, 0, 0}
end
local balance = tonumber(redis.call('HGET', KEYS[1], 'balance') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local existing = redis.call('HGET', KEYS[2], ARGV[1])
local held = 0
local heldWei = {0, 0}
local record
if existing then
  record = cjson.decode(existing)
  held = tonumber(record.chargeFen)
  -- Reservations made before the deposit guard carry no maxWei: nothing of theirs was claimed.
  heldWei = wei(record.maxWei or '0')
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
local newWei = wei(ARGV[13])
local addedWei = {0, 0}
if weicmp(newWei, heldWei) > 0 then
  addedWei = weisub(newWei, heldWei)
  record.maxWei = ARGV[13]
else
  record.maxWei = weistr(heldWei)
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
return {1, available - amount, added, weistr(addedWei)}
`;

/**
 * Claims, before the account's own step, what a reservation may add to the global figures: fen
 * against the global daily spending limit, and wei in flight against what the paymaster's
 * EntryPoint deposit covers minus the floor. It also indexes the reservation for the settlement
 * worker's expiry and nonce scans. Global keys cannot share an account's Cluster slot, so the two
 * steps are separate; the caller gives back what the account step does not use. Claiming first
 * means concurrent requests can never push a total past its limit (a crash in between only
 * over-counts), and indexing first means no reservation can exist that the worker cannot find.
 * KEYS: 1 global fen reserved today, 2 wei in flight for this EntryPoint, 3 fen reserved by all
 * accounts, 4 live index, 5 nonce-check index.
 * ARGV: 1 fen, 2 daily limit (-1: none), 3 end of today, 4 wei, 5 wei limit (-1: none),
 * 6 index member, 7 validUntil, 8 when to first check the nonce.
 * Returns {1} or {0, reason, limit, current}, the amounts as decimal strings.
 */
export const CLAIM_GLOBAL = `${WEI}
local amount = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
if cap >= 0 then
  local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
  if spent + amount > cap then
    return {0, 'LIMIT_GLOBAL_SPEND_PER_DAY', string.format('%.0f', cap), string.format('%.0f', spent)}
  end
end
local inFlight = wei(redis.call('GET', KEYS[2]) or '0')
local after = weiadd(inFlight, wei(ARGV[4]))
if ARGV[5] ~= '-1' and weicmp(after, wei(ARGV[5])) > 0 then
  return {0, 'LIMIT_DEPOSIT_IN_FLIGHT', ARGV[5], weistr(inFlight)}
end
if cap >= 0 then
  redis.call('INCRBY', KEYS[1], ARGV[1])
  redis.call('EXPIREAT', KEYS[1], tonumber(ARGV[3]) + 86400)
end
redis.call('SET', KEYS[2], weistr(after))
redis.call('INCRBY', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], 'GT', ARGV[7], ARGV[6])
redis.call('ZADD', KEYS[5], ARGV[8], ARGV[6])
return {1}
`;

/**
 * Gives back the part of a CLAIM_GLOBAL the account step did not use.
 * KEYS: 1 global fen reserved today, 2 wei in flight, 3 fen reserved by all accounts.
 * ARGV: 1 fen, 2 wei, 3 whether the daily limit was claimed (1 or 0).
 */
export const GIVE_BACK = `${WEI}
if ARGV[1] ~= '0' then
  if ARGV[3] == '1' then redis.call('DECRBY', KEYS[1], ARGV[1]) end
  redis.call('DECRBY', KEYS[3], ARGV[1])
end
if ARGV[2] ~= '0' then
  redis.call('SET', KEYS[2], weistr(weisub(wei(redis.call('GET', KEYS[2]) or '0'), wei(ARGV[2]))))
end
return 1
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
 * Settles one landed op: charges ARGV[3] fen, releases the rest of its reservation and records the
 * op as settled, once. The settled record is checked and written in the same step as the charge,
 * so the same event twice, or two workers at once, charge once.
 * KEYS: 1 balance hash, 2 reservations hash, 3 settled hash.
 * ARGV: 1 slot, 2 userOpHash, 3 fen to charge, 4 the event's facts as JSON.
 * Returns {1, settled JSON}, {2, settled JSON} when it was settled before, or {0, reason}:
 * NO_RESERVATION (the slot is empty) or UNKNOWN_OP (the slot holds no op with that hash).
 */
export const SETTLE = `
local done = redis.call('HGET', KEYS[3], ARGV[2])
if done then return {2, done} end
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if not existing then return {0, 'NO_RESERVATION'} end
local record = cjson.decode(existing)
local found = false
if type(record.ops) == 'table' then
  for _, op in ipairs(record.ops) do
    if op.userOpHash == ARGV[2] then found = true end
  end
end
if not found then return {0, 'UNKNOWN_OP'} end
local held = tonumber(record.chargeFen)
local charge = tonumber(ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'reserved', string.format('%.0f', -held))
redis.call('HINCRBY', KEYS[1], 'balance', string.format('%.0f', -charge))
local entry = cjson.decode(ARGV[4])
entry.slot = ARGV[1]
entry.userOpHash = ARGV[2]
entry.chargedFen = ARGV[3]
entry.heldFen = record.chargeFen
entry.reservationId = record.id
entry.inFlightWei = record.maxWei or '0'
entry.validUntil = record.validUntil
entry.createdAt = record.createdAt
local json = cjson.encode(entry)
redis.call('HSET', KEYS[3], ARGV[2], json)
return {1, json}
`;

/**
 * Releases a reservation that can no longer land, returning its fen to the available balance. It
 * leaves a note of what it released until RETURN_IN_FLIGHT has given its wei back, so a retry
 * after a crash can still do that.
 * KEYS: 1 balance hash, 2 reservations hash, 3 released hash.
 * ARGV: 1 slot, 2 release only if validUntil is before this (-1: unconditionally), 3 reason, 4 now.
 * Returns {1, note JSON}; {2, note JSON} when it was released before and the note is still there;
 * {3, validUntil} when not due; {0} when there is nothing.
 */
export const RELEASE = `
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if not existing then
  local note = redis.call('HGET', KEYS[3], ARGV[1])
  if note then return {2, note} end
  return {0}
end
local record = cjson.decode(existing)
local before = tonumber(ARGV[2])
if before >= 0 and tonumber(record.validUntil) >= before then return {3, tonumber(record.validUntil)} end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'reserved', string.format('%.0f', -tonumber(record.chargeFen)))
local note = cjson.encode({
  id = record.id, maxWei = record.maxWei or '0', chargeFen = record.chargeFen, validUntil = record.validUntil,
  createdAt = record.createdAt, reason = ARGV[3], at = tonumber(ARGV[4]),
})
redis.call('HSET', KEYS[3], ARGV[1], note)
return {1, note}
`;

/**
 * Gives back a closed (settled or released) reservation's in-flight wei and fen, exactly once per
 * reservation id, and drops it from the worker's indexes unless a newer reservation of the same
 * slot has taken its place (its validUntil is later).
 * KEYS: 1 wei in flight, 2 fen reserved by all accounts, 3 returned ids, 4 live index, 5 nonce-check index.
 * ARGV: 1 reservation id, 2 wei, 3 fen, 4 index member, 5 the reservation's validUntil, 6 now.
 * Returns 1, or 0 if this id was given back before.
 */
export const RETURN_IN_FLIGHT = `${WEI}
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then return 0 end
local now = tonumber(ARGV[6])
redis.call('ZADD', KEYS[3], now, ARGV[1])
-- Retries come within minutes; a week of ids is ample.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 604800)
redis.call('SET', KEYS[1], weistr(weisub(wei(redis.call('GET', KEYS[1]) or '0'), wei(ARGV[2]))))
local reserved = tonumber(redis.call('GET', KEYS[2]) or '0') - tonumber(ARGV[3])
if reserved < 0 then reserved = 0 end
redis.call('SET', KEYS[2], string.format('%.0f', reserved))
local score = redis.call('ZSCORE', KEYS[4], ARGV[4])
if not score or tonumber(score) <= tonumber(ARGV[5]) then
  redis.call('ZREM', KEYS[4], ARGV[4])
  redis.call('ZREM', KEYS[5], ARGV[4])
end
return 1
`;

/**
 * Drops a release note once its wei has been given back, unless a later release replaced it.
 * KEYS[1] released hash. ARGV[1] slot, ARGV[2] reservation id.
 */
export const FORGET_RELEASED = `
local note = redis.call('HGET', KEYS[1], ARGV[1])
if note and cjson.decode(note).id == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`;

/**
 * Removes an index member whose reservation is gone, unless its score moved past ARGV[2] meanwhile
 * (a new reservation of the same slot re-indexed it).
 * KEYS[1] index. ARGV[1] member, ARGV[2] the score it was seen with.
 */
export const DROP_STALE = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) return 1 end
return 0
`;
