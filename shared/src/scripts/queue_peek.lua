-- (after queue_requeue_expired.lua for the queue; alone for its dead letters) One page of the
-- list KEYS[1], nothing removed: up to ARGV[2]
-- tasks from ARGV[1], ending before the task that would take the page past ARGV[3] bytes
-- (the first task is always included, so paging always moves on).
-- ARGV[1]  offset (0 = head)
-- ARGV[2]  limit
-- ARGV[3]  byte budget of the tasks (each counted as its length + ARGV[4])
-- ARGV[4]  bytes counted per task on top of its length
-- Returns  {length of KEYS[1], {payload...}, scheduled tasks, dead letters} (the last two
--          0 when the script is given only the list to page: the dead letters' page)
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
  local chunk = redis.call('LRANGE', KEYS[1], first, last)
  if #chunk < last - first + 1 then
    done = true -- the end of the list
  end
  for _, task in ipairs(chunk) do
    local size = #task + per_task
    if #page > 0 and bytes + size > budget then
      done = true
      break
    end
    bytes = bytes + size
    page[#page + 1] = task
  end
end
local scheduled = KEYS[8] and redis.call('ZCARD', KEYS[8]) or 0
local dead = KEYS[7] and redis.call('LLEN', KEYS[7]) or 0
return {redis.call('LLEN', KEYS[1]), page, scheduled, dead}
