-- Take or renew the lease on one region's surge job.
-- KEYS[1] mk:{r<region>}:lease  string "<fence> <holder>", expiring with the lease
-- KEYS[2] mk:{r<region>}:fence  counter of fencing tokens
-- ARGV holder, ttl_ms, fence_keep_ms, resume (the fence this holder last held, or 0)
-- Returns the fence: the holder's own when renewed, a new, larger one when taken;
-- 0 while another holder's lease lives. A lapsed lease comes back with the same fence
-- when `resume` is still the last token issued: no one has held the region since, so
-- what the holder did under it stays fenced (a round slower than the lease is not lost).
local cur = redis.call('GET', KEYS[1])
if cur then
  local sp = string.find(cur, ' ', 1, true)
  if string.sub(cur, sp + 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(cur, 1, sp - 1))
  end
  return 0
end
if ARGV[4] ~= '0' and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('SET', KEYS[1], ARGV[4] .. ' ' .. ARGV[1], 'PX', ARGV[2])
  return tonumber(ARGV[4])
end
local fence = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], fence .. ' ' .. ARGV[1], 'PX', ARGV[2])
return fence
