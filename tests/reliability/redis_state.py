"""What Redis itself says after a fault: the stored rides and driver records, and the
double-assignment checks of invariant 1 computed from them alone."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from dispatch.adapters import ride_codec
from dispatch.domain.rides import COMMITTED, Ride, RideStatus


@dataclass
class DriverRow:
    status: str
    ride: str | None
    fence: int
    lease: int = 0  # ms; while reserved


def _s(v: Any) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


async def load_state(client: Any) -> tuple[dict[str, Ride], dict[str, DriverRow]]:
    """Every ride and driver record, from a redis.asyncio Redis or RedisCluster."""
    rides: dict[str, Ride] = {}
    async for key in client.scan_iter(match="dispatch:ride:*", count=1000):
        raw = await client.hget(key, "j")
        if raw is not None:
            ride = ride_codec.decode(bytes(raw))
            rides[ride.id] = ride
    drivers: dict[str, DriverRow] = {}
    async for key in client.scan_iter(match="dispatch:driver:*", count=1000):
        status, ride, fence, lease = await client.hmget(key, "status", "ride", "fence", "lease")
        driver_id = _s(key)[len("dispatch:driver:{") : -1]  # type: ignore[index]
        drivers[driver_id] = DriverRow(
            _s(status) or "available", _s(ride) or None, int(fence or 0), int(lease or 0)
        )
    return rides, drivers


def double_assignments(
    rides: dict[str, Ride], drivers: dict[str, DriverRow], now_ms: int | None = None
) -> dict[str, Any]:
    """Invariant 1 from stored state: no driver in two active rides (committed ones, or a
    live offer besides another), and every committed ride is the one its driver's record
    holds, under the ride's own fencing token."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    per_driver: dict[str, list[str]] = defaultdict(list)
    not_held: list[str] = []
    offers_not_held = 0
    for ride in rides.values():
        if ride.driver_id is None:
            continue
        live_offer = ride.status is RideStatus.OFFERED and (ride.offer_expires_at or 0) > now_ms
        if ride.status not in COMMITTED and not live_offer:
            continue
        per_driver[ride.driver_id].append(ride.id)
        row = drivers.get(ride.driver_id)
        held = row is not None and (row.ride, row.fence) == (ride.id, ride.fence)
        if ride.status in COMMITTED and not held:
            not_held.append(ride.id)
        offers_not_held += live_offer and not held
    doubles = {d: ids for d, ids in per_driver.items() if len(ids) > 1}
    return {
        "drivers_in_two_active_rides": doubles,
        "committed_rides_not_held_by_their_driver": not_held,
        "live_offers_not_held": offers_not_held,  # a lost reservation: can never be accepted
        "committed": sum(r.status in COMMITTED for r in rides.values()),
    }


def orphans(rides: dict[str, Ride], drivers: dict[str, DriverRow]) -> dict[str, DriverRow]:
    """Drivers reserved for a ride that does not (or no longer) exist: a request that
    failed between reserving and storing its ride. Their lease frees them."""
    live = {r.id for r in rides.values() if r.status is not RideStatus.NO_DRIVER}
    return {
        d: row for d, row in drivers.items() if row.status == "reserved" and row.ride not in live
    }


def unreleased(rides: dict[str, Ride], drivers: dict[str, DriverRow], now_ms: int) -> list[str]:
    """Offers whose timeout, and orphaned reservations whose lease, ended more than two
    seconds ago but still stand: a timer that did not fire."""
    stuck = [
        r.id
        for r in rides.values()
        if r.status is RideStatus.OFFERED and (r.offer_expires_at or 0) < now_ms - 2_000
    ]
    stuck += [d for d, row in orphans(rides, drivers).items() if row.lease < now_ms - 2_000]
    return stuck
