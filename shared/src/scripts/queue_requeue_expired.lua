-- Shared prologue of the queue scripts that hand tasks out (pop, claim, peek): every claim
-- whose visibility timeout has passed goes back to the head of the queue, so a task is never
-- lost when its consumer dies between claim and ack.
-- Keys of every queue script (one hash tag, {name}, so they share a cluster slot):
-- KEYS[1]  pending list (RPUSH at the tail, LPOP/LMOVE at the head)
-- KEYS[2]  processing list (claimed payloads)
-- KEYS[3]  claims hash: receipt -> payload
-- KEYS[4]  leases sorted set: receipt -> deadline (ms, Redis clock)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Bounded per call, so one call never blocks Redis for long; the rest go on the next call.
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 1000)
-- Latest deadline first: the task claimed first ends up at the very head.
for i = #expired, 1, -1 do
  local receipt = expired[i]
  local payload = redis.call('HGET', KEYS[3], receipt)
  if payload then
    redis.call('LREM', KEYS[2], 1, payload)
    redis.call('LPUSH', KEYS[1], payload)
  end
  redis.call('HDEL', KEYS[3], receipt)
  redis.call('ZREM', KEYS[4], receipt)
end
