-- (after queue_requeue_expired.lua, so that a claim that lapsed as its last delivery is a
-- dead letter already) Replays dead letters: back to the queue's tail, their delivery counts reset. With no ids,
-- the oldest ARGV[1] at most (call again for the rest); with ids, those of the first ARGV[2]
-- dead letters whose task id is listed.
-- KEYS[1..8]  as in queue_requeue_expired.lua
-- ARGV[1]  most tasks moved per call
-- ARGV[2]  most dead letters looked at per call (with ids)
-- ARGV[3..]  task ids (none: every dead letter)
-- Returns  {moved, dead letters left, queue length}
local most, look = tonumber(ARGV[1]), tonumber(ARGV[2])
local moved = 0
if #ARGV == 2 then
  while moved < most do
    local payload = redis.call('LMOVE', KEYS[7], KEYS[1], 'LEFT', 'RIGHT')
    if not payload then break end
    redis.call('HDEL', KEYS[5], payload)
    moved = moved + 1
  end
else
  local wanted = {}
  for i = 3, #ARGV do wanted[ARGV[i]] = true end
  local chosen, seen, chunk_size = {}, 0, 100
  while seen < look and #chosen < most do
    local chunk = redis.call('LRANGE', KEYS[7], seen, math.min(seen + chunk_size, look) - 1)
    if #chunk == 0 then break end
    for _, payload in ipairs(chunk) do
      local ok, task = pcall(cjson.decode, payload)
      if ok and type(task) == 'table' and wanted[task.id] and #chosen < most then
        chosen[#chosen + 1] = payload
      end
    end
    seen = seen + #chunk
  end
  for _, payload in ipairs(chosen) do
    redis.call('LREM', KEYS[7], 1, payload)
    redis.call('RPUSH', KEYS[1], payload)
    redis.call('HDEL', KEYS[5], payload)
    moved = moved + 1
  end
end
if moved == 0 then idem_record = false end
return {moved, redis.call('LLEN', KEYS[7]), redis.call('LLEN', KEYS[1])}
