"""LimitStore on Redis / Redis Cluster: one small hash per rider and action under the
rider's hash tag (the slot of its active rides), changed by lua/rider_limit.lua."""

from __future__ import annotations

from dispatch.adapters.redis_client import script
from dispatch.service_layer.rider_limits import Rate
from geoindex import ScriptRunner

TAKE = script("rider_limit")
SCRIPTS = (TAKE,)


def limit_key(rider_id: str, action: str) -> str:
    return f"dispatch:rider:{{{rider_id}}}:limit:{action}"


class RedisLimitStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts

    async def take(self, rider_id: str, action: str, rate: Rate, now_ms: int) -> int:
        args = [now_ms, repr(rate.per_s / 1000), rate.burst]
        return int(await self._scripts.call(TAKE, [limit_key(rider_id, action)], args))
