-- A semaphore's live holders (reads only: lapsed holders are skipped, not removed).
-- KEYS[1]  holders, KEYS[2] details
-- Returns  {permits (0 when nobody holds one), {fencing_token, ttl_ms, expires_at_ms, ...}},
--          soonest to expire first.
-- Holder tokens are secrets (they release): holders are named by their fencing tokens.
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now_ms), '+inf', 'WITHSCORES')
local holders = {}
for i = 1, #live, 2 do
  holders[#holders + 1] = tonumber(redis.call('HGET', KEYS[2], live[i]) or '0')
  holders[#holders + 1] = tonumber(live[i + 1]) - now_ms
  holders[#holders + 1] = tonumber(live[i + 1])
end
local permits = 0
if #holders > 0 then
  permits = tonumber(redis.call('HGET', KEYS[2], 'permits') or '0')
end
return {permits, holders}
