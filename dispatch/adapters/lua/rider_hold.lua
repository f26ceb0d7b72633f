-- Count a ride among its rider's active rides, up to a cap.
-- KEYS[1] dispatch:rider:{id}:rides, a sorted set: ride id -> when it was counted (ms)
-- ARGV ride_id, now_ms, cap, keep_ms
-- Returns {} when counted (or counted before), else the counted rides {id, at, id, at, ...}.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return {}
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {}
