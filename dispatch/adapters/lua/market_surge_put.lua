-- Replace one region's surge, only under the lease and fence it was computed under.
-- KEYS[1] mk:{r<region>}:lease  string "<fence> <holder>"
-- KEYS[2] mk:{r<region>}:surge  hash: cell -> multiplier riders are quoted
-- KEYS[3] mk:{r<region>}:calc   hash: cell -> multiplier the recompute reached (the
--         hysteresis state, before pins and the switch)
-- ARGV holder, fence, ttl_ms, n (pairs of the surge hash), then n cell/value pairs for
--      KEYS[2], then cell/value pairs for KEYS[3]. Cells at 1.0 are left out.
-- Returns 1 if written, 0 (nothing written) if the lease is not this holder's fence:
-- a holder that paused past its lease cannot overwrite the one that took over.
if redis.call('GET', KEYS[1]) ~= ARGV[2] .. ' ' .. ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3])
local n = tonumber(ARGV[4])
local function put(key, first, last)
  -- HSET in chunks: unpack() of tens of thousands of values overflows Lua's stack.
  local i = first
  while i <= last do
    local j = math.min(i + 999, last)
    redis.call('HSET', key, unpack(ARGV, i, j))
    i = j + 1
  end
  if last >= first then
    redis.call('PEXPIRE', key, ARGV[3])
  end
end
put(KEYS[2], 5, 4 + 2 * n)
put(KEYS[3], 5 + 2 * n, #ARGV)
return 1
