-- Field-level profile update that keeps the profile's TTL; nothing is created when the
-- profile does not exist (a PATCH must not resurrect an expired profile without a TTL).
-- KEYS[1]  profile hash
-- ARGV[1]  number of fields to set (n)
-- ARGV[2..2n+1]  field, value pairs to set
-- ARGV[2n+2..]   fields to remove
-- Returns  nil when the profile does not exist, else {pttl_ms, {field, value, ...}}
if redis.call('EXISTS', KEYS[1]) == 0 then
  idem_record = false
  return nil
end
local n = tonumber(ARGV[1])
if n > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2, 2 * n + 1))
end
if #ARGV > 2 * n + 1 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 2 * n + 2, #ARGV))
end
return {redis.call('PTTL', KEYS[1]), redis.call('HGETALL', KEYS[1])}
