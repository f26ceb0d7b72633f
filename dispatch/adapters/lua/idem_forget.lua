-- Drop a finished key whose stored answer is still the one given (found stale).
-- KEYS[1] dispatch:idem:{hash}   ARGV payload
if redis.call('HGET', KEYS[1], 'payload') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
