-- Store the answer for a key we hold, kept for ttl_ms.
-- KEYS[1] dispatch:idem:{hash}   ARGV token, payload, ttl_ms
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'payload', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
