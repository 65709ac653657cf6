-- Stores a cache entry: a hash of the value's JSON text (`v`), its entity tag (`e`, the
-- SHA-1 of `v`, what `ETag` carries) and, when the writer said how long the value took to
-- compute, that time (`c`, ms: XFetch's delta). One key per entry, so the three can never
-- disagree and one TTL covers them. A conditional write compares and sets in the same step:
-- no other write can slip in between (optimistic concurrency without WATCH/MULTI).
-- KEYS[1]  cache key
-- ARGV[1]  the value's JSON text
-- ARGV[2]  TTL, seconds
-- ARGV[3]  compute time, ms ('' when not given)
-- ARGV[4]  If-Match: 'any' (absent), 'present' (`*`) or 'match' (one of the n tags below)
-- ARGV[5]  If-None-Match: 'any' (absent), 'absent' (`*`) or 'none-match' (none of the rest)
-- ARGV[6]  n, how many of the tags are If-Match's
-- ARGV[7..] entity tags (unquoted): n for If-Match, then If-None-Match's
-- Returns  {1, new etag, ''} when stored; {0, current etag (false when absent), the header
--          whose condition failed} otherwise (nothing changed, so no record for a retry).
-- As RFC 9110 §13.2.2 orders them: If-Match first, then If-None-Match.
local key = KEYS[1]
local if_match, if_none_match, n = ARGV[4], ARGV[5], tonumber(ARGV[6])
local kind = redis.call('TYPE', key).ok
if if_match ~= 'any' or if_none_match ~= 'any' then
  local current = false
  if kind == 'hash' then
    current = redis.call('HGET', key, 'e')
  elseif kind == 'string' then
    -- An entry written by a version that stored plain strings: same tag as it would have now.
    current = redis.sha1hex(redis.call('GET', key))
  elseif kind ~= 'none' then
    current = ''
  end
  local function listed(from, to)
    for i = from, to do
      if ARGV[i] == current then return true end
    end
    return false
  end
  local failed = nil
  if (if_match == 'present' and not current)
    or (if_match == 'match' and not listed(7, 6 + n)) then
    failed = 'If-Match'
  elseif (if_none_match == 'absent' and current)
    or (if_none_match == 'none-match' and listed(7 + n, #ARGV)) then
    failed = 'If-None-Match'
  end
  if failed then
    idem_record = false
    return {0, current, failed}
  end
end
local etag = redis.sha1hex(ARGV[1])
if kind ~= 'hash' and kind ~= 'none' then
  -- An entry of an earlier version (a string), or a key someone else wrote.
  redis.call('DEL', key)
end
-- HSET is the script's first write: Redis checks maxmemory on a script's first write only
-- (under `noeviction`, out of memory, it refuses it and the script stops with nothing
-- changed). A DEL first would let the HSET through past the limit.
redis.call('HSET', key, 'v', ARGV[1], 'e', etag)
if ARGV[3] == '' then
  -- The previous entry's compute time must not outlive it.
  redis.call('HDEL', key, 'c')
else
  redis.call('HSET', key, 'c', ARGV[3])
end
redis.call('EXPIRE', key, ARGV[2])
return {1, etag, ''}
