-- Stores a cache entry (the scripted twin of `SET key value EX ttl`, used when the request
-- carries an Idempotency-Key; without one the handler sends the plain command).
-- KEYS[1]  cache key
-- ARGV[1]  the value's JSON text
-- ARGV[2]  TTL, seconds
-- Returns  1
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
