-- Refreshes a permit's lease, only for the holder of the token (after semaphore_expire.lua).
-- KEYS[1]  holders, KEYS[2] details
-- ARGV[1]  the caller's token
-- ARGV[2]  new TTL, milliseconds from now (it replaces the time left)
-- Returns  the new expiry (Unix ms) when extended, 0 when the token holds no permit
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  idem_record = false
  return 0
end
local expires = now_ms + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', string.format('%d', expires), ARGV[1])
keep_for_longest_holder()
return expires
