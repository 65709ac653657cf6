-- Deletes one key (the scripted twin of `UNLINK key`, used when the request carries an
-- Idempotency-Key, so that a retry answers as the first call did instead of "not found").
-- KEYS[1]  the key
-- Returns  how many keys were removed (0 or 1); a 0 changed nothing and is not recorded
local removed = redis.call('UNLINK', KEYS[1])
if removed == 0 then idem_record = false end
return removed
