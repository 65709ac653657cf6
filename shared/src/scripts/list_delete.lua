-- Deletes a list, saying how long it was (UNLINK alone answers how many keys it removed).
-- KEYS[1]  the list
-- Returns  its length before
local n = redis.call('LLEN', KEYS[1])
redis.call('UNLINK', KEYS[1])
return n
