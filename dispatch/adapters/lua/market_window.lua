-- Sum one region's bucket hashes over the window, field by field.
-- KEYS mk:{r<region>}:b:<bucket>, one per bucket of the window (absent ones are empty)
-- ARGV[1] (optional) "riders": only the distinct riders' fields (<cell>), not requests,
--         no_driver or ETAs (<cell>|<suffix>): what a surge recompute reads
-- ARGV[2..] (optional, with "riders") only these cells': a neighbouring region's border
-- Returns a JSON object {field: total} (fields as market_count.lua writes them): one
-- string, which the caller decodes far faster than a reply of tens of thousands of items.
local riders_only = ARGV[1] == 'riders'
local totals = {}
if riders_only and #ARGV > 1 then
  for i = 1, #KEYS do
    for first = 2, #ARGV, 500 do  -- unpack() of thousands of values overflows Lua's stack
      local last = math.min(first + 499, #ARGV)
      local values = redis.call('HMGET', KEYS[i], unpack(ARGV, first, last))
      for j = 1, #values do
        if values[j] then
          local f = ARGV[first + j - 1]
          totals[f] = (totals[f] or 0) + tonumber(values[j])
        end
      end
    end
  end
else
  for i = 1, #KEYS do
    local flat = redis.call('HGETALL', KEYS[i])
    for j = 1, #flat, 2 do
      local f = flat[j]
      if not (riders_only and string.find(f, '|', 1, true)) then
        totals[f] = (totals[f] or 0) + tonumber(flat[j + 1])
      end
    end
  end
end
if next(totals) == nil then
  return '{}'
end
return cjson.encode(totals)
