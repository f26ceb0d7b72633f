-- Sum one region's bucket hashes over the window, field by field.
-- KEYS mk:{r<region>}:b:<bucket>, one per bucket of the window (absent ones are empty)
-- Returns {field, total, field, total, ...}: fields as market_count.lua writes them.
local totals = {}
local order = {}
for i = 1, #KEYS do
  local flat = redis.call('HGETALL', KEYS[i])
  for j = 1, #flat, 2 do
    local f = flat[j]
    local t = totals[f]
    if t == nil then
      order[#order + 1] = f
      totals[f] = tonumber(flat[j + 1])
    else
      totals[f] = t + tonumber(flat[j + 1])
    end
  end
end
local out = {}
for i = 1, #order do
  out[2 * i - 1] = order[i]
  out[2 * i] = totals[order[i]]
end
return out
