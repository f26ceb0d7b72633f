-- Change one parent's entry in the split list, if the list is still at the version the
-- caller read (geoindex/split.py): every change bumps the version, so concurrent changes
-- cannot both apply.
-- KEYS: the list's hash (field ver, one field per parent)
-- ARGV: expected version, parent (hex), entry ('' drops the parent)
-- Returns 1 if changed, 0 if the version had moved on.
if tonumber(redis.call('HGET', KEYS[1], 'ver') or '0') ~= tonumber(ARGV[1]) then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
redis.call('HINCRBY', KEYS[1], 'ver', 1)
return 1
