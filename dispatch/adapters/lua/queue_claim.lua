-- Take the first queued driver not holding an offer from the queue (nor excluded) for a
-- ride: it stays in its place, marked held, until the offer ends. Two callers never get
-- the same driver, and never one behind a free one.
-- KEYS[1] the queue's sorted set, KEYS[2] its held hash (see queue_join.lua)
-- ARGV ride_id, then excluded driver ids (those who declined this ride)
-- Returns the driver id, or false.
local skip = {}
for i = 2, #ARGV do skip[ARGV[i]] = true end
for _, d in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not skip[d] and redis.call('HEXISTS', KEYS[2], d) == 0 then
    redis.call('HSET', KEYS[2], d, ARGV[1])
    return d
  end
end
return false
