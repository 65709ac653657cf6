-- Creates (or replaces) a profile with its TTL (the scripted twin of MULTI DEL HSET EXPIRE
-- EXEC, used when the request carries an Idempotency-Key).
-- KEYS[1]  profile hash
-- ARGV[1]  TTL, seconds
-- ARGV[2..]  field, value pairs
-- Returns  1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
