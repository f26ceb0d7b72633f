-- Apply driver changes to regions. Each change carries the driver's version (set by
-- driver_*.lua on the driver's own key); a change older than what the region holds for
-- that driver is ignored, so changes may arrive in any order and the newest always wins.
-- A driver leaving the region leaves a tombstone holding its version until the sweep, so
-- a late, older add cannot resurrect it (one arriving after the sweep dropped the tombstone
-- is older than the TTL: never returned, and swept again).
-- An available driver is in geo and in geo:<product> for each product it serves; a change
-- takes it out of every set its previous state put it in, in this one call, so a driver
-- changing vehicle is never found under a product it no longer serves.
-- A region's keys: geo (available: member = pack('<ddd', lat, lng, ts) .. id),
--       meta (id -> pack('<dddd', ver, ts, lat, lng) .. prods .. flag; prods comma-joined,
--             '-' or '' for none; flag a available, b busy, t gone),
--       seen (id -> ts, for the sweep), named as geo is with meta and seen for geo,
--       and geo:<product> for each product.
-- A call writes one region, its keys declared (the call goes to the region's slot), or
-- several regions that one node holds, none declared: a script may touch keys of any
-- slot of its node (Redis Cluster refuses only declared keys of several slots), and one
-- call instead of one a region saves each region the call's own cost (dispatch, script
-- set-up), which a region of one or two changes mostly is.
-- KEYS: a call of one region: its geo, meta, seen, then geo:<product> for each product set
--       the caller expects the call to touch; a call of several regions: none.
-- ARGV[1]: '1': check the keys of each undeclared region with EXISTS before the first
--       write (on a cluster), '0' not (a single Redis: every key is local).
-- ARGV[2..]: per region: its geo key, its number of changes, then five per change: id,
--       value (what meta is to hold for the driver, as above: its version comes first),
--       member (its geo member if the flag is a, else ''), score (its geo score, the res-15
--       cell, if a), ts (the fix time as text, for seen). The caller packs them: parsing
--       text here was most of a small call's cost.
-- Returns the number of changes applied; or, having written nothing, {'need', product,
-- ...}: product sets a declared region's changes would touch (the drivers' stored or new
-- products) that KEYS does not declare. Redis Cluster refuses a key that is not local, in
-- the middle of a script, after its earlier writes (a declared key's slot is checked
-- before the script runs; an undeclared one once its slot starts to migrate and the key
-- has left, or has moved away): so every key is checked before the first write. A
-- declared region's product sets must be declared, or the caller calls again with them;
-- an undeclared region's keys are checked with EXISTS (which fails on such a key), and a
-- call that fails there has written nothing: the caller sends its regions one a call.
-- Every driver's stored entry is read first (one HMGET per chunk of drivers), then the
-- changes are written in chunks: one variadic call per key (a call from Lua costs about
-- as much as the command itself). A driver met twice in a region is read again, after its
-- pending change is written, so its second change sees what its first one wrote.
local unpack_d, sub, byte, gmatch, unpack = struct.unpack, string.sub, string.byte, string.gmatch,
  unpack
local CHUNK = 1000  -- changes: keeps every unpack far below Lua's stack limit
local A = 97  -- byte 'a': the flag of an available driver
local check_keys = ARGV[1] == '1'
local geo, metakey, seenkey  -- the region being written

-- Pending writes: geo's removals and additions, the product sets' (by key), meta, seen.
local grem, gadd, prem, padd, meta, seen, pending, n = {}, {}, {}, {}, {}, {}, {}, 0

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
    if #grem > 0 then redis.call('ZREM', geo, unpack(grem)) end
    for key, members in pairs(prem) do redis.call('ZREM', key, unpack(members)) end
    if #gadd > 0 then redis.call('ZADD', geo, unpack(gadd)) end
    for key, entries in pairs(padd) do redis.call('ZADD', key, unpack(entries)) end
    redis.call('HSET', metakey, unpack(meta))
    redis.call('ZADD', seenkey, unpack(seen))
  end
  grem, gadd, prem, padd, meta, seen, pending, n = {}, {}, {}, {}, {}, {}, {}, 0
end

-- A value's products ('' for none), if its driver is available: the sets it is in.
local function products(value)
  if byte(value, -1) ~= A then return '' end
  local prods = sub(value, 33, -2)
  if prods == '-' then return '' end
  return prods
end

-- Adds the product sets named by `prods` to a region's `keys` (`sets`: those added).
local function touch(sets, keys, g, prods)
  for p in gmatch(prods, '[^,%-][^,]*') do
    if not sets[p] then
      sets[p] = true
      keys[#keys + 1] = g .. ':' .. p
    end
  end
end

local declared, need = {}, {'need'}
for i = 1, #KEYS do declared[KEYS[i]] = true end

-- Every region's stored entries, and its keys checked, before any write.
local regions, at = {}, 2
while at <= #ARGV do
  local g, count = ARGV[at], tonumber(ARGV[at + 1])
  local base = sub(g, 1, -4)  -- geo's name without 'geo'
  local region = {g, base .. 'meta', base .. 'seen', at + 2, count, {}}
  local sets, keys = {}, {g, region[2], region[3]}
  for first = 1, count, CHUNK do
    local ids = {}
    for c = first, math.min(first + CHUNK - 1, count) do
      local j = at + 5 * c - 3
      ids[c - first + 1] = ARGV[j]
      local prods = products(ARGV[j + 1])
      if prods ~= '' then touch(sets, keys, g, prods) end
    end
    local stored = redis.call('HMGET', region[2], unpack(ids))
    for _, cur in ipairs(stored) do
      if cur then
        local prods = products(cur)
        if prods ~= '' then touch(sets, keys, g, prods) end
      end
    end
    region[6][#region[6] + 1] = stored
  end
  if declared[g] then
    for i = 4, #keys do
      if not declared[keys[i]] then need[#need + 1] = sub(keys[i], #g + 2) end
    end
  elseif check_keys then
    redis.call('EXISTS', unpack(keys))
  end
  regions[#regions + 1] = region
  at = at + 2 + 5 * count
end
if #need > 1 then return need end

local applied = 0
for _, region in ipairs(regions) do
  geo, metakey, seenkey = region[1], region[2], region[3]
  local base, count, met = region[4] - 5, region[5], {}
  for first = 1, count, CHUNK do
    local stored = region[6][(first - 1) / CHUNK + 1]
    for c = first, math.min(first + CHUNK - 1, count) do
      local j = base + 5 * c
      local id, value = ARGV[j], ARGV[j + 1]
      local cur = stored[c - first + 1]
      if met[id] then  -- what was read first is older than its first change
        if pending[id] then flush() end
        cur = redis.call('HGET', metakey, id)
      end
      met[id] = true
      if not cur or unpack_d('<d', value) > unpack_d('<d', cur) then
        if cur and byte(cur, -1) == A then
          -- Its member as geo holds it: lat, lng (bytes 17-32 of meta), then ts (9-16).
          local old = sub(cur, 17, 32) .. sub(cur, 9, 16) .. id
          grem[#grem + 1] = old
          local prods = products(cur)
          if prods ~= '' then
            for p in gmatch(prods, '[^,%-][^,]*') do queue(prem, geo .. ':' .. p, old) end
          end
        end
        if byte(value, -1) == A then
          local score, member = ARGV[j + 3], ARGV[j + 2]
          gadd[#gadd + 1] = score
          gadd[#gadd + 1] = member
          local prods = products(value)
          if prods ~= '' then
            for p in gmatch(prods, '[^,%-][^,]*') do queue(padd, geo .. ':' .. p, score, member) end
          end
        end
        n = n + 1
        meta[2 * n - 1], meta[2 * n] = id, value
        seen[2 * n - 1], seen[2 * n] = ARGV[j + 4], id
        pending[id] = true
        applied = applied + 1
      end
    end
    flush()
  end
end
return applied
