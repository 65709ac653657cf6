-- (after queue_end_claim.lua) Acknowledges a claimed task: it is gone for good, with its
-- delivery count.
-- Returns  the payload, or nil when the receipt is unknown
redis.call('SREM', KEYS[6], ARGV[1])
redis.call('HDEL', KEYS[5], payload)
return payload
