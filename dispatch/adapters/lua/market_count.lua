-- Count one rider asking for a quote or a ride in a cell, into the current bucket.
-- KEYS[1]   mk:{r<region>}:b:<bucket>  hash: <cell> distinct riders, <cell>|n requests,
--           <cell>|x no_driver, <cell>|e pickup ETA sum (s), <cell>|k ETAs counted
-- KEYS[2..] mk:{r<region>}:c:<bucket>  sets of "<cell>|<rider>" counted as demand: the
--           current bucket's first, then the window's older ones
-- ARGV cell, rider, outcome ("-" quote, "o" offered, "x" no driver), eta_s ("-" none),
--      keep_ms (the window plus one bucket)
-- Returns 1 if the rider counted as new demand, 0 if already counted in the window:
-- a rider asking a thousand times is one rider.
local cell = ARGV[1]
local pair = cell .. '|' .. ARGV[2]
local new = 1
for i = 2, #KEYS do
  if redis.call('SISMEMBER', KEYS[i], pair) == 1 then
    new = 0
    break
  end
end
if new == 1 then
  redis.call('SADD', KEYS[2], pair)
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  redis.call('HINCRBY', KEYS[1], cell, 1)
end
if ARGV[3] ~= '-' then
  redis.call('HINCRBY', KEYS[1], cell .. '|n', 1)
  if ARGV[3] == 'x' then
    redis.call('HINCRBY', KEYS[1], cell .. '|x', 1)
  end
  if ARGV[4] ~= '-' then
    redis.call('HINCRBY', KEYS[1], cell .. '|e', ARGV[4])
    redis.call('HINCRBY', KEYS[1], cell .. '|k', 1)
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return new
