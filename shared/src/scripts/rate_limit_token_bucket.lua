-- Token bucket: capacity = limit, refilled continuously at limit tokens per window.
-- Bursts up to the capacity, then a steady rate. Time comes from Redis (TIME).
-- KEYS[1]  hash key {tokens, ts} (ts in microseconds)
-- ARGV[1]  limit (bucket capacity, and tokens added per window)
-- ARGV[2]  window, milliseconds
-- Returns  {allowed (1|0), current_count (tokens in use), remaining, reset_ms, retry_ms}
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or limit
local ts = tonumber(state[2]) or now
-- Tokens per microsecond.
local rate = limit / (window_ms * 1000)
if now > ts then
  tokens = math.min(limit, tokens + (now - ts) * rate)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
-- Once full again the bucket holds no information: let it expire then.
local full_ms = math.ceil((limit - tokens) / rate / 1000)
redis.call('PEXPIRE', KEYS[1], math.max(full_ms, 1))
local remaining = math.floor(tokens)
local retry = 0
if allowed == 0 then retry = math.ceil((1 - tokens) / rate / 1000) end
-- reset: when the next token arrives (or 0 when the bucket is full).
local reset_ms = 0
if tokens < limit then reset_ms = math.ceil((1 - (tokens - remaining)) / rate / 1000) end
return {allowed, limit - remaining, remaining, reset_ms, retry}
