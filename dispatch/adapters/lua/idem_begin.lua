-- Claim an idempotency key, or report what is there.
-- KEYS[1] dispatch:idem:{hash}   ARGV fingerprint, token, lock_ms
-- Returns {'new'} | {'pending'} | {'mismatch'} | {'done', payload}
local e = redis.call('HMGET', KEYS[1], 'fp', 'payload')
if not e[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'token', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'new'}
end
if e[1] ~= ARGV[1] then return {'mismatch'} end
if not e[2] then return {'pending'} end
return {'done', e[2]}
