-- Count fresh available drivers in score ranges of one region (the supply heatmap), in
-- one or more of its sets: every driver's, or one product's each.
-- KEYS: geo, or geo:<product> (layout in region_apply.lua), one or more of one region
-- ARGV: min_ts, then the ranges as one string "lo hi lo hi ..." (one argument rather
--       than two per cell: a caller naming thousands of cells packs one string).
-- Returns one count per range, for each key in turn (the first key's ranges first).
local min_ts = tonumber(ARGV[1])
local bounds = {}
for bound in string.gmatch(ARGV[2], '%S+') do bounds[#bounds + 1] = bound end
local out = {}
for k = 1, #KEYS do
  for i = 1, #bounds - 1, 2 do
    local members = redis.call('ZRANGEBYSCORE', KEYS[k], bounds[i], bounds[i + 1])
    local n = 0
    for j = 1, #members do
      local _, _, ts = struct.unpack('<ddd', members[j])
      if ts >= min_ts then n = n + 1 end
    end
    out[#out + 1] = n
  end
end
return out
