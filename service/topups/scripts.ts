// Lua scripts for top-up orders. Each one changes an order, the account's balance and its journal
// in one atomic step (they share the account's hash tag), so a payment is credited exactly once
// and a refund debits exactly once however many notifications, retries and workers race.
// Amounts are integer fen as decimal strings; Lua numbers are exact below 2^53.

/**
 * Credits a paid order: pending → paid, or closed → paid when the gateway confirmed the payment.
 * KEYS: 1 order hash, 2 balance hash, 3 credits (cooling index), 4 journal stream.
 * ARGV: 1 channel, 2 amount fen, 3 currency, 4 gateway trade number, 5 paid at, 6 now,
 * 7 "1" if a closed order may become paid, 8 order id, 9 oldest credit the cooling index keeps.
 * Returns {outcome, state before}: credited, unchanged, mismatch (amount or currency differ),
 * wrongChannel, or {unknown}.
 */
export const APPLY_PAYMENT = `
local order = redis.call('HMGET', KEYS[1], 'state', 'amountFen', 'currency', 'channel')
local state = order[1]
if not state then return {'unknown'} end
if order[4] ~= ARGV[1] then return {'wrongChannel', state} end
if order[2] ~= ARGV[2] or order[3] ~= ARGV[3] then return {'mismatch', state} end
if state == 'pending' or (state == 'closed' and ARGV[7] == '1') then
  redis.call('HSET', KEYS[1], 'state', 'paid', 'tradeNo', ARGV[4], 'paidAt', ARGV[5], 'creditedAt', ARGV[6])
  redis.call('HINCRBY', KEYS[2], 'balance', ARGV[2])
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[8] .. ':' .. ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[9])
  redis.call('XADD', KEYS[4], '*', 'type', 'credit', 'orderId', ARGV[8], 'fen', ARGV[2], 'at', ARGV[6])
  return {'credited', state}
end
return {'unchanged', state}
`;

/**
 * Closes an unpaid order: pending → closed. KEYS[1] order hash. ARGV[1] now.
 * Returns {outcome, state before}: closed, unchanged, or {unknown}.
 */
export const CLOSE_ORDER = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'unknown'} end
if state ~= 'pending' then return {'unchanged', state} end
redis.call('HSET', KEYS[1], 'state', 'closed', 'closedAt', ARGV[1])
return {'closed', state}
`;

/**
 * Starts a refund of a paid order: debits the available balance at once and holds the fen as a
 * pending refund of the order. Checked against reservations in the same step, so a refund and
 * a sponsorship can never both spend the same fen.
 * KEYS: 1 order hash, 2 balance hash, 3 the order's refunds hash, 4 journal stream.
 * ARGV: 1 refund id, 2 fen, 3 now, 4 order id, 5 refund record JSON.
 * Returns {started}, {notRefundable, state}, {exceedsOrder, refundable fen},
 * {insufficient, available fen} or {duplicate}.
 */
export const START_REFUND = `
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return {'duplicate'} end
local order = redis.call('HMGET', KEYS[1], 'state', 'amountFen', 'refundedFen', 'pendingRefundFen')
if order[1] ~= 'paid' and order[1] ~= 'partially_refunded' then return {'notRefundable', order[1] or 'unknown'} end
local fen = tonumber(ARGV[2])
local refundable = tonumber(order[2]) - tonumber(order[3] or '0') - tonumber(order[4] or '0')
if fen > refundable then return {'exceedsOrder', string.format('%.0f', refundable)} end
local balance = tonumber(redis.call('HGET', KEYS[2], 'balance') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[2], 'reserved') or '0')
if fen > balance - reserved then return {'insufficient', string.format('%.0f', balance - reserved)} end
redis.call('HINCRBY', KEYS[2], 'balance', string.format('%.0f', -fen))
redis.call('HINCRBY', KEYS[1], 'pendingRefundFen', ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
redis.call('XADD', KEYS[4], '*', 'type', 'refund', 'orderId', ARGV[4], 'refundId', ARGV[1], 'fen', ARGV[2], 'at', ARGV[3])
return {'started'}
`;

/**
 * Applies a refund's final outcome, once. A refund we started completes (succeeded) or gives the
 * fen back to the balance (failed). A successful refund we never started was made at the gateway
 * (merchant console, dispute): it debits the balance, which may go negative.
 * KEYS: 1 order hash, 2 balance hash, 3 the order's refunds hash, 4 journal stream.
 * ARGV: 1 refund id, 2 outcome (succeeded | failed), 3 fen (gateway refunds), 4 now, 5 order id,
 * 6 reason.
 * Returns {finished, outcome}, {gatewayRefund, balance after}, {already, state}, {ignored},
 * {notPaid, state} or {unknown}.
 */
export const FINISH_REFUND = `
local order = redis.call('HMGET', KEYS[1], 'state', 'amountFen', 'refundedFen')
if not order[1] then return {'unknown'} end
local amount = tonumber(order[2])
local refunded = tonumber(order[3] or '0')
local function settle(fen)
  refunded = refunded + fen
  local state = 'partially_refunded'
  if refunded >= amount then state = 'refunded' end
  redis.call('HSET', KEYS[1], 'refundedFen', string.format('%.0f', refunded), 'state', state)
end
local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing then
  local refund = cjson.decode(existing)
  if refund.state ~= 'pending' then return {'already', refund.state} end
  local fen = tonumber(refund.fen)
  redis.call('HINCRBY', KEYS[1], 'pendingRefundFen', string.format('%.0f', -fen))
  if ARGV[2] == 'succeeded' then
    settle(fen)
  else
    redis.call('HINCRBY', KEYS[2], 'balance', refund.fen)
    redis.call('XADD', KEYS[4], '*', 'type', 'refundReversal', 'orderId', ARGV[5], 'refundId', ARGV[1], 'fen', refund.fen, 'at', ARGV[4])
  end
  refund.state = ARGV[2]
  refund.finishedAt = tonumber(ARGV[4])
  refund.reason = ARGV[6]
  redis.call('HSET', KEYS[3], ARGV[1], cjson.encode(refund))
  return {'finished', ARGV[2]}
end
if ARGV[2] ~= 'succeeded' then return {'ignored'} end
if order[1] ~= 'paid' and order[1] ~= 'partially_refunded' and order[1] ~= 'refunded' then return {'notPaid', order[1]} end
settle(tonumber(ARGV[3]))
local balance = redis.call('HINCRBY', KEYS[2], 'balance', '-' .. ARGV[3])
local record = cjson.encode({refundId = ARGV[1], fen = ARGV[3], origin = 'gateway', state = 'succeeded', createdAt = tonumber(ARGV[4]), finishedAt = tonumber(ARGV[4]), reason = ARGV[6]})
redis.call('HSET', KEYS[3], ARGV[1], record)
redis.call('XADD', KEYS[4], '*', 'type', 'gatewayRefund', 'orderId', ARGV[5], 'refundId', ARGV[1], 'fen', ARGV[3], 'at', ARGV[4])
return {'gatewayRefund', balance}
`;
