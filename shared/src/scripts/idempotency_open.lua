-- Idempotency envelope, first half (the second is idempotency_close.lua). A route's script
-- runs as `body()` between the two halves, so its effect and the record of its outcome are
-- one atomic step: a retry with the same Idempotency-Key finds the record and gets the first
-- outcome back instead of acting again.
-- Appended after the route script's own KEYS and ARGV (and removed before it runs):
-- KEYS[#KEYS]    the record key (same hash slot as the route script's keys)
-- ARGV[#ARGV-2]  the request's fingerprint (hash of method, path, query, preconditions, body)
-- ARGV[#ARGV-1]  how long the record is kept, milliseconds
-- ARGV[#ARGV]    mode: `run` (the usual), `begin` (a request of several steps starts: record
--                that it is in progress, for ARGV[#ARGV-1] ms only) or `finish` (its last
--                step: run the body even over its own in-progress record, and record)
-- Returns  {1, recorded result} for a replay, {2, false} while the first request with this
--          key is still in progress, {0, result} after running the body;
--          error IDEMPOTENCY_MISMATCH when the key was used for a different request.
-- The body may set `idem_record = false` when it changed nothing (a lock held by someone
-- else): such an outcome is not recorded, so a retry tries again.
local idem_mode = table.remove(ARGV)
local idem_ttl = table.remove(ARGV)
local idem_fingerprint = table.remove(ARGV)
local idem_key = table.remove(KEYS)
local idem_stored = redis.call('GET', idem_key)
if idem_stored then
  local record = cmsgpack.unpack(idem_stored)
  if record[1] ~= idem_fingerprint then
    return redis.error_reply('IDEMPOTENCY_MISMATCH this Idempotency-Key was used for a different request')
  end
  -- record[3]: in progress (written by `begin`)
  if not record[3] then
    return {1, record[2]}
  end
  if idem_mode ~= 'finish' then
    return {2, false}
  end
end
local idem_record = true
local function body()
