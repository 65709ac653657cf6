-- Returns its arguments: wrapped in the idempotency envelope, it records the outcome of a
-- step that is not one script (the lock demo's hold, the prefix reset), or with no
-- arguments looks a record up without recording anything.
-- ARGV[1..]  the outcome to record (none: look up only)
-- Returns  {ARGV...}
if #ARGV == 0 then idem_record = false end
return ARGV
