-- Count fresh available drivers in score ranges of one region (the supply heatmap).
-- KEYS: geo (layout in region_apply.lua)   ARGV: min_ts, then lo, hi pairs.
-- Returns one count per range.
local min_ts = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local members = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[i], ARGV[i + 1])
  local n = 0
  for j = 1, #members do
    local _, _, ts = struct.unpack('<ddd', members[j])
    if ts >= min_ts then n = n + 1 end
  end
  out[#out + 1] = n
end
return out
