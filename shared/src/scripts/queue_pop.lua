-- (after queue_requeue_expired.lua) Pops up to ARGV[1] tasks from the head, stopping before
-- the task that would take the reply past ARGV[2] bytes: the budget is kept here, inside the
-- script, so nothing is removed that the reply then cannot carry (a Lambda reply over its
-- payload limit fails after the pop). The first task is always taken, so a queue never sticks.
-- ARGV[1]  how many, at most
-- ARGV[2]  byte budget of the tasks (each counted by answer_bytes)
-- ARGV[3]  bytes counted per task on top of its length (separators, the reply's framing)
-- Returns  {remaining, {payload...}}
local count = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local per_task = tonumber(ARGV[3])
local chunk_size = 16
local popped = {}
if count == 1 then
  -- One task: the first is always taken, so there is nothing to measure (the common pop).
  popped = redis.call('LPOP', KEYS[1], 1) or {}
else
  local taken, bytes, done = 0, 0, false
  -- Measured in small LRANGE chunks: a list of large tasks is never copied whole into Lua.
  while taken < count and not done do
    local first = taken
    local last = math.min(first + chunk_size, count) - 1
    local chunk = redis.call('LRANGE', KEYS[1], first, last)
    if #chunk < last - first + 1 then
      done = true -- the end of the list
    end
    for _, task in ipairs(chunk) do
      local size = answer_bytes(task, per_task)
      if taken > 0 and bytes + size > budget then
        done = true
        break
      end
      bytes = bytes + size
      taken = taken + 1
    end
  end
  if taken > 0 then popped = redis.call('LPOP', KEYS[1], taken) end
end
if #popped > 0 and not idle then
  -- A popped task is gone for good: so is its delivery count (if it was ever claimed).
  redis.call('HDEL', KEYS[5], unpack(popped))
end
return {redis.call('LLEN', KEYS[1]), popped}
