-- Gives a permit back, only for the holder of the token (after semaphore_expire.lua).
-- KEYS[1]  holders, KEYS[2] details
-- ARGV[1]  the caller's token
-- Returns  1 when released, 0 when the token holds no permit (never did, released, expired)
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  if live == 1 then
    redis.call('DEL', KEYS[2])
  else
    redis.call('HDEL', KEYS[2], ARGV[1])
  end
  return 1
end
idem_record = false
return 0
