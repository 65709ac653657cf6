-- (after cache_condition.lua) Stores a cache entry: a hash of the value's JSON text (`v`), its
-- entity tag (`e`, the SHA-1 of `v`, what `ETag` carries) and, when the writer said how long
-- the value took to compute, that time (`c`, ms: XFetch's delta). One key per entry, so the
-- three can never disagree and one TTL covers them. A conditional write compares and sets in
-- the same step: no other write can slip in between (optimistic concurrency without
-- WATCH/MULTI).
-- ARGV[1..4]  the preconditions (cache_condition.lua)
-- ARGV[5]  the value's JSON text
-- ARGV[6]  TTL, seconds
-- ARGV[7]  compute time, ms ('' when not given)
-- Returns  {1, new etag, ''} when stored; else failed_condition()'s answer (nothing changed,
--          so nothing is recorded for a retry).
local refused = failed_condition()
if refused then return refused end
local etag = redis.sha1hex(ARGV[5])
if kind ~= 'hash' and kind ~= 'none' then
  -- An entry of an earlier version (a string), or a key someone else wrote (of another
  -- type, or a hash without the entry's fields).
  redis.call('DEL', key)
end
-- HSET is the script's first write: Redis checks maxmemory on a script's first write only
-- (under `noeviction`, out of memory, it refuses it and the script stops with nothing
-- changed). A DEL first would let the HSET through past the limit.
redis.call('HSET', key, 'v', ARGV[5], 'e', etag)
if ARGV[7] == '' then
  -- The previous entry's compute time must not outlive it.
  redis.call('HDEL', key, 'c')
else
  redis.call('HSET', key, 'c', ARGV[7])
end
redis.call('EXPIRE', key, ARGV[6])
return {1, etag, ''}
