-- Ends the lock demo's hold: releases the lock if the token still holds it, and returns the
-- outcome the answer is built from (so that, wrapped in the idempotency envelope, a retry of
-- the demo gets the same answer).
-- KEYS[1]  lock key
-- ARGV[1]  the holder's token
-- ARGV[2]  the fencing token of the grant
-- ARGV[3]  how long the work ran, milliseconds
-- Returns  {released (1|0), fencing_token, ran_ms}
local released = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  released = redis.call('DEL', KEYS[1])
end
return {released, tonumber(ARGV[2]), tonumber(ARGV[3])}
