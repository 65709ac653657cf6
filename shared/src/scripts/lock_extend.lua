-- Extends a lock only for the holder of the token (compare-and-expire).
-- KEYS[1]  lock key
-- ARGV[1]  the caller's token
-- ARGV[2]  new TTL, milliseconds (from now)
-- Returns  1 when extended, 0 when the caller does not hold the lock
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
idem_record = false
return 0
