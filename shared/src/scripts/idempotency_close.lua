end
-- Idempotency envelope, second half: see idempotency_open.lua.
local idem_result = body()
-- nil would end the reply array early; false travels as a nil reply.
if idem_result == nil then idem_result = false end
if idem_record then
  redis.call('SET', idem_key, cmsgpack.pack({idem_fingerprint, idem_result}), 'PX', idem_ttl)
end
return {0, idem_result}
