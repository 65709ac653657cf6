-- Sliding-window log: a sorted set of the admitted requests scored by their time; exact
-- (at most `limit` admissions in any window-long interval), memory O(limit).
-- Time comes from Redis (TIME), never from the caller, so every instance agrees.
-- KEYS[1]  sorted set key (member per admitted request, score = time in microseconds)
-- ARGV[1]  limit (requests per window)
-- ARGV[2]  window, milliseconds
-- ARGV[3]  nonce: a random token from the caller, the member for this request
-- Returns  {allowed (1|0), current_count, remaining, reset_ms, retry_ms}
--
-- Time is whole microseconds, from TIME's two fields (exact in Lua's doubles until 2^53 µs,
-- the year 2255), and always printed with %d: Lua's own number-to-string keeps 14 digits,
-- 100 µs here, which made two requests' members equal.
-- The member is the caller's nonce rather than a per-key sequence: a sequence needs a
-- second key (another hash tag, for Redis Cluster) or a reserved member, while a count or a
-- time can repeat after a removal, and ZADD then moves a member instead of adding one. A
-- random 128-bit nonce is unique even for two requests in one microsecond, needs no state,
-- and costs 32 bytes per member.
-- Bounded work: an entry is live while its score > now - window. Live entries are counted
-- by ZCARD minus a ZCOUNT of the expired ones (O(log n)); at most TRIM expired entries, the
-- oldest, are deleted per call (ZREMRANGEBYRANK 0 TRIM-1, O(log n + TRIM)). A call is thus
-- O(log n) plus a constant however large `limit` is (a limit of 1,000,000 can leave that
-- many expired entries, which one ZREMRANGEBYSCORE would delete in one go, blocking Redis);
-- the backlog shrinks by up to TRIM per call, and goes with the key, whose TTL ends when the
-- newest entry slides out.
local TRIM = 100
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local window_us = window_ms * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local expired = redis.call('ZCOUNT', KEYS[1], '-inf', string.format('%d', now - window_us))
if expired > 0 then
  local trim = math.min(expired, TRIM)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, trim - 1)
  expired = expired - trim
end
local count = redis.call('ZCARD', KEYS[1]) - expired
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[3])
  count = count + 1
  allowed = 1
  -- The key outlives its newest entry: deadline rounded up to the millisecond.
  redis.call('PEXPIREAT', KEYS[1], string.format('%d', math.ceil((now + window_us) / 1000)))
elseif redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], window_ms)
end
-- A slot frees when fewer than `limit` live entries remain: when the live entry of rank
-- count - limit slides out (the oldest, unless the limit was lowered meanwhile). An entry
-- slides out at score + window; rounded up to the millisecond, never early.
local rank = expired + math.max(count - limit, 0)
local entry = redis.call('ZRANGE', KEYS[1], rank, rank, 'WITHSCORES')
local reset_ms = window_ms
if entry[2] then
  reset_ms = math.ceil((tonumber(entry[2]) + window_us - now) / 1000)
end
local retry = 0
if allowed == 0 then retry = reset_ms end
return {allowed, count, math.max(limit - count, 0), reset_ms, retry}
