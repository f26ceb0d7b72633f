-- A driver leaves an airport queue (out of the area, offline, on a ride elsewhere).
-- KEYS[1] the queue's sorted set, KEYS[2] its held hash (see queue_join.lua)
-- ARGV driver_id
-- Returns {changed (0|1), the queue head first}.
local changed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local out = {changed}
for _, d in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do out[#out + 1] = d end
return out
