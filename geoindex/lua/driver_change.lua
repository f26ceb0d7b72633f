-- Change availability of, or delete, one driver on its own key, bumping its version.
-- KEYS: driver hash   ARGV: op ('1' available, '0' busy, 'del' delete, 'expire' delete
-- only if the last fix is older than ARGV[2])
-- Returns {0} if unknown (or fresh, for expire), else {1, ver, region, ts, lat, lng, score}.
local cur = redis.call('HMGET', KEYS[1], 'ver', 'region', 'ts', 'lat', 'lng', 'score')
if not cur[1] then return {0} end
local op = ARGV[1]
if op == 'expire' and tonumber(cur[3]) >= tonumber(ARGV[2]) then return {0} end
local t = redis.call('TIME')
local ver = math.max(tonumber(cur[1]) + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
local v = string.format('%.0f', ver)
if op == 'del' or op == 'expire' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'avail', op, 'ver', v)
end
return {1, v, cur[2], cur[3], cur[4], cur[5], cur[6]}
