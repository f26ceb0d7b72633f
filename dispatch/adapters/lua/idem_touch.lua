-- Keep holding a key while its request runs: the lock runs lock_ms from now again.
-- KEYS[1] dispatch:idem:{hash}   ARGV token, lock_ms
local e = redis.call('HMGET', KEYS[1], 'token', 'payload')
if e[1] ~= ARGV[1] or e[2] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
