-- An airport queue: a driver joins at the back (kept where it is if already queued).
-- KEYS[1] dispatch:queue:{q:<area>}, a sorted set: driver -> place (entry time, ms)
-- KEYS[2] dispatch:queue:{q:<area>}:held, a hash: driver -> ride offered from the queue,
--         and 'r:<ride>' -> '<driver> <place>' for a ride accepted from it
-- ARGV driver_id, now_ms, max_len
-- Returns {changed (0|1), the queue head first}.
local changed = 0
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
  and redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  local place = tonumber(ARGV[2])
  if #last > 0 and tonumber(last[2]) >= place then place = tonumber(last[2]) + 1 end
  redis.call('ZADD', KEYS[1], place, ARGV[1])
  changed = 1
end
local out = {changed}
for _, d in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do out[#out + 1] = d end
return out
