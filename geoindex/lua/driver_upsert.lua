-- Compare-and-set one driver's position on its own key. Stale (ts not above the stored
-- one, or seq not above the stored one) changes nothing. The version only grows, also
-- across a delete, because it is at least the server's clock in microseconds.
-- The exact fix already stored gets the answer it got the first time, so a retried call
-- (the client timed out after Redis applied it) redoes the region changes it may have
-- missed, which region_apply.lua makes idempotent.
-- KEYS: driver hash
-- ARGV[1]: "lat lng ts seq score region pexpire_ms new_avail new_prods", seq '-' when the
--          fix has none (one argument rather than nine: packing arguments is most of a
--          client's cost); new_avail and new_prods are the availability and products
--          (comma-joined, '-' for none) of a driver that never had them set
-- Returns {0} when stale, else {1, ver, previous region or '', avail, prods}.
local lat, lng, ts, seq, score, region, pexpire, new_avail, new_prods =
  string.match(ARGV[1], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
if seq == '-' then seq = '' end
local cur = redis.call('HMGET', KEYS[1], 'ts', 'seq', 'ver', 'region', 'avail', 'score', 'prev',
  'prods')
local prods = cur[8] or new_prods
if cur[1] == ts and cur[6] == score and (cur[2] or '') == seq then
  return {1, cur[3], cur[7] or '', cur[5], prods}
end
if cur[1] and tonumber(ts) <= tonumber(cur[1]) then return {0} end
if seq ~= '' and cur[2] and tonumber(seq) <= tonumber(cur[2]) then return {0} end
local t = redis.call('TIME')
local ver = math.max((tonumber(cur[3]) or 0) + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
local v = string.format('%.0f', ver)
-- One HSET, seq included when the fix has one: a call from Lua costs about as much as
-- the command itself.
local avail = cur[5] or new_avail
local prev = cur[4] or ''
if seq == '' then
  redis.call('HSET', KEYS[1], 'lat', lat, 'lng', lng, 'ts', ts, 'score', score,
    'region', region, 'prev', prev, 'ver', v, 'avail', avail)
else
  redis.call('HSET', KEYS[1], 'lat', lat, 'lng', lng, 'ts', ts, 'score', score,
    'region', region, 'prev', prev, 'ver', v, 'avail', avail, 'seq', seq)
end
redis.call('PEXPIRE', KEYS[1], pexpire)
return {1, v, prev, avail, prods}
