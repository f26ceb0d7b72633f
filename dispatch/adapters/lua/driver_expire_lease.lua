-- Free a reservation whose lease ran out (its holder died between steps).
-- KEYS[1] dispatch:driver:{id}   ARGV now_ms, op (unique per call), keep_ms
-- The same call sent again by the client library after a lost reply (redis-py re-sends
-- on a connection error mid-failover) gets the first call's answer: `op` names the last
-- call that changed this key.
local d = redis.call('HMGET', KEYS[1], 'status', 'lease', 'op')
if d[3] == ARGV[2] then
  return 1
end
if d[1] ~= 'reserved' or (tonumber(d[2]) or 0) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'available', 'ride', '', 'lease', '0', 'op', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
