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
-- Changes are read and written in chunks: one HMGET for a chunk's drivers, then one
-- variadic call per key for its writes (a call from Lua costs about as much as the
-- command itself). A driver met twice in a chunk is read again, after its pending
-- change is written, so its second change sees what its first one wrote.
local pack, unpack_d = struct.pack, struct.unpack
local gmatch, sub, match, unpack = string.gmatch, string.sub, string.match, unpack
local CHUNK = 1000  -- keeps every unpack far below Lua's stack limit

local rem, add, meta, seen, pending, n = {}, {}, {}, {}, {}, 0

local function queue(sets, key, a, b)
  local t = sets[key]
  if not t then
    t = {}
    sets[key] = t
  end
  t[#t + 1] = a
  if b then t[#t + 1] = b end
end

local function flush()
  if n > 0 then
    for key, members in pairs(rem) do redis.call('ZREM', key, unpack(members)) end
    for key, entries in pairs(add) do redis.call('ZADD', key, unpack(entries)) end
    redis.call('HSET', KEYS[2], unpack(meta))
    redis.call('ZADD', KEYS[3], unpack(seen))
  end
  rem, add, meta, seen, pending, n = {}, {}, {}, {}, {}, 0
end

local applied = 0
for first = 1, #ARGV, CHUNK do
  local last = math.min(first + CHUNK - 1, #ARGV)
  local ids = {}
  for i = first, last do ids[i - first + 1] = match(ARGV[i], '^%S+ (%S+) ') end
  local stored, met = redis.call('HMGET', KEYS[2], unpack(ids)), {}
  for i = first, last do
    local flag, id, sver, sts, score, slat, slng, prods =
      match(ARGV[i], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
    local cur = stored[i - first + 1]
    if met[id] then  -- what was read for the chunk is older than its first change
      if pending[id] then flush() end
      cur = redis.call('HGET', KEYS[2], id)
    end
    met[id] = true
    local ver, ts = tonumber(sver), tonumber(sts)
    local cur_ver, cur_ts, cur_lat, cur_lng = -1, 0, 0, 0
    if cur then cur_ver, cur_ts, cur_lat, cur_lng = unpack_d('<dddd', cur) end
    if ver > cur_ver then
      if cur and sub(cur, -1) == 'a' then
        local old = pack('<ddd', cur_lat, cur_lng, cur_ts) .. id
        queue(rem, KEYS[1], old)
        for p in gmatch(sub(cur, 33, -2), '[^,%-][^,]*') do queue(rem, KEYS[1] .. ':' .. p, old) end
      end
      local lat, lng = tonumber(slat), tonumber(slng)
      if flag == 'a' then
        local new = pack('<ddd', lat, lng, ts) .. id
        queue(add, KEYS[1], score, new)
        for p in gmatch(prods, '[^,%-][^,]*') do queue(add, KEYS[1] .. ':' .. p, score, new) end
      end
      n = n + 1
      meta[2 * n - 1], meta[2 * n] = id, pack('<dddd', ver, ts, lat, lng) .. prods .. flag
      seen[2 * n - 1], seen[2 * n] = sts, id  -- as sent: no number to format again
      pending[id] = true
      applied = applied + 1
    end
  end
  flush()
end
return applied
