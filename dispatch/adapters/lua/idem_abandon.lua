-- Give a key back after the request failed, so a retry can run it.
-- KEYS[1] dispatch:idem:{hash}   ARGV token
local e = redis.call('HMGET', KEYS[1], 'token', 'payload')
if e[1] ~= ARGV[1] or e[2] then return 0 end
redis.call('DEL', KEYS[1])
return 1
