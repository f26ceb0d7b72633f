-- Reserve a driver for a ride: one compare-and-set on the driver's record.
-- KEYS[1] dispatch:driver:{id}   KEYS[2] the geo index's record of the driver, whose `ts`
-- is its last fix (RedisGeoIndex.driver_key: same hash tag, whatever the index's prefix)
-- ARGV ride_id, now_ms, lease_until_ms, ttl_ms, op (unique per call), keep_ms, serves,
--      default_prods
-- keep_ms: how long the record outlives its last change. serves: products (comma-joined)
-- the driver must serve one of, per the index's record (its `prods`, or default_prods if
-- it never had any); '' for any driver. Checked here, in the same atomic step as the
-- reservation, so a vehicle changed after the search cannot take a ride it may not serve.
-- ARGV[9] '1': the driver also leaves the geo index's search in the same step: the index's
-- own change of the driver (geoindex's driver_change.lua, which redis_drivers.py puts in
-- front of this script as the function index_change) runs on KEYS[2] with ARGV[10..13]
-- (RedisGeoIndex.availability_step's arguments); its reply follows the fence.
-- Returns {fence} on success ({fence, <index_change's reply>} with ARGV[9] '1'), or
-- {0, reason}. Mirrors dispatch.domain.drivers.reserve.
-- The same call sent again by the client library after a lost reply (redis-py re-sends
-- on a connection error mid-failover) gets the first call's answer: `op` names the last
-- call that changed this key (the index's change is not made again: the caller makes it).
local d = redis.call('HMGET', KEYS[1], 'status', 'fence', 'lease', 'op')
if d[4] == ARGV[5] then
  return {d[2]}
end
local now = tonumber(ARGV[2])
local ts = tonumber(redis.call('HGET', KEYS[2], 'ts'))
if not ts or ts < now - tonumber(ARGV[4]) then
  return {0, 'stale'}
end
if ARGV[7] and ARGV[7] ~= '' then
  local served = ',' .. (redis.call('HGET', KEYS[2], 'prods') or ARGV[8]) .. ','
  local ok = false
  for p in string.gmatch(ARGV[7], '[^,]+') do
    if string.find(served, ',' .. p .. ',', 1, true) then ok = true end
  end
  if not ok then return {0, 'product'} end
end
local status = d[1] or 'available'
local lease = tonumber(d[3]) or 0
if not (status == 'available' or (status == 'reserved' and lease <= now)) then
  return {0, status}
end
-- Strictly increasing, and above the clock in microseconds, so that a reservation lost
-- in a failover never hands its token to a later one.
local fence = math.max((tonumber(d[2]) or 0) + 1, now * 1000)
local f = string.format('%.0f', fence)
redis.call('HSET', KEYS[1], 'status', 'reserved', 'ride', ARGV[1], 'fence', f, 'lease', ARGV[3],
  'op', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if ARGV[9] == '1' then
  local out = index_change({KEYS[2]}, {ARGV[10], ARGV[11], ARGV[12], ARGV[13]})
  table.insert(out, 1, f)
  return out
end
return {f}
