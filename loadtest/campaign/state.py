"""What Redis holds at the end: every ride and every driver record, and each driver's
stored fix seq (from the geo index's record of the driver)."""

from __future__ import annotations

from typing import Any

from dispatch.adapters import ride_codec
from loadtest.campaign.history import FinalDriver, FinalRide


def _s(v: Any) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


async def final_state(client: Any) -> tuple[dict[str, FinalRide], dict[str, FinalDriver]]:
    """From a redis.asyncio RedisCluster (or Redis)."""
    rides: dict[str, FinalRide] = {}
    async for key in client.scan_iter(match="dispatch:ride:*", count=1000):
        raw = await client.hget(key, "j")
        if raw is None:
            continue
        ride = ride_codec.decode(bytes(raw))
        rides[ride.id] = FinalRide(
            ride.id, ride.status.value, ride.driver_id, ride.offer_expires_at
        )
    drivers: dict[str, FinalDriver] = {}
    async for key in client.scan_iter(match="dispatch:driver:*", count=1000):
        driver_id = _s(key)[len("dispatch:driver:{") : -1]  # type: ignore[index]
        status, ride = await client.hmget(key, "status", "ride")
        seq = await client.hget(f"gi:d:{{{driver_id}}}", "seq")
        drivers[driver_id] = FinalDriver(
            driver_id,
            _s(status) or "available",
            _s(ride) or None,
            None if seq is None else int(seq),
        )
    return rides, drivers
