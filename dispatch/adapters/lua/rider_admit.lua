-- A rider's admission, both parts optional and in one atomic step on the rider's hash
-- tag: take one token from its bucket for an action (a token bucket: rate_per_ms tokens a
-- millisecond, up to burst), then count a ride among its active rides, up to a cap.
-- KEYS[1] dispatch:rider:{id}:limit:<action>, a hash {t: tokens, at: ms of the last refill}
-- KEYS[2] dispatch:rider:{id}:rides, a sorted set: ride id -> when it was counted (ms)
-- ARGV now_ms, rate_per_ms ('' = take no token), burst, ride_id ('' = count no ride), cap,
--      keep_ms
-- Returns {wait_ms} when the bucket is empty (nothing changed: wait_ms until a token is
-- there); else {0} when the ride was counted (or counted before, or none was named), or
-- {0, id, at, id, at, ...}: the counted rides that fill the cap (the token stays taken).
-- A re-sent call (redis-py after a broken connection) may take a second token: harmless
-- for a limit, so no call id; the count is by ride id, so it counts once.
local now = tonumber(ARGV[1])
if ARGV[2] ~= '' then
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
    return {math.max(1, math.ceil((1 - tokens) / rate))}
  end
  tokens = tokens - 1
  redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'at', string.format('%d', at))
  -- A full bucket is the same as no key: keep it only until it would be full again.
  redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1000)
end
local ride = ARGV[4]
if ride == '' or redis.call('ZSCORE', KEYS[2], ride) then
  return {0}
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  local full = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  table.insert(full, 1, 0)
  return full
end
redis.call('ZADD', KEYS[2], ARGV[1], ride)
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return {0}
