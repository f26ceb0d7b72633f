-- Which areas a driver is in, after a fix: enter at once, exit only once out dwell_ms.
-- KEYS[1] dispatch:driver:{id}:areas, a hash: area id -> 'i:<dwell_ms>' (inside) or
--         'o:<out since ms>:<dwell_ms>' (outside, within its dwell: still counted in)
-- ARGV now_ms, keep_ms, n, then n pairs: area_id, dwell_ms (the areas holding the fix)
-- Returns {'enter'|'exit', area_id, ..., '|', when the first pending exit matures (ms,
-- or -1 if none), every area the driver is counted in}.
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[3])
local inside = {}
local out = {}
local due = -1
for i = 0, n - 1 do
  local id, dwell = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  inside[id] = true
  local cur = redis.call('HGET', KEYS[1], id)
  if not cur then
    out[#out + 1] = 'enter'
    out[#out + 1] = id
  end
  if (not cur) or string.sub(cur, 1, 1) == 'o' then
    redis.call('HSET', KEYS[1], id, 'i:' .. dwell)
  end
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local id, v = all[i], all[i + 1]
  if not inside[id] then
    local since, dwell
    if string.sub(v, 1, 1) == 'i' then
      since, dwell = ARGV[1], string.sub(v, 3)
    else
      since, dwell = string.match(v, '^o:(%d+):(%d+)$')
    end
    if now - tonumber(since) >= tonumber(dwell) then
      redis.call('HDEL', KEYS[1], id)
      out[#out + 1] = 'exit'
      out[#out + 1] = id
    else
      if string.sub(v, 1, 1) == 'i' then
        redis.call('HSET', KEYS[1], id, 'o:' .. since .. ':' .. dwell)
      end
      local at = tonumber(since) + tonumber(dwell)
      if due < 0 or at < due then due = at end
    end
  end
end
out[#out + 1] = '|'
out[#out + 1] = tostring(due)
local left = redis.call('HKEYS', KEYS[1])
for i = 1, #left do
  out[#out + 1] = left[i]
end
if #left > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return out
