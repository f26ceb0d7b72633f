-- Take one token from a rider's bucket for one action (a token bucket: rate_per_ms tokens
-- a millisecond, up to burst). On the rider's own hash tag, beside its active rides.
-- KEYS[1] dispatch:rider:{id}:limit:<action>, a hash {t: tokens, at: ms of the last refill}
-- ARGV now_ms, rate_per_ms, burst
-- Returns 0 when a token was taken, else the ms until one is there (nothing changed).
-- A re-sent call (redis-py after a broken connection) may take a second token: harmless
-- for a limit, so no call id.
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then  -- another instance's clock behind this one refills nothing
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
if tokens < 1 then
  return math.max(1, math.ceil((1 - tokens) / rate))
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'at', string.format('%d', at))
-- A full bucket is the same as no key: keep it only until it would be full again.
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1000)
return 0
