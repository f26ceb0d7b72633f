-- An offer from an airport queue ended. ARGV[3] says how:
--   'back'     declined or timed out: the driver goes to the back of the queue
--   'served'   accepted: the driver leaves, its place kept against a rider's cancel
--   'gone'     its reservation was refused (offline, stale): the driver leaves
--   'restore'  the rider cancelled the accepted ride: the driver gets the head back
--   'forget'   the accepted ride ended otherwise: its kept place goes
--   'keep'     the rider cancelled the offered ride: the driver keeps its place
-- KEYS[1] the queue's sorted set, KEYS[2] its held hash (see queue_join.lua)
-- ARGV driver_id, ride_id, how, now_ms, keep_ms
-- Returns {changed (0|1), the queue head first}.
local d, ride, how = ARGV[1], ARGV[2], ARGV[3]
local changed = 0
if how == 'restore' then
  local served = redis.call('HGET', KEYS[2], 'r:' .. ride)
  if served then
    redis.call('HDEL', KEYS[2], 'r:' .. ride)
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    local place = tonumber(ARGV[4])
    if #first > 0 then place = math.min(place, tonumber(first[2]) - 1) end
    redis.call('ZADD', KEYS[1], place, d)
    changed = 1
  end
elseif how == 'forget' then
  redis.call('HDEL', KEYS[2], 'r:' .. ride)
elseif redis.call('HGET', KEYS[2], d) == ride then
  redis.call('HDEL', KEYS[2], d)
  changed = 1
  if how == 'keep' then
    changed = 0  -- the offer went (the rider cancelled it): the place stays
  elseif how == 'back' then
    local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
    local place = tonumber(ARGV[4])
    if #last > 0 and tonumber(last[2]) >= place then place = tonumber(last[2]) + 1 end
    redis.call('ZADD', KEYS[1], place, d)
  else
    redis.call('ZREM', KEYS[1], d)
    if how == 'served' then
      redis.call('HSET', KEYS[2], 'r:' .. ride, d)
    end
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local out = {changed}
for _, x in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do out[#out + 1] = x end
return out
