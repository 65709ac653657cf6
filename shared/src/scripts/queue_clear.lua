-- Deletes a queue: pending, claimed, scheduled and dead tasks, with the delivery counts.
-- KEYS[1..8]  as in queue_requeue_expired.lua
-- Returns  how many tasks were deleted
local n = redis.call('LLEN', KEYS[1]) + redis.call('HLEN', KEYS[3])
  + redis.call('ZCARD', KEYS[8]) + redis.call('LLEN', KEYS[7])
redis.call('UNLINK', unpack(KEYS))
return n
