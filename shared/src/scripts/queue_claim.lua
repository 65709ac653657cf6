-- (after queue_requeue_expired.lua) Claims the head task: moves it atomically to the
-- processing list (LMOVE), counts the delivery and records a lease that expires after the
-- visibility timeout. A claim that brings the task's deliveries to ARGV[3] is its last: if it
-- lapses, the task goes to the dead letters instead of back to the queue.
-- ARGV[1]  receipt (random, from the caller)
-- ARGV[2]  visibility timeout, milliseconds
-- ARGV[3]  max deliveries
-- Returns  nil when the queue is empty, else {payload, deadline_ms, remaining, receipt,
--          deliveries}
--
-- Idempotent per receipt: run again with a receipt whose claim is still live (a resend after
-- a lost reply), it answers that claim instead of claiming the next task under the same
-- receipt (which would strand the first one with no lease), and counts nothing again.
local claimed = redis.call('HGET', KEYS[3], ARGV[1])
if claimed then
  return {claimed, tonumber(redis.call('ZSCORE', KEYS[4], ARGV[1])), redis.call('LLEN', KEYS[1]),
    ARGV[1], tonumber(redis.call('HGET', KEYS[5], claimed)) or 0}
end
local payload = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not payload then
  idem_record = false
  return nil
end
local deadline = clock() + tonumber(ARGV[2])
local deliveries = redis.call('HINCRBY', KEYS[5], payload, 1)
if deliveries >= tonumber(ARGV[3]) then
  redis.call('SADD', KEYS[6], ARGV[1])
end
redis.call('HSET', KEYS[3], ARGV[1], payload)
redis.call('ZADD', KEYS[4], deadline, ARGV[1])
return {payload, deadline, redis.call('LLEN', KEYS[1]), ARGV[1], deliveries}
