-- (after queue_requeue_expired.lua) Pops up to ARGV[1] tasks from the head.
-- ARGV[1]  how many
-- Returns  {remaining, {payload...}}
local popped = redis.call('LPOP', KEYS[1], ARGV[1])
return {redis.call('LLEN', KEYS[1]), popped or {}}
