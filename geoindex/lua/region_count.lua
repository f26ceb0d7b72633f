-- Count fresh available drivers in score ranges of one region (the supply heatmap).
-- KEYS: geo (layout in region_apply.lua)
-- ARGV: min_ts, then the ranges as one string "lo hi lo hi ..." (one argument rather
--       than two per cell: a caller naming thousands of cells packs one string).
-- Returns one count per range.
local min_ts = tonumber(ARGV[1])
local out = {}
local lo = nil
for bound in string.gmatch(ARGV[2], '%S+') do
  if lo == nil then
    lo = bound
  else
    local members = redis.call('ZRANGEBYSCORE', KEYS[1], lo, bound)
    local n = 0
    for j = 1, #members do
      local _, _, ts = struct.unpack('<ddd', members[j])
      if ts >= min_ts then n = n + 1 end
    end
    out[#out + 1] = n
    lo = nil
  end
end
return out
