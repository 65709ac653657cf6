-- (after queue_requeue_expired.lua) One page of the queue (or of its dead letters), nothing
-- removed: up to ARGV[2] tasks from ARGV[1], ending before the task that would take the page past ARGV[3] bytes
-- (the first task is always included, so paging always moves on).
-- ARGV[1]  offset (0 = head)
-- ARGV[2]  limit
-- ARGV[3]  byte budget of the tasks (each counted by answer_bytes)
-- ARGV[4]  bytes counted per task on top of its length
-- ARGV[5]  which list: 1 the queue (the default), 7 the dead letters
-- Returns  {length of that list, {payload...}, scheduled tasks, dead letters}
local list = KEYS[tonumber(ARGV[5]) or 1]
local offset = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local per_task = tonumber(ARGV[4])
local chunk_size = 16
local page, bytes, done = {}, 0, false
-- Small LRANGE chunks: a page of large tasks is never copied whole into Lua.
while #page < limit and not done do
  local first = offset + #page
  local last = first + math.min(chunk_size, limit - #page) - 1
  local chunk = redis.call('LRANGE', list, first, last)
  if #chunk < last - first + 1 then
    done = true -- the end of the list
  end
  for _, task in ipairs(chunk) do
    local size = answer_bytes(task, per_task)
    if #page > 0 and bytes + size > budget then
      done = true
      break
    end
    bytes = bytes + size
    page[#page + 1] = task
  end
end
return {redis.call('LLEN', list), page, redis.call('ZCARD', KEYS[8]), redis.call('LLEN', KEYS[7])}
