-- Sum one region's bucket hashes over the window, field by field.
-- KEYS mk:{r<region>}:b:<bucket>:<product>, one per bucket of the window and product
--      (absent ones are empty): the fields of every key given are summed together
-- Returns a JSON object {field: total} (fields as market_count.lua writes them): one
-- string, which the caller decodes far faster than a reply of tens of thousands of items.
-- (A surge recompute reads the distinct riders alone, per product: market_riders.lua.)
local totals = {}
for i = 1, #KEYS do
  local flat = redis.call('HGETALL', KEYS[i])
  for j = 1, #flat, 2 do
    local f = flat[j]
    totals[f] = (totals[f] or 0) + tonumber(flat[j + 1])
  end
end
if next(totals) == nil then
  return '{}'
end
return cjson.encode(totals)
