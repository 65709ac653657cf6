-- Acknowledges a claimed task: removes it for good.
-- KEYS[1..4]  as in queue_requeue_expired.lua
-- ARGV[1]  receipt
-- Returns  the payload, or nil when the receipt is unknown (never issued, acked, or expired
--          and the task handed out again)
local payload = redis.call('HGET', KEYS[3], ARGV[1])
if not payload then
  idem_record = false
  return nil
end
redis.call('LREM', KEYS[2], 1, payload)
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return payload
