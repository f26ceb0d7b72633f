-- Compare-and-set one driver's position on its own key. Stale (ts not above the stored
-- one, or seq not above the stored one) changes nothing. The version only grows, also
-- across a delete, because it is at least the server's clock in microseconds.
-- The exact fix already stored gets the answer it got the first time, so a retried call
-- (the client timed out after Redis applied it) redoes the region changes it may have
-- missed, which region_apply.lua makes idempotent.
-- KEYS: driver hash   ARGV: lat, lng, ts, seq ('' = none), score, region, pexpire_ms
-- Returns {0} when stale, else {1, ver, previous region or '', avail}.
local cur = redis.call('HMGET', KEYS[1], 'ts', 'seq', 'ver', 'region', 'avail', 'score', 'prev')
local ts = tonumber(ARGV[3])
if cur[1] == ARGV[3] and cur[6] == ARGV[5] and (cur[2] or '') == ARGV[4] then
  return {1, cur[3], cur[7] or '', cur[5]}
end
if cur[1] and ts <= tonumber(cur[1]) then return {0} end
if ARGV[4] ~= '' and cur[2] and tonumber(ARGV[4]) <= tonumber(cur[2]) then return {0} end
local t = redis.call('TIME')
local ver = math.max((tonumber(cur[3]) or 0) + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
local v = string.format('%.0f', ver)
local avail = cur[5] or '1'
redis.call('HSET', KEYS[1], 'lat', ARGV[1], 'lng', ARGV[2], 'ts', ARGV[3], 'score', ARGV[5],
  'region', ARGV[6], 'prev', cur[4] or '', 'ver', v, 'avail', avail)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'seq', ARGV[4]) end
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return {1, v, cur[4] or '', avail}
