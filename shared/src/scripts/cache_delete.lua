-- (after cache_condition.lua) Deletes a cache entry under `If-Match` / `If-None-Match`: the
-- compare and the delete in one step. A missing entry is "not found" whatever the
-- preconditions say (RFC 9110 §13.2.1: they are ignored when the answer would not be a 2xx).
-- ARGV[1..4]  the preconditions (cache_condition.lua)
-- Returns  {1, 1, ''} deleted, {1, 0, ''} not found, else failed_condition()'s answer
if kind == 'none' then
  idem_record = false
  return {1, 0, ''}
end
local refused = failed_condition()
if refused then return refused end
redis.call('UNLINK', key)
return {1, 1, ''}
