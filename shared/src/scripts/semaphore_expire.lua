-- Prelude of the semaphore's write scripts (acquire, release, extend): reads Redis's clock
-- and removes the holders whose TTL has run out, with their details, so that what follows
-- sees live holders only.
-- KEYS[1]  holders: sorted set of holder tokens, scored by expiry (Unix ms, Redis's clock)
-- KEYS[2]  details: hash of `permits` and each holder token's fencing token
-- Sets     now_us, now_ms (Redis's clock), live (how many holders remain)
--
-- Bounded work: the set never holds more than the semaphore's `permits` members (an acquire
-- adds one only below that count, and the count is kept while anyone holds a permit), and
-- `permits` is at most SEMAPHORE_PERMITS's maximum.
local sem_clock = redis.call('TIME')
local now_us = tonumber(sem_clock[1]) * 1000000 + tonumber(sem_clock[2])
local now_ms = math.floor(now_us / 1000)
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now_ms))
if #lapsed > 0 then
  redis.call('ZREM', KEYS[1], unpack(lapsed))
  redis.call('HDEL', KEYS[2], unpack(lapsed))
end
local live = redis.call('ZCARD', KEYS[1])
if live == 0 then
  -- Nobody holds a permit: the semaphore forgets its count (the next acquire sets it).
  redis.call('DEL', KEYS[2])
end
-- Both keys live as long as the longest holder (called after a holder was added or moved).
local function keep_for_longest_holder()
  local longest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if longest[2] then
    local keep = string.format('%d', math.max(1, tonumber(longest[2]) - now_ms))
    redis.call('PEXPIRE', KEYS[1], keep)
    redis.call('PEXPIRE', KEYS[2], keep)
  end
end
