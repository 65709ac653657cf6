-- (after queue_requeue_expired.lua) One page of the queue, nothing removed.
-- ARGV[1]  offset (0 = head)
-- ARGV[2]  limit
-- Returns  {queue_length, {payload...}}
local offset = tonumber(ARGV[1])
local page = redis.call('LRANGE', KEYS[1], offset, offset + tonumber(ARGV[2]) - 1)
return {redis.call('LLEN', KEYS[1]), page}
