-- Note the drivers a matching window chose, before it reserves them, if the window's
-- lease is still its holder's; renew the lease.
-- KEYS[1] pq:{r<region>}:lease  string "<fence> <holder>" (lua/market_lease.lua)
-- KEYS[2] pq:{r<region>}:held   hash: ride id -> "<fence> <driver id>"
-- ARGV holder, fence, ttl_ms, keep_ms, then ride id and driver id pairs
-- Returns 1 (lease renewed, pairs noted) or 0, writing nothing, when the lease is not
-- this holder's at this fence: once a successor holds the region, the holds it reads are
-- all an older holder will ever make.
if redis.call('GET', KEYS[1]) ~= ARGV[2] .. ' ' .. ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[2] .. ' ' .. ARGV[i + 1])
end
if #ARGV > 4 then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return 1
