-- A driver gone silent (swept from the geo index): out of every area at once.
-- KEYS[1] dispatch:driver:{id}:areas (see area_presence.lua)
-- Returns the areas the driver was counted in; of two instances sweeping the same
-- driver, only the first gets them, so each exit is told once.
local left = redis.call('HKEYS', KEYS[1])
redis.call('DEL', KEYS[1])
return left
