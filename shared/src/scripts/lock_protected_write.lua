-- The fencing demo's protected store: a compare-and-set on the fencing token.
-- KEYS[1]  the resource's fencing counter (the lock's `:fence` key; same hash tag)
-- KEYS[2]  the protected record (hash: `value`, `fencing_token`)
-- ARGV[1]  the writer's fencing token
-- ARGV[2]  the value (JSON text)
-- Returns  {1, fencing_token, record_ttl_ms} when stored,
--          {0, highest_seen, 0} when the token is older than the highest one seen (stale),
--          {2, fence_counter, 0} when the lock never issued it (0, or above the counter).
--
-- The record's TTL is the counter's at the write: the record is only meaningful next to the
-- counter it was checked against (a token above a gone counter reads as never issued), and
-- no key lives forever. Tokens are < 2^53, exact as Lua numbers.
local token = tonumber(ARGV[1])
local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
if token < 1 or token > fence then
  idem_record = false
  return {2, fence, 0}
end
local highest = tonumber(redis.call('HGET', KEYS[2], 'fencing_token') or '0')
if token < highest then
  idem_record = false
  return {0, highest, 0}
end
redis.call('HSET', KEYS[2], 'value', ARGV[2], 'fencing_token', ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then
  -- The counter always has a TTL (lock_acquire.lua sets one); a day if someone removed it.
  ttl = 86400000
end
redis.call('PEXPIRE', KEYS[2], ttl)
return {1, token, ttl}
