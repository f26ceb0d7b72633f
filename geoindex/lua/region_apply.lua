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
--       seen (id -> a time by which the sweep looks at the driver, region_expire.lua),
--       named as geo is with meta and seen for geo, and geo:<product> for each product.
-- seen is written when a driver enters the region (no entry, or a tombstone), with its
-- fix time, and not on its later changes there: a driver's fix times only grow, so the
-- score stays at or below its meta's, and the sweep, finding it, reads meta's time and
-- scores it again (region_expire.lua). A change inside the region writes geo and meta
-- only.
-- A call writes one region, its keys declared (the call goes to the region's slot), or
-- several regions that one node holds, none declared: a script may touch keys of any
-- slot of its node (Redis Cluster refuses only declared keys of several slots), and one
-- call instead of one a region saves each region the call's own cost (dispatch, script
-- set-up), which a region of one or two changes mostly is.
-- KEYS: a call of one region: its geo, meta, seen, then geo:<product> for each product set
--       the caller expects the call to touch; a call of several regions: none.
-- ARGV[1]: '1': check the keys of each undeclared region before writing it (on a
--       cluster), '0' not (a single Redis: every key is local).
-- ARGV[2..]: per region: its geo key, its number of changes, then five per change: id,
--       value (what meta is to hold for the driver, as above: its version comes first),
--       member (its geo member if the flag is a, else ''), score (its geo score, the res-15
--       cell, if a), ts (the fix time as text, for seen). The caller packs them: parsing
--       text here was most of a small call's cost.
-- Returns the number of changes applied; or, having written nothing, {'need', product,
-- ...}: product sets a declared region's changes would touch (the drivers' stored or new
-- products) that KEYS does not declare.
-- Redis Cluster refuses a key that is not local in the middle of a script, after its
-- earlier writes (a declared key's slot is checked before the script runs; an undeclared
-- one once its slot starts to migrate and the key has left, or has moved away). So each
-- region is written whole or not at all: its meta is read before any write (a key read is
-- local for the rest of the script), and meta, the version a retry compares, is written
-- last. A region of one change writes first the one key whose failure leaves nothing
-- harmful (seen when it enters: an entry without meta the sweep drops; else geo), after an
-- EXISTS of the product sets it writes, if any; a region of several changes has every key
-- checked with EXISTS before its first write. A node call that fails has so written its
-- earlier regions whole and the rest not at all: the caller sends its regions again one a
-- call, and a region written twice holds what it held (a change not newer than the stored
-- one is ignored). A node call writes a region of a few changes as soon as it has read it;
-- a call of one declared region first checks it names every product set it would touch.
-- A region of several changes: every driver's stored entry is read first (one HMGET per
-- chunk of drivers), then the changes are written in chunks: one variadic call per key (a
-- call from Lua costs about as much as the command itself). A driver met twice in a region
-- is read again, after its pending change is written, so its second change sees what its
-- first one wrote.
local unpack_d, sub, byte, gmatch, unpack = struct.unpack, string.sub, string.byte, string.gmatch,
  unpack
local call = redis.call
local CHUNK = 1000  -- changes: keeps every unpack far below Lua's stack limit
local FEW = 3  -- changes: a region of at most this many writes each alone (see below)
local A, T, DASH = 97, 116, 45  -- bytes 'a', 't': an available and a gone driver's flags
local check_keys = ARGV[1] == '1'
local geo, metakey, seenkey  -- the region being written

-- Pending writes: geo's removals and additions, the product sets' (by key), meta, seen.
-- Made for the first region of many changes (most calls of a split city have none).
local grem, gadd, prem, padd, meta, seen, pending, n

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
    if #grem > 0 then call('ZREM', geo, unpack(grem)) end
    for key, members in pairs(prem) do call('ZREM', key, unpack(members)) end
    if #gadd > 0 then call('ZADD', geo, unpack(gadd)) end
    for key, entries in pairs(padd) do call('ZADD', key, unpack(entries)) end
    if #seen > 0 then call('ZADD', seenkey, unpack(seen)) end
    call('HSET', metakey, unpack(meta))
  end
  grem, gadd, prem, padd, meta, seen, pending, n = {}, {}, {}, {}, {}, {}, {}, 0
end

-- A value's products ('' for none), if its driver is available: the sets it is in. Its
-- length tells a value without products (its 32 bytes' head and its flag) at no cost: a
-- call of a string function costs about as much as a short command's own work.
local function products(value)
  local len = #value
  if len == 33 or len == 34 and byte(value, 33) == DASH or byte(value, -1) ~= A then
    return ''  -- none ('' or, as written before 2026-11-30, '-'), or not available
  end
  return sub(value, 33, -2)
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

-- Product sets a declared region would touch and KEYS does not name, into `need`.
local function undeclared(g, keys, from)
  for i = from, #keys do
    if not declared[keys[i]] then need[#need + 1] = sub(keys[i], #g + 2) end
  end
end

-- A region's one change, with `cur` its stored value (false: none); 1 if applied.
local function apply_one(g, mkey, base, j, cur)
  local id, value = ARGV[j], ARGV[j + 1]
  if cur and unpack_d('<d', value) <= unpack_d('<d', cur) then return 0 end
  local was = cur and byte(cur, -1) or T  -- its flag; T: no entry
  local old = was == A and sub(cur, 17, 32) .. sub(cur, 9, 16) .. id or nil
  local avail = byte(value, -1) == A
  local oldp, newp = old and products(cur) or '', avail and products(value) or ''
  if was == T then call('ZADD', base .. 'seen', ARGV[j + 4], id) end  -- it enters
  if old then call('ZREM', g, old) end
  if avail then call('ZADD', g, ARGV[j + 3], ARGV[j + 2]) end
  if oldp ~= '' then
    for p in gmatch(oldp, '[^,%-][^,]*') do call('ZREM', g .. ':' .. p, old) end
  end
  if newp ~= '' then
    for p in gmatch(newp, '[^,%-][^,]*') do call('ZADD', g .. ':' .. p, ARGV[j + 3], ARGV[j + 2]) end
  end
  call('HSET', mkey, id, value)
  return 1
end

-- A region of a few changes, its stored values read (one change: the value or false; more:
-- the list) and `keys` its product sets (or false): each change written alone; how many.
local function write_few(g, mkey, base, j, count, stored, keys)
  if keys and check_keys and not declared[g] then call('EXISTS', unpack(keys)) end
  if count == 1 then return apply_one(g, mkey, base, j, stored) end
  local met, applied = {}, 0
  for c = 1, count do
    local jc, cur = j + 5 * c - 5, stored[c]
    if met[ARGV[jc]] then  -- a driver met twice: its first change is written
      cur = call('HGET', mkey, ARGV[jc])
    end
    met[ARGV[jc]] = true
    applied = applied + apply_one(g, mkey, base, jc, cur)
  end
  return applied
end

-- Every region's stored entries read, and the keys of a region of many changes checked,
-- before that region's writes. A region of a few changes is written at once in a node
-- call, else kept as {geo, meta, geo's name less 'geo', its first change's first argument,
-- count, stored values, its product sets or false}; one of many is kept as {geo, meta,
-- seen, first argument less five, count, stored values by chunk} and written last.
local regions, at, applied = {}, 2, 0
while at <= #ARGV do
  local g, count = ARGV[at], ARGV[at + 1]
  count = count == '1' and 1 or tonumber(count)
  local base = sub(g, 1, -4)  -- geo's name without 'geo'
  if count <= FEW then
    local mkey, j = base .. 'meta', at + 2
    local stored
    if count == 1 then
      stored = call('HGET', mkey, ARGV[j])
    else
      local ids = {}
      for c = 1, count do ids[c] = ARGV[j + 5 * c - 5] end
      stored = call('HMGET', mkey, unpack(ids))
    end
    local sets, keys = nil, false
    for c = 1, count do
      local prods, cur = products(ARGV[j + 5 * c - 4]), stored
      if count > 1 then cur = stored[c] end
      local old = cur and products(cur) or ''
      if prods ~= '' or old ~= '' then
        sets, keys = sets or {}, keys or {}
        touch(sets, keys, g, prods)
        touch(sets, keys, g, old)
      end
    end
    if #KEYS == 0 then  -- a node call (nothing to ask for): written now
      applied = applied + write_few(g, mkey, base, j, count, stored, keys)
    else
      if keys then undeclared(g, keys, 1) end
      regions[#regions + 1] = {g, mkey, base, j, count, stored, keys}
    end
  else
    if not grem then
      grem, gadd, prem, padd, meta, seen, pending, n = {}, {}, {}, {}, {}, {}, {}, 0
    end
    local region = {g, base .. 'meta', base .. 'seen', at - 3, count, {}}
    local sets, keys = {}, {g, region[3]}
    for first = 1, count, CHUNK do
      local ids = {}
      for c = first, math.min(first + CHUNK - 1, count) do
        local j = at + 5 * c - 3
        ids[c - first + 1] = ARGV[j]
        local prods = products(ARGV[j + 1])
        if prods ~= '' then touch(sets, keys, g, prods) end
      end
      local stored = call('HMGET', region[2], unpack(ids))
      for _, cur in ipairs(stored) do
        if cur then
          local prods = products(cur)
          if prods ~= '' then touch(sets, keys, g, prods) end
        end
      end
      region[6][#region[6] + 1] = stored
    end
    if declared[g] then
      undeclared(g, keys, 3)
    elseif check_keys then
      call('EXISTS', unpack(keys))
    end
    regions[#regions + 1] = region
  end
  at = at + 2 + 5 * count
end
if #need > 1 then return need end

for _, region in ipairs(regions) do
  if #region == 7 then  -- a few changes, each written alone
    applied = applied + write_few(region[1], region[2], region[3], region[4], region[5],
      region[6], region[7])
  else
    geo, metakey, seenkey = region[1], region[2], region[3]
    local base, count, met = region[4], region[5], {}
    for first = 1, count, CHUNK do
      local stored = region[6][(first - 1) / CHUNK + 1]
      for c = first, math.min(first + CHUNK - 1, count) do
        local j = base + 5 * c
        local id, value = ARGV[j], ARGV[j + 1]
        local cur = stored[c - first + 1]
        if met[id] then  -- what was read first is older than its first change
          if pending[id] then flush() end
          cur = call('HGET', metakey, id)
        end
        met[id] = true
        if not cur or unpack_d('<d', value) > unpack_d('<d', cur) then
          local was = cur and byte(cur, -1) or T
          if was == A then
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
          if was == T then  -- it enters
            seen[#seen + 1] = ARGV[j + 4]
            seen[#seen + 1] = id
          end
          n = n + 1
          meta[2 * n - 1], meta[2 * n] = id, value
          pending[id] = true
          applied = applied + 1
        end
      end
      flush()
    end
  end
end
return applied
