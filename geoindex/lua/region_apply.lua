-- Apply driver changes to one region. Each change carries the driver's version (set by
-- driver_*.lua on the driver's own key); a change older than what the region holds for
-- that driver is ignored, so changes may arrive in any order and the newest always wins.
-- A driver leaving the region leaves a tombstone holding its version until the sweep, so
-- a late, older add cannot resurrect it (one arriving after the sweep dropped the tombstone
-- is older than the TTL: never returned, and swept again).
-- KEYS: geo (available: member = pack('<ddd', lat, lng, ts) .. id),
--       meta (id -> pack('<dddd', ver, ts, lat, lng) .. flag; flag a available, b busy, t gone),
--       seen (id -> ts, for the sweep)
-- ARGV: one change each: "flag id ver ts score lat lng"
local pack, unpack_d = struct.pack, struct.unpack
local applied = 0
for i = 1, #ARGV do
  local flag, id, sver, sts, score, slat, slng =
    string.match(ARGV[i], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  local ver, ts = tonumber(sver), tonumber(sts)
  local cur = redis.call('HGET', KEYS[2], id)
  local cur_ver, cur_ts, cur_lat, cur_lng = -1, 0, 0, 0
  if cur then cur_ver, cur_ts, cur_lat, cur_lng = unpack_d('<dddd', cur) end
  if ver > cur_ver then
    if cur and string.sub(cur, -1) == 'a' then
      redis.call('ZREM', KEYS[1], pack('<ddd', cur_lat, cur_lng, cur_ts) .. id)
    end
    local lat, lng = tonumber(slat), tonumber(slng)
    redis.call('HSET', KEYS[2], id, pack('<dddd', ver, ts, lat, lng) .. flag)
    if flag == 'a' then
      redis.call('ZADD', KEYS[1], score, pack('<ddd', lat, lng, ts) .. id)
    end
    redis.call('ZADD', KEYS[3], ts, id)
    applied = applied + 1
  end
end
return applied
