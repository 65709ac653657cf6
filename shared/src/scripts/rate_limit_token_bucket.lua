-- Token bucket: capacity = limit, refilled continuously at limit tokens per window.
-- Bursts up to the capacity, then a steady rate. Time comes from Redis (TIME).
-- KEYS[1]  hash key {tokens, ts} (ts: whole microseconds; tokens: a fraction, exact digits)
-- ARGV[1]  limit (bucket capacity, and tokens added per window)
-- ARGV[2]  window, milliseconds
-- Returns  {allowed (1|0), current_count (tokens in use), remaining, reset_ms, retry_ms},
--          counts always within 0..limit
--
-- Both fields are written with every digit (%d, %.17g): Lua's own number-to-string keeps 14,
-- which rounded ts by up to 50 µs, often into the future. O(1).
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or limit
local ts = tonumber(state[2]) or now
-- Tokens per microsecond.
local rate = limit / (window_ms * 1000)
-- Refill for the time passed. If Redis's clock went back (a failover, an NTP step) nothing
-- is added and the later time is kept, so no interval is ever refilled twice.
if now > ts then
  tokens = tokens + (now - ts) * rate
  ts = now
end
-- Clamped on every call: the limit may have been lowered since the bucket was filled.
tokens = math.min(math.max(tokens, 0), limit)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%d', ts))
-- Whole microseconds until the bucket holds `target` tokens, computed as the next call will
-- compute its refill (same numbers, same operations), so that waiting this long is enough.
local function wait_us(target)
  local us = math.max(math.ceil((target - tokens) / rate), 0)
  while tokens + us * rate < target do
    us = us + 1
  end
  return us
end
-- Once full again the bucket holds no information: let it expire then (the deadline rounded
-- up to the millisecond: never before the bucket is full).
local full_at = math.ceil((now + wait_us(limit)) / 1000)
redis.call('PEXPIREAT', KEYS[1], string.format('%d', full_at))
local remaining = math.floor(tokens)
local retry = 0
if allowed == 0 then retry = math.ceil(wait_us(1) / 1000) end
-- reset: when the next whole token arrives (0 when the bucket is full).
local reset_ms = 0
if tokens < limit then reset_ms = math.ceil(wait_us(remaining + 1) / 1000) end
return {allowed, limit - remaining, remaining, reset_ms, retry}
