-- Remove a handled timer unless someone rescheduled it since we claimed it.
-- KEYS[1] zset   ARGV item, claimed_score
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
