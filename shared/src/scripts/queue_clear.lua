-- Deletes a queue: pending tasks and claimed ones.
-- KEYS[1..4]  as in queue_requeue_expired.lua
-- Returns  how many tasks were deleted
local n = redis.call('LLEN', KEYS[1]) + redis.call('HLEN', KEYS[3])
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return n
