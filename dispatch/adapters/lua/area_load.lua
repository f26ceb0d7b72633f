-- Every area and the version they make up, read at one instant.
-- KEYS[1] dispatch:areas:{areas}, KEYS[2] dispatch:areas:{areas}:version
-- Returns {version, id, json, id, json, ...}.
local out = {tonumber(redis.call('GET', KEYS[2]) or '0')}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do
  out[#out + 1] = all[i]
end
return out
