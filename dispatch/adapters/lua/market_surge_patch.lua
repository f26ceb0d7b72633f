-- Change one region's surge where it moved, only under the lease and fence it was
-- computed under, and only on top of the write the caller made last (named by a token):
-- the same hash and state market_surge_put.lua leaves, without rewriting every cell.
-- KEYS[1] mk:{r<region>}:lease  string "<fence> <holder>"
-- KEYS[2] mk:{r<region>}:surge  hash (market_surge_put.lua)
-- KEYS[3] mk:{r<region>}:calc   string: JSON state (market_surge_put.lua)
-- KEYS[4] mk:{r<region>}:token  string: the token of the write the surge holds
-- ARGV holder, fence, ttl_ms, the token the caller last wrote, this write's token,
--      the fields back at 1.0 as a JSON array, the fields set as a JSON object
--      {"<field>": "<multiplier>"} (strings: written as given), the state as JSON or ""
--      (unchanged: its expiry renewed).
-- Returns 1 if written; 0 (nothing written) if the lease is not this holder's fence;
-- 2 (nothing written) if the surge is not the caller's last write (lost, expired, or
-- another's): the caller writes it in full.
if redis.call('GET', KEYS[1]) ~= ARGV[2] .. ' ' .. ARGV[1] then
  return 0
end
if redis.call('GET', KEYS[4]) ~= ARGV[4] then
  return 2
end
local gone = cjson.decode(ARGV[6])
-- HDEL and HSET in chunks: unpack() of tens of thousands of values overflows Lua's stack.
for i = 1, #gone, 1000 do
  redis.call('HDEL', KEYS[2], unpack(gone, i, math.min(i + 999, #gone)))
end
local flat = {}
for field, m in pairs(cjson.decode(ARGV[7])) do
  flat[#flat + 1] = field
  flat[#flat + 1] = m
end
for i = 1, #flat, 1000 do
  redis.call('HSET', KEYS[2], unpack(flat, i, math.min(i + 999, #flat)))
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])  -- 0 if the hash is empty: nothing to expire
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[3], ARGV[8], 'PX', ARGV[3])
else
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[3])
return 1
