-- Free a driver held for a ride, only with the current ride id and token.
-- KEYS[1] dispatch:driver:{id}   ARGV ride_id, fence, op (unique per call), keep_ms
-- The same call sent again by the client library after a lost reply (redis-py re-sends
-- on a connection error mid-failover) gets the first call's answer: `op` names the last
-- call that changed this key.
local d = redis.call('HMGET', KEYS[1], 'status', 'ride', 'fence', 'op')
if d[4] == ARGV[3] then
  return 1
end
if (d[1] ~= 'reserved' and d[1] ~= 'on_ride') or d[2] ~= ARGV[1] or d[3] ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'available', 'ride', '', 'lease', '0', 'op', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
