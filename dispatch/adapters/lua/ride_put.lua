-- Write a ride over the version it was computed from (compare-and-set).
-- KEYS[1] dispatch:ride:{id}   ARGV expected_version ('0' = must not exist), new_version,
-- ride json, keep_ms (0 = keep while active; finished rides expire after keep_ms)
local v = redis.call('HGET', KEYS[1], 'v')
if ARGV[1] == '0' then
  if v then return 0 end
elseif v ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'j', ARGV[3])
if ARGV[4] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
