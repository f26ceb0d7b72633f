-- Apply driver changes to one region. Each change carries the driver's version (set by
-- driver_*.lua on the driver's own key); a change older than what the region holds for
-- that driver is ignored, so changes may arrive in any order and the newest always wins.
-- A driver leaving the region leaves a tombstone holding its version until the sweep, so
-- a late, older add cannot resurrect it (one arriving after the sweep dropped the tombstone
-- is older than the TTL: never returned, and swept again).
-- An available driver is in geo and in geo:<product> for each product it serves; a change
-- takes it out of every set its previous state put it in, in this one call, so a driver
-- changing vehicle is never found under a product it no longer serves.
-- KEYS: geo (available: member = pack('<ddd', lat, lng, ts) .. id),
--       meta (id -> pack('<dddd', ver, ts, lat, lng) .. prods .. flag; prods comma-joined,
--             '-' or '' for none; flag a available, b busy, t gone),
--       seen (id -> ts, for the sweep)
--       The product sets geo:<product> share geo's hash tag, so its slot: the set of
--       products is open-ended, hence named here rather than listed in KEYS.
-- ARGV: one change each: "flag id ver ts score lat lng prods"
local pack, unpack_d = struct.pack, struct.unpack
local gmatch, sub = string.gmatch, string.sub

local function each_set(prods, fn)
  fn(KEYS[1])
  for p in gmatch(prods, '[^,%-][^,]*') do fn(KEYS[1] .. ':' .. p) end
end

local applied = 0
for i = 1, #ARGV do
  local flag, id, sver, sts, score, slat, slng, prods =
    string.match(ARGV[i], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  local ver, ts = tonumber(sver), tonumber(sts)
  local cur = redis.call('HGET', KEYS[2], id)
  local cur_ver, cur_ts, cur_lat, cur_lng = -1, 0, 0, 0
  if cur then cur_ver, cur_ts, cur_lat, cur_lng = unpack_d('<dddd', cur) end
  if ver > cur_ver then
    if cur and sub(cur, -1) == 'a' then
      local old = pack('<ddd', cur_lat, cur_lng, cur_ts) .. id
      each_set(sub(cur, 33, -2), function(key) redis.call('ZREM', key, old) end)
    end
    local lat, lng = tonumber(slat), tonumber(slng)
    redis.call('HSET', KEYS[2], id, pack('<dddd', ver, ts, lat, lng) .. prods .. flag)
    if flag == 'a' then
      local new = pack('<ddd', lat, lng, ts) .. id
      each_set(prods, function(key) redis.call('ZADD', key, score, new) end)
    end
    redis.call('ZADD', KEYS[3], ts, id)
    applied = applied + 1
  end
end
return applied
