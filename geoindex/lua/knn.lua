-- One region's share of a k-nearest step (geoindex/search.py says how a step is planned).
-- KEYS: geo, or geo:<product> for one product's drivers (score = res-15 cell,
--       member = pack('<ddd', lat, lng, ts) .. id; region_apply.lua)
-- ARGV: lat, lng, k, radius_m, min_ts, cells: packed little-endian doubles, three per
--       cell in scan order: lo score, hi score, bound on every driver in this cell and
--       the later ones. radius_m may be less than the search's radius: a k-th distance
--       already found elsewhere (geoindex/knn.py), which no driver of the answer exceeds.
-- Returns the members of the region's k best within radius_m (plus ties within 1 mm).
local qlat, qlng = tonumber(ARGV[1]), tonumber(ARGV[2])
local k, radius, min_ts = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cells = ARGV[6]

local R = 6371008.8
local RAD = math.pi / 180
local p1 = qlat * RAD
local cp1 = math.cos(p1)
local sin, cos, asin, sqrt, min, abs = math.sin, math.cos, math.asin, math.sqrt, math.min, math.abs
local unpack_d = struct.unpack
local fmt = string.format

local best_d, best_m, n = {}, {}, 0  -- sorted by distance
local worst = radius                  -- nothing farther than this can enter

local function insert(d, m)
  local i = n + 1
  while i > 1 and best_d[i - 1] > d do
    best_d[i], best_m[i] = best_d[i - 1], best_m[i - 1]
    i = i - 1
  end
  best_d[i], best_m[i] = d, m
  n = n + 1
  if n >= k then
    while n > k and best_d[n] > best_d[k] + 0.001 do
      best_d[n], best_m[n] = nil, nil
      n = n - 1
    end
    worst = min(radius, best_d[k] + 0.001)
  end
end

local pos = 1
while pos < #cells do
  local lo, hi, bound
  lo, hi, bound, pos = unpack_d('<ddd', cells, pos)
  if bound > worst or (n >= k and best_d[k] < bound) then break end
  local members = redis.call('ZRANGEBYSCORE', KEYS[1], fmt('%.0f', lo), fmt('%.0f', hi))
  for i = 1, #members do
    local m = members[i]
    local lat, lng, ts = unpack_d('<ddd', m)
    -- A great circle is never shorter than its change in latitude: a trig-free reject.
    -- Due north or south the two are equal but for rounding, and this product can come
    -- out a float step above the haversine of a driver at exactly the radius: the reject
    -- allows a micrometre, and the haversine below decides.
    if ts >= min_ts and R * abs(lat - qlat) * RAD <= worst + 1e-6 then
      local sdp = sin((lat * RAD - p1) / 2)
      local sdl = sin(((lng - qlng) * RAD) / 2)
      local a = sdp * sdp + cp1 * cos(lat * RAD) * sdl * sdl
      local d = 2 * R * asin(min(1, sqrt(a)))
      if d <= worst then insert(d, m) end
    end
  end
end

return best_m
