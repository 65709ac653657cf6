-- Reset one caller: delete up to ARGV[1] of the limiter keys its index lists, every
-- algorithm and window, and take them off the index (the index goes with its last entry).
-- KEYS[1]  the caller's index (sorted set of the caller's limiter keys; see rate_limit.lua)
-- ARGV[1]  at most this many keys per call
-- Returns  {deleted, left}: keys deleted by this call, entries still in the index
--
-- The keys deleted are not in KEYS: they are read from the index. Every one shares the
-- index's hash tag (the caller), hence its slot, so this is allowed on a Redis Cluster.
-- Bounded work: the caller calls again while `left` > 0. Running twice deletes nothing
-- more, so a call whose reply was lost may be sent again.
local page = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local deleted = 0
for _, key in ipairs(page) do
  deleted = deleted + redis.call('UNLINK', key)
end
if #page > 0 then redis.call('ZREM', KEYS[1], unpack(page)) end
return {deleted, redis.call('ZCARD', KEYS[1])}
