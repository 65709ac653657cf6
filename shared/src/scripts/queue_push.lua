-- Appends tasks to a queue (the scripted twin of `RPUSH`, used when the request carries an
-- Idempotency-Key, so that a retried push is not queued twice).
-- KEYS[1]  pending list
-- ARGV[1..]  the stored tasks, in order
-- Returns  the queue's length after the push
return redis.call('RPUSH', KEYS[1], unpack(ARGV))
