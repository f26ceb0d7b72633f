-- Replace one region's surge, only under the lease and fence it was computed under.
-- KEYS[1] mk:{r<region>}:lease  string "<fence> <holder>"
-- KEYS[2] mk:{r<region>}:surge  hash: "<cell>|<product>" -> multiplier the product's
--         riders are quoted, "<cell>" -> the highest of them
-- KEYS[3] mk:{r<region>}:calc   string: JSON {product: {cell: multiplier}} the recompute
--         reached (the hysteresis state, before pins and the switch)
-- KEYS[4] mk:{r<region>}:token  string: the token naming this write (optional), which
--         market_surge_patch.lua checks before changing the surge
-- ARGV holder, fence, ttl_ms, the surge as a JSON object {"<field>": "<multiplier>"}
--      (strings: written as given), the state as JSON, the write's token ("": none).
--      Cells at 1.0 are left out.
-- Returns 1 if written, 0 (nothing written) if the lease is not this holder's fence:
-- a holder that paused past its lease cannot overwrite the one that took over.
if redis.call('GET', KEYS[1]) ~= ARGV[2] .. ' ' .. ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
local flat = {}
for cell, m in pairs(cjson.decode(ARGV[4])) do
  flat[#flat + 1] = cell
  flat[#flat + 1] = m
end
-- HSET in chunks: unpack() of tens of thousands of values overflows Lua's stack.
for i = 1, #flat, 1000 do
  redis.call('HSET', KEYS[2], unpack(flat, i, math.min(i + 999, #flat)))
end
if #flat > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[3])
if KEYS[4] then
  if ARGV[6] and ARGV[6] ~= '' then
    redis.call('SET', KEYS[4], ARGV[6], 'PX', ARGV[3])
  else
    redis.call('DEL', KEYS[4])
  end
end
return 1
