-- Compare-and-set drivers' positions, each on its own key. Stale (ts not above the stored
-- one, or seq not above the stored one) changes nothing. The version only grows, also
-- across a delete, because it is at least the server's clock in microseconds.
-- The exact fix already stored gets the answer it got the first time, so a retried call
-- (the client timed out after Redis applied it) redoes the region changes it may have
-- missed, which region_apply.lua makes idempotent.
-- A call writes one driver, its key declared (the call goes to its slot), or several
-- drivers whose keys one node holds, none declared (as region_apply.lua's regions): every
-- key is read before the first write, so a key that is not local (its slot migrating and
-- the key gone, or the slot moved) fails the call before it writes anything.
-- KEYS: a call of one driver: its hash; of several: none
-- ARGV: per driver, two: its hash's key, and "lat lng ts seq score region pexpire_ms
--       new_avail new_prods", seq '-' when the fix has none (one argument rather than
--       nine: packing arguments is most of a client's cost); new_avail and new_prods are
--       the availability and products (comma-joined, '-' for none) of a driver that never
--       had them set
-- Returns, per driver in order, '' when stale, else "ver prev avail prods" (prev: the
-- region before, '' for none): one string, as a list per driver cost Redis about a tenth
-- of a driver's write.
local match, tonumber, format = string.match, tonumber, string.format
-- What a fix needs of the stored driver; a retry's check also reads score and prev, only
-- when the fix time is the stored one (a field read costs about as much as a field written).
local FIELDS = {'ts', 'seq', 'ver', 'region', 'avail', 'prods'}
local drivers = #ARGV / 2
local read = {}
for i = 1, drivers do read[i] = redis.call('HMGET', ARGV[2 * i - 1], unpack(FIELDS)) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function upsert(key, cur, fix)
  local lat, lng, ts, seq, score, region, pexpire, new_avail, new_prods =
    match(fix, '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  if seq == '-' then seq = '' end
  local prods = cur[6] or new_prods
  if cur[1] == ts then  -- the same fix again (a retry), or a stale one
    local again = redis.call('HMGET', key, 'score', 'prev')
    if again[1] == score and (cur[2] or '') == seq then
      return cur[3] .. ' ' .. (again[2] or '') .. ' ' .. (cur[5] or new_avail) .. ' ' .. prods
    end
  end
  if cur[1] and tonumber(ts) <= tonumber(cur[1]) then return '' end
  if seq ~= '' and cur[2] and tonumber(seq) <= tonumber(cur[2]) then return '' end
  local v = format('%.0f', math.max((tonumber(cur[3]) or 0) + 1, now))
  -- One HSET, seq included when the fix has one, avail when none is stored yet: a call
  -- from Lua costs about as much as the command itself.
  local avail = cur[5] or new_avail
  local prev = cur[4] or ''
  if seq == '' and cur[5] then  -- the common case: no sequence, availability stored
    redis.call('HSET', key, 'lat', lat, 'lng', lng, 'ts', ts, 'score', score,
      'region', region, 'prev', prev, 'ver', v)
  elseif seq == '' then
    redis.call('HSET', key, 'lat', lat, 'lng', lng, 'ts', ts, 'score', score,
      'region', region, 'prev', prev, 'ver', v, 'avail', avail)
  else
    redis.call('HSET', key, 'lat', lat, 'lng', lng, 'ts', ts, 'score', score,
      'region', region, 'prev', prev, 'ver', v, 'avail', avail, 'seq', seq)
  end
  redis.call('PEXPIRE', key, pexpire)
  return v .. ' ' .. prev .. ' ' .. avail .. ' ' .. prods
end

local out, met = {}, {}
for i = 1, drivers do
  local key, cur = ARGV[2 * i - 1], read[i]
  if met[key] then  -- a second fix of one driver: what its first one wrote
    cur = redis.call('HMGET', key, unpack(FIELDS))
  end
  met[key] = true
  out[i] = upsert(key, cur, ARGV[2 * i])
end
return out
