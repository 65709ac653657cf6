-- Schedules tasks: each joins the queue's tail once ARGV[1] ms have passed (moved by the
-- prologue of the next pop, claim or page; queue_requeue_expired.lua).
-- KEYS[1]  scheduled sorted set ('<token>|<payload>' -> due ms)
-- ARGV[1]  delay, ms
-- ARGV[2]  a random token; the n-th task's member starts with it and n, zero-padded: members
--          of one due time are ordered by their bytes, so the tasks join the queue in order
-- ARGV[3..]  the stored tasks
-- Returns  {due_ms, how many are scheduled now}
local t = redis.call('TIME')
local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], due, ARGV[2] .. string.format('%04d', i - 2) .. '|' .. ARGV[i])
end
return {due, redis.call('ZCARD', KEYS[1])}
