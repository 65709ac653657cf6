-- Creates (or replaces) a profile with its TTL (the scripted twin of MULTI DEL HSET EXPIRE
-- EXEC, used when the request carries an Idempotency-Key).
-- KEYS[1]  profile hash
-- ARGV[1]  TTL, seconds
-- ARGV[2..]  field, value pairs
-- Returns  1
-- HSET is the first write, not DEL: Redis checks maxmemory on a script's first write only
-- (under `noeviction`, out of memory, it refuses it and nothing changes); a DEL first would
-- let the HSET through past the limit. The older profile's other fields go after it.
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then
  redis.call('DEL', KEYS[1])
end
local stale = {}
if kind == 'hash' then
  local new = {}
  for i = 2, #ARGV, 2 do new[ARGV[i]] = true end
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if not new[field] then stale[#stale + 1] = field end
  end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if #stale > 0 then
  redis.call('HDEL', KEYS[1], unpack(stale))
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
