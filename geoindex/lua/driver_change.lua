-- Change availability or products of, forget, or expire one driver on its own key,
-- bumping its version.
-- KEYS: driver hash
-- ARGV: op, arg, memory_ms, default_prods. op: '1' available or '0' busy, or 'prods' (arg:
--       the products, comma-joined, '-' for none): remembered for the driver's next fixes
--       even while it has no position; 'del' forget entirely; 'expire' drop the position
--       (keeping availability and products) if the last fix is older than arg;
--       'rehome' move the position to another region (arg: "<old region> <new region>",
--       hex) if it is still in the old one (a split region's migration, geoindex/split.py).
--       default_prods: the products of a driver that never had them set.
-- A change but 'del' makes the key's TTL at least memory_ms and a period of
-- driver_upsert.lua's, never shorter: its version now in this period, the driver's next
-- fixes in it set no TTL (driver_upsert.lua renews it at the first write of a period).
-- Returns {0} if there is no position (or, for expire, a fresh one; for rehome, one in
--         another region), else {1, ver, region, ts, lat, lng, score, avail, prods}
--         (region: the one before the change).
local cur = redis.call('HMGET', KEYS[1], 'ver', 'region', 'ts', 'lat', 'lng', 'score', 'avail',
  'prods')
local op = ARGV[1]
if op == 'expire' and not (cur[3] and tonumber(cur[3]) < tonumber(ARGV[2])) then return {0} end
if op == 'del' and not cur[1] then return {0} end
local old_region, new_region = string.match(op == 'rehome' and ARGV[2] or '', '^(%S+) (%S+)$')
if op == 'rehome' and not (cur[3] and cur[2] == old_region) then return {0} end
local t = redis.call('TIME')
local ver = math.max((tonumber(cur[1]) or 0) + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
local v = string.format('%.0f', ver)
local avail, prods = cur[7] or '1', cur[8] or ARGV[4] or '-'
local function keep()
  local ms = tonumber(ARGV[3]) + 10000000
  if redis.call('PTTL', KEYS[1]) < ms then redis.call('PEXPIRE', KEYS[1], ms) end
end
if op == 'del' then
  redis.call('DEL', KEYS[1])
elseif op == 'expire' then
  -- The sequence goes too: a driver app back after a silence may count from zero again.
  redis.call('HDEL', KEYS[1], 'lat', 'lng', 'ts', 'seq', 'score', 'region', 'prev')
  redis.call('HSET', KEYS[1], 'ver', v)
  keep()
elseif op == 'rehome' then
  redis.call('HSET', KEYS[1], 'region', new_region, 'prev', old_region, 'ver', v)
  keep()
elseif op == 'prods' then
  prods = ARGV[2]
  redis.call('HSET', KEYS[1], 'prods', prods, 'ver', v)
  keep()
else
  avail = op
  redis.call('HSET', KEYS[1], 'avail', op, 'ver', v)
  keep()
end
if not cur[3] then return {0} end
return {1, v, cur[2], cur[3], cur[4], cur[5], cur[6], avail, prods}
