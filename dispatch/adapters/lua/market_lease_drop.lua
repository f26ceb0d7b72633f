-- Give up the lease on a region's surge job, if it is still this holder's.
-- KEYS[1] mk:{r<region>}:lease
-- ARGV holder, fence
-- Returns 1 if dropped, 0 if the lease was not (any more) this holder's.
if redis.call('GET', KEYS[1]) == ARGV[2] .. ' ' .. ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
