-- A driver sets itself available or offline, unless it holds a live reservation or rides.
-- KEYS[1] dispatch:driver:{id}   ARGV status, now_ms, keep_ms
local d = redis.call('HMGET', KEYS[1], 'status', 'ride', 'lease')
local status = d[1] or 'available'
local busy = status == 'on_ride' or (status == 'reserved' and (tonumber(d[3]) or 0) > tonumber(ARGV[2]))
if busy then
  return {0, status, d[2] or ''}
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'ride', '', 'lease', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1}
