-- Claim an idempotency key, or report what is there.
-- KEYS[1] dispatch:idem:{hash}   ARGV fingerprint, token, lock_ms
-- Returns {'new'} | {'pending'} | {'mismatch'} | {'done', payload}
local e = redis.call('HMGET', KEYS[1], 'fp', 'payload', 'token')
if not e[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'token', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'new'}
end
if e[1] ~= ARGV[1] then return {'mismatch'} end
if not e[2] then
  -- Our own claim, sent again by the client library after its reply was lost (redis-py
  -- re-sends on a connection error mid-failover): it is still ours, not someone else's.
  if e[3] == ARGV[2] then return {'new'} end
  return {'pending'}
end
return {'done', e[2]}
