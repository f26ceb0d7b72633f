-- Claim due timers: each claimed item is pushed back to now + retry_ms, so it fires again
-- if its claimer dies before finishing. KEYS[1] zset   ARGV now_ms, limit, retry_ms
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local retry = tonumber(ARGV[1]) + tonumber(ARGV[3])
for _, item in ipairs(due) do
  redis.call('ZADD', KEYS[1], retry, item)
end
return {string.format('%.0f', retry), due}
