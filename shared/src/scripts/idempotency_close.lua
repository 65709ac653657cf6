end
-- Idempotency envelope, second half: see idempotency_open.lua.
local idem_result = body()
-- nil would end the reply array early; false travels as a nil reply.
if idem_result == nil then idem_result = false end
if idem_mode == 'begin' then
  redis.call('SET', idem_key, cmsgpack.pack({idem_fingerprint, false, true}), 'PX', idem_ttl)
elseif idem_record then
  redis.call('SET', idem_key, cmsgpack.pack({idem_fingerprint, idem_result}), 'PX', idem_ttl)
elseif idem_mode == 'finish' then
  -- A request of several steps that changed nothing in the end: forget it entirely.
  redis.call('DEL', idem_key)
end
return {0, idem_result}
