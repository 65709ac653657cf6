-- Acquires a lock and, only when it is granted, issues the next fencing token.
-- KEYS[1]  lock key (value = holder's random token)
-- KEYS[2]  the resource's last fencing token (same hash tag)
-- ARGV[1]  holder's random token
-- ARGV[2]  lock TTL, milliseconds
-- Returns  {1, fencing_token, token} when granted, {0, remaining_ttl_ms, ''} when held by
--          someone else.
--
-- Idempotent per token: run again with the same token while the lock is still held (a
-- resend after a lost reply), it answers the same grant instead of "held by another".
--
-- Fencing tokens strictly increase per resource and no key lives forever: a token is
-- max(last + 1, Redis time in microseconds). The last one is kept a day past the lock's
-- TTL; once it has expired (or was deleted by a reset), the clock alone is ahead of every
-- token issued before, as each of those was at most the clock of its own grant plus the few
-- grants that can fit in one microsecond (see docs/PATTERNS.md for the argument and its
-- one assumption: Redis's clock does not step back).
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return {1, tonumber(redis.call('GET', KEYS[2]) or '0'), ARGV[1]}
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  -- Nothing changed: not worth recording (a retry may find the lock free).
  idem_record = false
  return {0, redis.call('PTTL', KEYS[1]), ''}
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local fence = math.max(last + 1, now_us)
redis.call('SET', KEYS[2], string.format('%d', fence), 'PX', tonumber(ARGV[2]) + 86400000)
return {1, fence, ARGV[1]}
