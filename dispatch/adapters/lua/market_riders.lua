-- Sum one region's distinct riders over the window, per product: what a surge recompute
-- reads (not requests, no_driver or ETAs, the <cell>|<suffix> fields).
-- KEYS mk:{r<region>}:b:<bucket>:<product>: each product's ARGV[1] buckets, products in
--      the order of ARGV (absent keys are empty)
-- ARGV[1] buckets per product, ARGV[2] the number of products n, ARGV[3..2+n] the
--      products, ARGV[3+n] (optional) only these cells', space-separated: a neighbouring
--      region's border, named once for every product in one argument (hundreds of
--      separate arguments cost the client more to pack than the script to split)
-- Returns a JSON object {product: {cell: riders}}, products without any left out: one
-- string, which the caller decodes far faster than a reply of tens of thousands of items.
local per = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local cells = nil
if ARGV[3 + n] then
  cells = {}
  for cell in string.gmatch(ARGV[3 + n], '%S+') do cells[#cells + 1] = cell end
end
local out = {}
local any = false
for p = 1, n do
  local totals = {}
  local found = false
  for i = (p - 1) * per + 1, p * per do
    if cells then
      for first = 1, #cells, 500 do  -- unpack() of thousands overflows Lua's stack
        local last = math.min(first + 499, #cells)
        local values = redis.call('HMGET', KEYS[i], unpack(cells, first, last))
        for j = 1, #values do
          if values[j] then
            local f = cells[first + j - 1]
            totals[f] = (totals[f] or 0) + tonumber(values[j])
            found = true
          end
        end
      end
    else
      local flat = redis.call('HGETALL', KEYS[i])
      for j = 1, #flat, 2 do
        local f = flat[j]
        if not string.find(f, '|', 1, true) then
          totals[f] = (totals[f] or 0) + tonumber(flat[j + 1])
          found = true
        end
      end
    end
  end
  if found then
    out[ARGV[2 + p]] = totals
    any = true
  end
end
if not any then
  return '{}'
end
return cjson.encode(out)
