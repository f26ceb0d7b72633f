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
-- The key outlives its last fix by at least pexpire_ms without a PEXPIRE (a write sent to
-- replicas) on every fix: the server's clock is cut into periods of 10^10 microseconds
-- (2.8 hours), and the first fix of a period sets the TTL to pexpire_ms and a period more;
-- the version (the clock at the key's last write, or just above it) tells whether the
-- last write was in this period. driver_change.lua keeps the TTL at least that long.
-- The driver's write is an HMSET (HSET under another name), one a fix written: INFO
-- commandstats counts fixes by it (loadtest/hot_regions.py, the benches).
local match, find, format, sub, tonumber =
  string.match, string.find, string.format, string.sub, tonumber
local PERIOD_MS = 10000000  -- 10^10 microseconds: a version's last ten digits
-- What a fix needs of the stored driver, `seq` only for a fix that has one (a field that
-- is not there costs a scan of the whole hash); a retry's check also reads score and
-- prev, only when the fix time is the stored one (a field read costs about as much as a
-- field written).
local FIELDS = {'ts', 'ver', 'region', 'avail', 'prods'}
local WITH_SEQ = {'ts', 'ver', 'region', 'avail', 'prods', 'seq'}
local PATTERN = '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (.*)$'
local REST = '^(%S+) (%S+) (%S+)$'  -- pexpire_ms new_avail new_prods, read when needed
local drivers = #ARGV / 2

local function fields(fix)  -- ' - ' is a fix's seq when it has none (nothing else is '-')
  return find(fix, ' - ', 1, true) and FIELDS or WITH_SEQ
end

local read = {}
for i = 1, drivers do
  read[i] = redis.call('HMGET', ARGV[2 * i - 1], unpack(fields(ARGV[2 * i])))
end
local t = redis.call('TIME')
local now = t[1] .. string.rep('0', 6 - #t[2]) .. t[2]  -- microseconds, as text
local period = sub(now, 1, -11)

-- a < b for integers written in decimal without sign or leading zeros (every ts, seq and
-- version here: Python's, Redis's or format('%.0f')'s text of one), without
-- tonumber (strtod costs more than the rest of a comparison)
local function below(a, b)
  local la, lb = #a, #b
  if la ~= lb then return la < lb end
  return a < b
end

local function upsert(key, cur, fix)
  local lat, lng, ts, seq, score, region, rest = match(fix, PATTERN)
  if seq == '-' then seq = '' end
  local stored_ts, ver, prev, avail, prods, stored_seq = unpack(cur)
  prev = prev or ''  -- the region before: the one stored
  if stored_ts == ts then  -- the same fix again (a retry), or a stale one
    local again = redis.call('HMGET', key, 'score', 'prev', 'seq')
    if again[1] == score and (again[3] or '') == seq then
      local _, new_avail, new_prods = match(rest, REST)
      return ver .. ' ' .. (again[2] or '') .. ' ' .. (avail or new_avail) .. ' ' ..
        (prods or new_prods)
    end
    return ''
  end
  if stored_ts and below(ts, stored_ts) then return '' end
  if seq ~= '' and stored_seq and not below(stored_seq, seq) then return '' end
  local v = (not ver or below(ver, now)) and now or format('%.0f', tonumber(ver) + 1)
  local renew = not ver or sub(ver, 1, -11) ~= period  -- the first write of a period
  if seq == '' and avail and not renew then  -- the common case
    if prev == region then  -- moved inside its region: `region` holds it already
      redis.call('HMSET', key, 'lat', lat, 'lng', lng, 'ts', ts, 'score', score,
        'prev', prev, 'ver', v)
    else
      redis.call('HMSET', key, 'lat', lat, 'lng', lng, 'ts', ts, 'score', score,
        'region', region, 'prev', prev, 'ver', v)
    end
  else
    local pexpire, new_avail, new_prods = match(rest, REST)
    local args = {key, 'lat', lat, 'lng', lng, 'ts', ts, 'score', score, 'region', region,
      'prev', prev, 'ver', v}
    if seq ~= '' then args[#args + 1] = 'seq'; args[#args + 1] = seq end
    if not avail then
      avail = new_avail
      args[#args + 1] = 'avail'; args[#args + 1] = avail
    end
    prods = prods or new_prods
    redis.call('HMSET', unpack(args))
    if renew then redis.call('PEXPIRE', key, format('%.0f', tonumber(pexpire) + PERIOD_MS)) end
  end
  return v .. ' ' .. prev .. ' ' .. avail .. ' ' .. (prods or match(rest, '^%S+ %S+ (%S+)$'))
end

local out, met = {}, {}
for i = 1, drivers do
  local key, cur = ARGV[2 * i - 1], read[i]
  if met[key] then  -- a second fix of one driver: what its first one wrote
    cur = redis.call('HMGET', key, unpack(fields(ARGV[2 * i])))
  end
  met[key] = true
  out[i] = upsert(key, cur, ARGV[2 * i])
end
return out
