-- Count fresh available drivers in score ranges of one region (the supply heatmap), in
-- one or more of its sets: every driver's, or one product's each.
-- KEYS: geo, or geo:<product> (layout in region_apply.lua), one or more of one region
-- ARGV: min_ts, then the ranges as one binary string of little-endian doubles
--       (lo, hi per range; scores are below 2^52, exact in a double): one argument,
--       which a caller naming thousands of cells packs with numpy, not per cell.
-- Returns one count per range, for each key in turn (the first key's ranges first).
local unpack_d, fmt = struct.unpack, string.format
local min_ts = tonumber(ARGV[1])
local packed = ARGV[2]
local bounds = {}
for pos = 1, #packed - 15, 16 do
  local lo, hi = unpack_d('<dd', packed, pos)
  bounds[#bounds + 1] = fmt('%.0f', lo)  -- Lua would print a number with 14 digits
  bounds[#bounds + 1] = fmt('%.0f', hi)
end
local out = {}
for k = 1, #KEYS do
  for i = 1, #bounds - 1, 2 do
    local members = redis.call('ZRANGEBYSCORE', KEYS[k], bounds[i], bounds[i + 1])
    local n = 0
    for j = 1, #members do
      local _, _, ts = unpack_d('<ddd', members[j])
      if ts >= min_ts then n = n + 1 end
    end
    out[#out + 1] = n
  end
end
return out
