-- Sweep one region: drop drivers whose last fix is older than cutoff, and tombstones
-- older than tomb_cutoff (kept longer, so a delayed add cannot outlive its tombstone).
-- KEYS: geo, meta, seen (layout in region_apply.lua)   ARGV: cutoff, tomb_cutoff, limit
-- Returns the ids of the drivers dropped.
local tomb_cutoff = tonumber(ARGV[2])
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local dropped = {}
for i = 1, #old do
  local id = old[i]
  local cur = redis.call('HGET', KEYS[2], id)
  local flag = cur and string.sub(cur, -1)
  if flag == 't' then
    local _, ts = struct.unpack('<dd', cur)
    if ts < tomb_cutoff then
      redis.call('HDEL', KEYS[2], id)
      redis.call('ZREM', KEYS[3], id)
    end
  else
    if flag == 'a' then
      -- Out of geo and of every product set (meta lists the products: region_apply.lua).
      local _, ts, lat, lng = struct.unpack('<dddd', cur)
      local member = struct.pack('<ddd', lat, lng, ts) .. id
      redis.call('ZREM', KEYS[1], member)
      for p in string.gmatch(string.sub(cur, 33, -2), '[^,%-][^,]*') do
        redis.call('ZREM', KEYS[1] .. ':' .. p, member)
      end
    end
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    if cur then dropped[#dropped + 1] = id end
  end
end
return dropped
