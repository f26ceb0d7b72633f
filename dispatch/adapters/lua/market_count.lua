-- Count one rider asking for a quote or a ride in a cell, into the current bucket.
-- KEYS[1]   mk:{r<region>}:b:<bucket>  hash: <cell> distinct riders, <cell>|n requests,
--           <cell>|x no_driver, <cell>|e pickup ETA sum (s), <cell>|k ETAs counted
-- KEYS[2]   mk:{r<region>}:d  sorted set: "<cell>|<rider>" -> the bucket it was last
--           counted in as demand (one look-up for the whole window, where a set a bucket
--           took one a bucket)
-- ARGV cell, rider, outcome ("-" quote, "o" offered, "x" no driver), eta_s ("-" none),
--      keep_ms (the window plus one bucket), the current bucket, the window's oldest
-- Returns 1 if the rider counted as new demand, 0 if already counted in the window:
-- a rider asking a thousand times is one rider.
local cell = ARGV[1]
local pair = cell .. '|' .. ARGV[2]
local oldest = tonumber(ARGV[7])
local new = 1
local seen = redis.call('ZSCORE', KEYS[2], pair)
if seen and tonumber(seen) >= oldest then
  new = 0
end
if new == 1 then
  -- riders counted before the window are never read again
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. oldest)
  redis.call('ZADD', KEYS[2], ARGV[6], pair)
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
