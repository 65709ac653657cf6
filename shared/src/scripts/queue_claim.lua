-- (after queue_requeue_expired.lua) Claims the head task: moves it atomically to the
-- processing list (LMOVE) and records a lease that expires after the visibility timeout.
-- ARGV[1]  receipt (random, from the caller)
-- ARGV[2]  visibility timeout, milliseconds
-- Returns  nil when the queue is empty, else {payload, deadline_ms, remaining, receipt}
--
-- Idempotent per receipt: run again with a receipt whose claim is still live (a resend after
-- a lost reply), it answers that claim instead of claiming the next task under the same
-- receipt (which would strand the first one with no lease).
local claimed = redis.call('HGET', KEYS[3], ARGV[1])
if claimed then
  return {claimed, tonumber(redis.call('ZSCORE', KEYS[4], ARGV[1])), redis.call('LLEN', KEYS[1]), ARGV[1]}
end
local payload = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not payload then
  idem_record = false
  return nil
end
local deadline = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], payload)
redis.call('ZADD', KEYS[4], deadline, ARGV[1])
return {payload, deadline, redis.call('LLEN', KEYS[1]), ARGV[1]}
