-- Takes one permit of a counting semaphore (after semaphore_expire.lua).
-- KEYS[1]  holders (sorted set, token -> expiry ms)
-- KEYS[2]  details (hash: `permits`, token -> fencing token)
-- KEYS[3]  the semaphore's last fencing token (same hash tag)
-- ARGV[1]  the new holder's random token
-- ARGV[2]  permits (how many holders at most)
-- ARGV[3]  TTL, milliseconds
-- Returns  {1, fencing_token, permits_left, expires_at_ms, token} when granted,
--          {0, retry_after_ms, permits, 0, ''} when every permit is held,
--          {-1, permits_of_the_holders, 0, 0, ''} when the semaphore, held, counts another
--          number of permits.
--
-- Idempotent per token: run again with the same token while it holds its permit (a resend
-- after a lost reply), it answers the same grant instead of taking a second permit.
local permits = tonumber(ARGV[2])
local mine = redis.call('ZSCORE', KEYS[1], ARGV[1])
if mine then
  local counted = tonumber(redis.call('HGET', KEYS[2], 'permits') or ARGV[2])
  local fence = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
  return {1, fence, counted - live, tonumber(mine), ARGV[1]}
end
local counted = tonumber(redis.call('HGET', KEYS[2], 'permits') or '0')
if counted > 0 and counted ~= permits then
  idem_record = false
  return {-1, counted, 0, 0, ''}
end
if live >= permits then
  idem_record = false
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, math.max(1, tonumber(first[2]) - now_ms), permits, 0, ''}
end
-- The same fencing rule as lock_acquire.lua: max(last + 1, Redis time in µs).
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
local fence = math.max(last + 1, now_us)
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[3], string.format('%d', fence), 'PX', string.format('%d', ttl + 86400000))
local expires = now_ms + ttl
redis.call('ZADD', KEYS[1], string.format('%d', expires), ARGV[1])
redis.call('HSET', KEYS[2], 'permits', ARGV[2], ARGV[1], string.format('%d', fence))
keep_for_longest_holder()
return {1, fence, permits - live - 1, expires, ARGV[1]}
