-- Releases a lock only for the holder of the token (compare-and-delete).
-- KEYS[1]  lock key
-- ARGV[1]  the caller's token
-- Returns  1 when released, 0 when the caller does not hold the lock
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
idem_record = false
return 0
