-- (after queue_requeue_expired.lua, so that a claim that lapsed as its last delivery goes
-- too) Deletes a queue's dead letters, saying how many there were (UNLINK alone answers how
-- many keys it removed).
-- KEYS[1..8]  as in queue_requeue_expired.lua
-- Returns  how many dead letters were deleted
local n = redis.call('LLEN', KEYS[7])
redis.call('UNLINK', KEYS[7])
return n
