-- Free a reservation whose lease ran out (its holder died between steps).
-- KEYS[1] dispatch:driver:{id}   ARGV now_ms
local d = redis.call('HMGET', KEYS[1], 'status', 'lease')
if d[1] ~= 'reserved' or (tonumber(d[2]) or 0) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'available', 'ride', '', 'lease', '0')
redis.call('PEXPIRE', KEYS[1], 604800000)
return 1
