-- Shared prologue of the cache's writes: the entry's kind and HTTP preconditions (RFC 9110
-- §13.1, evaluated in the order of §13.2.2: If-Match first, then If-None-Match).
-- KEYS[1]  cache key
-- ARGV[1]  If-Match: 'any' (absent), 'present' (`*`) or 'match' (one of ARGV[3])
-- ARGV[2]  If-None-Match: 'any' (absent), 'absent' (`*`) or 'none-match' (none of ARGV[4])
-- ARGV[3]  If-Match's entity tags (unquoted), comma-separated
-- ARGV[4]  If-None-Match's entity tags, comma-separated
-- Defines `kind` (the key's type) and `failed_condition()`: nil when the preconditions hold,
-- else the script's answer {0, current entity tag (false when absent), the failed header}.
local key = KEYS[1]
local kind = redis.call('TYPE', key).ok
if kind == 'hash' and redis.call('HEXISTS', key, 'e') == 0 then
  -- A hash without an entry's tag is another client's: treated as a key of another type
  -- (no tag names it; a write replaces it whole instead of merging into it).
  kind = 'foreign hash'
end
local function failed_condition()
  if ARGV[1] == 'any' and ARGV[2] == 'any' then return nil end
  local current = false
  if kind == 'hash' then
    current = redis.call('HGET', key, 'e')
  elseif kind == 'string' then
    -- An entry written by a version that stored plain strings: same tag as it would have now.
    current = redis.sha1hex(redis.call('GET', key))
  elseif kind ~= 'none' then
    -- Some other client's key (another type, or a hash without a tag): it exists, and no
    -- tag can name it (tags have no NUL).
    current = '\0'
  end
  local function listed(tags)
    return current and string.find(',' .. tags .. ',', ',' .. current .. ',', 1, true) ~= nil
  end
  local failed = nil
  if (ARGV[1] == 'present' and not current) or (ARGV[1] == 'match' and not listed(ARGV[3])) then
    failed = 'If-Match'
  elseif (ARGV[2] == 'absent' and current) or (ARGV[2] == 'none-match' and listed(ARGV[4])) then
    failed = 'If-None-Match'
  end
  if not failed then return nil end
  idem_record = false
  return {0, current, failed}
end
