-- Fixed-window rate limit: the original's INCR + EXPIRE, made atomic, and refusals are not
-- counted (a refused request leaves current_count at the limit).
-- KEYS[1]  counter key (a string holding the count of this window)
-- ARGV[1]  limit (requests per window)
-- ARGV[2]  window, milliseconds
-- Returns  {allowed (1|0), current_count, remaining, reset_ms, retry_ms}
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
  redis.call('PEXPIRE', KEYS[1], window_ms)
  ttl = window_ms
end
local retry = 0
if allowed == 0 then retry = ttl end
return {allowed, current, limit - current, ttl, retry}
