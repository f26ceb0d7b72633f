-- Claim an idempotency key, or report what is there.
-- KEYS[1] dispatch:idem:{tag}   KEYS[2] (optional) the ride the key's request stores, in
-- the same slot (dispatch:ride:{tag}): its json is returned beside the claim, so the
-- caller needs no read of its own to find a ride an earlier try stored.
-- ARGV fingerprint, token, lock_ms
-- Returns {'new'} | {'pending'} | {'mismatch'} | {'done', payload}; with KEYS[2], 'new'
-- and 'done' also the ride's json after them (nil when not stored).
local function with_ride(reply)
  if KEYS[2] then table.insert(reply, redis.call('HGET', KEYS[2], 'j')) end
  return reply
end
local e = redis.call('HMGET', KEYS[1], 'fp', 'payload', 'token')
if not e[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'token', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return with_ride({'new'})
end
if e[1] ~= ARGV[1] then return {'mismatch'} end
if not e[2] then
  -- Our own claim, sent again by the client library after its reply was lost (redis-py
  -- re-sends on a connection error mid-failover): it is still ours, not someone else's.
  if e[3] == ARGV[2] then return with_ride({'new'}) end
  return {'pending'}
end
return with_ride({'done', e[2]})
