-- Sweep one region: drop drivers whose last fix is older than cutoff, and tombstones
-- older than tomb_cutoff (kept longer, so a delayed add cannot outlive its tombstone).
-- KEYS: geo, meta, seen (layout in region_apply.lua)   ARGV: cutoff, tomb_cutoff, limit
-- seen holds, for each entry of meta, a score at or below the time the entry may go: a
-- driver's fix time when it entered the region (region_apply.lua does not write it on its
-- later changes there), a tombstone's time plus (cutoff - tomb_cutoff) once scored here.
-- So every entry that may go is among those scored below cutoff, and the entry's own time
-- (in meta) decides: one that may not go yet is scored again with the time it may, and
-- this sweep does not meet it again. An entry of seen with no meta is dropped.
-- Returns {entries looked at (the limit: there may be more), id of each driver dropped...}.
local unpack_d, format = struct.unpack, string.format
local cutoff, tomb_cutoff = tonumber(ARGV[1]), tonumber(ARGV[2])
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {#old}
for i = 1, #old do
  local id = old[i]
  local cur = redis.call('HGET', KEYS[2], id)
  if not cur then
    redis.call('ZREM', KEYS[3], id)
  else
    local flag, ts = string.sub(cur, -1), unpack_d('<d', cur, 9)
    if flag == 't' then
      if ts < tomb_cutoff then
        redis.call('HDEL', KEYS[2], id)
        redis.call('ZREM', KEYS[3], id)
      else
        redis.call('ZADD', KEYS[3], format('%.17g', ts + (cutoff - tomb_cutoff)), id)
      end
    elseif ts >= cutoff then
      redis.call('ZADD', KEYS[3], format('%.17g', ts), id)  -- fresh, scored when it entered
    else
      if flag == 'a' then
        -- Out of geo and of every product set (meta lists the products: region_apply.lua).
        local _, _, lat, lng = unpack_d('<dddd', cur)
        local member = struct.pack('<ddd', lat, lng, ts) .. id
        redis.call('ZREM', KEYS[1], member)
        for p in string.gmatch(string.sub(cur, 33, -2), '[^,%-][^,]*') do
          redis.call('ZREM', KEYS[1] .. ':' .. p, member)
        end
      end
      redis.call('HDEL', KEYS[2], id)
      redis.call('ZREM', KEYS[3], id)
      out[#out + 1] = id
    end
  end
end
return out
