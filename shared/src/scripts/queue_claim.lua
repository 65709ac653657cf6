-- (after queue_requeue_expired.lua) Claims the head task: moves it atomically to the
-- processing list (LMOVE) and records a lease that expires after the visibility timeout.
-- ARGV[1]  receipt (random, from the caller)
-- ARGV[2]  visibility timeout, milliseconds
-- Returns  nil when the queue is empty, else {payload, deadline_ms, remaining}
local payload = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not payload then
  return nil
end
local deadline = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], payload)
redis.call('ZADD', KEYS[4], deadline, ARGV[1])
return {payload, deadline, redis.call('LLEN', KEYS[1])}
