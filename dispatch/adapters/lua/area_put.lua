-- Store an area (new or replaced) and bump the areas' version.
-- KEYS[1] dispatch:areas:{areas}, a hash: area id -> the area as JSON
-- KEYS[2] dispatch:areas:{areas}:version, a counter every instance polls
-- ARGV area_id, area_json, max_areas
-- Returns the new version, or -1 when max_areas are stored and this one is new.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
  and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('INCR', KEYS[2])
