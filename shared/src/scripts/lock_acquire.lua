-- Acquires a lock and, only when it is granted, issues the next fencing token.
-- KEYS[1]  lock key (value = holder's random token)
-- KEYS[2]  fencing counter of the resource (same hash tag; never expires, so tokens only grow)
-- ARGV[1]  holder's random token
-- ARGV[2]  lock TTL, milliseconds
-- Returns  {1, fencing_token} when granted, {0, remaining_ttl_ms} when held by someone else
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
