-- Claim an idempotency key and, when the claim lets its request run and finds no ride
-- stored, admit the rider's ride in the same atomic step: the ride's id is minted in its
-- rider's slot, so all four keys share one. claim() is idem_begin.lua and admit()
-- rider_admit.lua, put in front of this by redis_idempotency.
-- KEYS[1] dispatch:idem:{ride id}   KEYS[2] dispatch:ride:{ride id}
-- KEYS[3] dispatch:rider:{id}:limit:<action>   KEYS[4] dispatch:rider:{id}:rides
-- ARGV fingerprint, token, lock_ms, then rider_admit.lua's six: now_ms, rate_per_ms,
--      burst, ride_id, cap, keep_ms
-- Returns idem_begin.lua's reply, except for a 'new' claim with no ride stored:
-- {'admitted', <rider_admit.lua's reply>}. A refused admission (its wait_ms above 0, or
-- the rides that fill the cap) keeps the claim: the request gives it up as any failure.
local reply = claim({KEYS[1], KEYS[2]}, {ARGV[1], ARGV[2], ARGV[3]})
if reply[1] ~= 'new' or reply[2] then return reply end
local admitted = admit({KEYS[3], KEYS[4]}, {ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]})
table.insert(admitted, 1, 'admitted')
return admitted
