-- Write a ride over the version it was computed from (compare-and-set).
-- KEYS[1] dispatch:ride:{id}   ARGV expected_version ('0' = must not exist), new_version,
-- ride json, keep_ms (0 = keep while active; finished rides expire after keep_ms),
-- op (unique per call); with KEYS[2], a new ride's Idempotency-Key record in the same
-- slot (dispatch:idem:{<ride id>}, idem_finish.lua's), ARGV token, payload, ttl_ms: the
-- request's answer is stored in it with the ride, if the token still holds it
-- The same call sent again by the client library after a lost reply (redis-py re-sends
-- on a connection error mid-failover) gets the first call's answer: `op` names the last
-- call that changed this key.
local e = redis.call('HMGET', KEYS[1], 'v', 'op')
if e[2] == ARGV[5] then
  return 1
end
if ARGV[1] == '0' then
  if e[1] then return 0 end
elseif e[1] ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'j', ARGV[3], 'op', ARGV[5])
if ARGV[4] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
if KEYS[2] and redis.call('HGET', KEYS[2], 'token') == ARGV[6] then
  redis.call('HSET', KEYS[2], 'payload', ARGV[7])
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
end
return 1
