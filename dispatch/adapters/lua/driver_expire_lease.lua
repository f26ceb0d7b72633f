-- Free a reservation whose lease ran out (its holder died between steps).
-- KEYS[1] dispatch:driver:{id}   ARGV now_ms, op (unique per call), keep_ms
-- The same call sent again by the client library after a lost reply (redis-py re-sends
-- on a connection error mid-failover) gets the first call's answer: `op` names the last
-- call that changed this key.
-- With ARGV[4] '1' and KEYS[2], the geo index's record of the driver (as in
-- driver_reserve.lua), the driver also comes back to the index's search in the same step:
-- the index's own change (index_change, put in front by redis_drivers.py) runs on KEYS[2]
-- with ARGV[5..8], and the reply is {1, <index_change's reply>} instead of 1.
local d = redis.call('HMGET', KEYS[1], 'status', 'lease', 'op')
if d[3] == ARGV[2] then
  return 1
end
if d[1] ~= 'reserved' or (tonumber(d[2]) or 0) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'available', 'ride', '', 'lease', '0', 'op', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] == '1' then
  local out = index_change({KEYS[2]}, {ARGV[5], ARGV[6], ARGV[7], ARGV[8]})
  table.insert(out, 1, 1)
  return out
end
return 1
