-- Fixed-window rate limit: the classic INCR + EXPIRE, made atomic, and refusals are not
-- counted (a refused request leaves current_count where it was).
-- KEYS[1]  counter key (a string holding the count of this window)
-- ARGV[1]  limit (requests per window)
-- ARGV[2]  window, milliseconds
-- Returns  {allowed (1|0), current_count, remaining, reset_ms, retry_ms}
--
-- Redis expires a key once its clock is past the deadline (the deadline's own millisecond
-- still finds the key), so the counter gets window - 1 ms: it then lives exactly `window`
-- milliseconds, and PTTL + 1 ms is when the next window opens. Retry-After is rounded up from
-- that, never early. O(1).
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local allowed = 0
if current < limit then
  current = redis.call('INCR', KEYS[1])
  allowed = 1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  -- First request of the window, or a counter that lost its TTL: never leave it immortal.
  redis.call('PEXPIRE', KEYS[1], window_ms - 1)
  ttl = window_ms - 1
end
local reset = ttl + 1
local retry = 0
if allowed == 0 then retry = reset end
-- After the limit was lowered the count can exceed it: remaining stays at 0, never negative.
return {allowed, current, math.max(limit - current, 0), reset, retry}
