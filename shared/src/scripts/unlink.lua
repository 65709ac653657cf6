-- Deletes one key (the scripted twin of `UNLINK key`, used when the request carries an
-- Idempotency-Key, so that a retry answers as the first call did instead of "not found").
-- KEYS[1]  the key
-- Returns  how many keys were removed (0 or 1)
return redis.call('UNLINK', KEYS[1])
