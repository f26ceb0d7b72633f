-- Remove an area and bump the areas' version.
-- KEYS[1] dispatch:areas:{areas}, a hash: area id -> the area as JSON
-- KEYS[2] dispatch:areas:{areas}:version
-- ARGV area_id
-- Returns the new version, or -1 when there was no such area (nothing changes).
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return -1
end
return redis.call('INCR', KEYS[2])
