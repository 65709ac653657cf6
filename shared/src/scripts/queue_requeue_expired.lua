-- Shared prologue of the queue scripts that hand tasks out (pop, claim, peek): every claim
-- whose visibility timeout has passed goes back to the head of the queue (or, when it was
-- the task's last allowed delivery, to the dead letters), so a task is never lost when its
-- consumer dies between claim and ack; and every scheduled task that is due joins the tail.
-- Keys of every queue script (one hash tag, {name}, so they share a cluster slot):
-- KEYS[1]  pending list (RPUSH at the tail, LPOP/LMOVE at the head)
-- KEYS[2]  processing list (claimed payloads)
-- KEYS[3]  claims hash: receipt -> payload
-- KEYS[4]  leases sorted set: receipt -> deadline (ms, Redis clock)
-- KEYS[5]  deliveries hash: payload -> times claimed (tasks are told apart by their stored
--          text, which carries their id and creation time)
-- KEYS[6]  final claims set: receipts whose lapse dead-letters the task (deliveries reached
--          the claim's max_deliveries)
-- KEYS[7]  dead letters list
-- KEYS[8]  scheduled sorted set: '<token>|<payload>' -> due time (ms, Redis clock)
-- What a task handed out adds to the answer's byte budget (the pop and the peek keep it):
-- its length plus `per_task`, and four times its length when it holds control bytes or
-- bytes past ASCII. Those can grow on the way out: a control byte in text that is not JSON
-- becomes a 6-byte escape, a byte that is not UTF-8 a 3-byte U+FFFD; the budget itself
-- already allows the answer to double inside the Lambda response payload.
local function answer_bytes(task, per_task)
  if string.find(task, '[%z\1-\31\128-\255]') then return #task * 4 + per_task end
  return #task + per_task
end
-- `idle`: no claim out, nothing scheduled and no delivery count kept (Redis deletes an empty
-- hash or sorted set), as for a queue whose tasks are only pushed and popped. Then there is
-- nothing to requeue, and the time (ms, Redis clock, read on first use) and the two range
-- reads are skipped: one EXISTS instead of three commands.
local now
local function clock()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
local idle = redis.call('EXISTS', KEYS[4], KEYS[8], KEYS[5]) == 0
if not idle then
  clock()
  -- Bounded per call, so one call never blocks Redis for long; the rest go on the next call.
  local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 1000)
  -- Latest deadline first: the task claimed first ends up at the very head.
  for i = #expired, 1, -1 do
    local receipt = expired[i]
    local payload = redis.call('HGET', KEYS[3], receipt)
    if payload then
      redis.call('LREM', KEYS[2], 1, payload)
      if redis.call('SREM', KEYS[6], receipt) == 1 then
        redis.call('RPUSH', KEYS[7], payload)
        redis.call('HDEL', KEYS[5], payload)
      else
        redis.call('LPUSH', KEYS[1], payload)
      end
    end
    redis.call('HDEL', KEYS[3], receipt)
    redis.call('ZREM', KEYS[4], receipt)
    redis.call('SREM', KEYS[6], receipt)
  end
  local due = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now, 'LIMIT', 0, 1000)
  for _, member in ipairs(due) do
    redis.call('RPUSH', KEYS[1], string.sub(member, string.find(member, '|', 1, true) + 1))
  end
  if #due > 0 then
    redis.call('ZREM', KEYS[8], unpack(due))
  end
end
