-- Sliding-window log: a sorted set of the admitted requests' times; exact, memory O(limit).
-- Time comes from Redis (TIME), never from the caller, so every instance agrees.
-- KEYS[1]  sorted set key (member per admitted request, score = time in microseconds)
-- ARGV[1]  limit (requests per window)
-- ARGV[2]  window, milliseconds
-- Returns  {allowed (1|0), current_count, remaining, reset_ms, retry_ms}
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local window_us = window_ms * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window_us)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  -- Unique member: within one microsecond the count only grows (scripts run one at a time).
  redis.call('ZADD', KEYS[1], now, now .. ':' .. count)
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], window_ms)
-- The window frees its next slot when the oldest admitted request slides out of it.
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset_ms = window_ms
if oldest[2] then
  reset_ms = math.ceil((tonumber(oldest[2]) + window_us - now) / 1000)
end
local retry = 0
if allowed == 0 then retry = reset_ms end
return {allowed, count, limit - count, reset_ms, retry}
