-- (after queue_end_claim.lua) Gives a claimed task back: to the head of the queue now, or
-- scheduled ARGV[2] ms from now; to the dead letters when this claim was its last allowed
-- delivery (as a lapse would).
-- ARGV[2]  delay, ms (0: now)
-- ARGV[3]  a random token, to keep scheduled members distinct
-- Returns  nil when the receipt is unknown, else {payload, where ('queued', 'scheduled' or
--          'dead'), deliveries so far, due_ms (0 unless scheduled)}
local deliveries = tonumber(redis.call('HGET', KEYS[5], payload)) or 0
if redis.call('SREM', KEYS[6], ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[7], payload)
  redis.call('HDEL', KEYS[5], payload)
  return {payload, 'dead', deliveries, 0}
end
local delay = tonumber(ARGV[2])
if delay > 0 then
  local t = redis.call('TIME')
  local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + delay
  redis.call('ZADD', KEYS[8], due, ARGV[3] .. '|' .. payload)
  return {payload, 'scheduled', deliveries, due}
end
redis.call('LPUSH', KEYS[1], payload)
return {payload, 'queued', deliveries, 0}
