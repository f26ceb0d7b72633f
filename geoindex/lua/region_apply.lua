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
--       seen (id -> ts, for the sweep),
--       then geo:<product> for each product set the caller expects the call to touch
-- ARGV: one change each: "flag id ver ts score lat lng prods"
-- Returns the number of changes applied; or, having written nothing, {'need', product,
-- ...}: product sets the changes would touch (the drivers' stored or new products) that
-- KEYS does not declare. Redis Cluster refuses a key not declared once its slot starts
-- to migrate, in the middle of a script, after its earlier writes; so every key is
-- checked before the first write, and the caller calls again with the sets declared.
-- Every driver's stored entry is read first (one HMGET per chunk of drivers), then the
-- changes are written in chunks: one variadic call per key (a call from Lua costs about
-- as much as the command itself). A driver met twice is read again, after its pending
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

local declared, missing, need = {}, {}, {'need'}
for i = 4, #KEYS do declared[KEYS[i]] = true end
local function check(prods)
  for p in gmatch(prods, '[^,%-][^,]*') do
    if not declared[KEYS[1] .. ':' .. p] and not missing[p] then
      missing[p] = true
      need[#need + 1] = p
    end
  end
end

local stored_chunks = {}
for first = 1, #ARGV, CHUNK do
  local ids = {}
  for i = first, math.min(first + CHUNK - 1, #ARGV) do
    local flag, id, prods = match(ARGV[i], '^(%S+) (%S+) .* (%S+)$')
    ids[i - first + 1] = id
    if flag == 'a' then check(prods) end
  end
  local stored = redis.call('HMGET', KEYS[2], unpack(ids))
  for _, cur in ipairs(stored) do
    if cur and sub(cur, -1) == 'a' then check(sub(cur, 33, -2)) end
  end
  stored_chunks[#stored_chunks + 1] = stored
end
if #need > 1 then return need end

local applied, met = 0, {}
for first = 1, #ARGV, CHUNK do
  local last = math.min(first + CHUNK - 1, #ARGV)
  local stored = stored_chunks[(first - 1) / CHUNK + 1]
  for i = first, last do
    local flag, id, sver, sts, score, slat, slng, prods =
      match(ARGV[i], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
    local cur = stored[i - first + 1]
    if met[id] then  -- what was read first is older than its first change
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
