"""LimitStore on Redis / Redis Cluster: one small hash per rider and action under the
rider's hash tag (the slot of its active rides), changed by lua/rider_admit.lua (its
bucket part; a ride request's token is taken with its count, redis_rider_rides)."""

from __future__ import annotations

from dispatch.adapters.redis_client import rider_rides_key, script
from dispatch.service_layer.rider_limits import Rate
from geoindex import ScriptRunner

ADMIT = script("rider_admit")
SCRIPTS = (ADMIT,)


def limit_key(rider_id: str, action: str) -> str:
    return f"dispatch:rider:{{{rider_id}}}:limit:{action}"


def admit_args(now_ms: int, rate: Rate | None) -> list[str | int]:
    """rider_admit.lua's bucket arguments: now, tokens a ms and burst ('' for no token)."""
    if rate is None:
        return [now_ms, "", 0]
    return [now_ms, repr(rate.per_s / 1000), rate.burst]


class RedisLimitStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts

    async def take(self, rider_id: str, action: str, rate: Rate, now_ms: int) -> int:
        keys = [limit_key(rider_id, action), rider_rides_key(rider_id)]
        args = [*admit_args(now_ms, rate), "", 0, 0]  # no ride counted
        return int((await self._scripts.call(ADMIT, keys, args))[0])
