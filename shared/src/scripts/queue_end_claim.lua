-- Shared prologue of ack and nack: ends the claim ARGV[1] (its processing entry, claim and
-- lease), leaving `payload` for the rest of the script; unknown receipts (never issued,
-- already acked or nacked, or lapsed and the task handed out again) answer nil.
-- KEYS[1..8]  as in queue_requeue_expired.lua
-- ARGV[1]  receipt
local payload = redis.call('HGET', KEYS[3], ARGV[1])
if not payload then
  idem_record = false
  return nil
end
redis.call('LREM', KEYS[2], 1, payload)
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
