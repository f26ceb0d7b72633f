-- The driver accepted: reserved -> on_ride, only for the current ride and token.
-- KEYS[1] dispatch:driver:{id}   ARGV ride_id, fence, now_ms, keep_ms
local d = redis.call('HMGET', KEYS[1], 'status', 'ride', 'fence', 'lease')
if d[2] ~= ARGV[1] or d[3] ~= ARGV[2] then
  return 0
end
if d[1] == 'on_ride' then
  return 1
end
if d[1] ~= 'reserved' or (tonumber(d[4]) or 0) <= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'on_ride', 'lease', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
