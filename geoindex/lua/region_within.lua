-- Every fresh driver of one region within a radius, available or not (the ops map).
-- KEYS: meta (layout in region_apply.lua)
-- ARGV: lat, lng, radius_m, min_ts, limit
-- Returns the region's `limit` nearest (ties by id) as three strings, one row per driver
-- in the same order, so the caller decodes a region in a few bulk calls:
--   the meta values' fixed heads, pack("<dddd", ver, ts, lat, lng) + flag (33 bytes each),
--   the ids joined by spaces, the products fields (as in meta) joined by spaces.
-- The caller merges regions, drops duplicates by version and applies the exact radius.
local qlat, qlng = tonumber(ARGV[1]), tonumber(ARGV[2])
local radius, min_ts, limit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local R = 6371008.8
local RAD = math.pi / 180
local p1 = qlat * RAD
local cp1 = math.cos(p1)
local sin, cos, asin, sqrt, min = math.sin, math.cos, math.asin, math.sqrt, math.min
local unpack_d = struct.unpack

local found = {}
local meta = redis.call('HGETALL', KEYS[1])
for i = 1, #meta, 2 do
  local value = meta[i + 1]
  local flag = string.sub(value, -1)
  if flag ~= 't' then
    local _, ts, lat, lng = unpack_d('<dddd', value)
    if ts >= min_ts then
      -- The same haversine, in the same order, as geoindex.cells.haversine_m.
      local p2 = lat * RAD
      local sdp = sin((p2 - p1) / 2)
      local sdl = sin((lng - qlng) * RAD / 2)
      local a = sdp * sdp + cp1 * cos(p2) * sdl * sdl
      local d = 2 * R * asin(min(1.0, sqrt(a)))
      if d <= radius + 0.001 then
        found[#found + 1] = {d, meta[i], value}
      end
    end
  end
end
if #found > limit then
  table.sort(found, function(x, y)
    if x[1] ~= y[1] then return x[1] < y[1] end
    return x[2] < y[2]
  end)
end
local heads, ids, prods = {}, {}, {}
local sub = string.sub
for i = 1, min(#found, limit) do
  local value = found[i][3]
  heads[i] = sub(value, 1, 32) .. sub(value, -1)
  ids[i] = found[i][2]
  prods[i] = sub(value, 33, -2)
end
return {table.concat(heads), table.concat(ids, ' '), table.concat(prods, ' ')}
