"""DriverStore on Redis / Redis Cluster: one hash per driver, changed only by Lua
compare-and-set scripts (lua/driver_*.lua) that mirror dispatch.domain.drivers."""

from __future__ import annotations

from dispatch.adapters.redis_client import (
    AnyRedis,
    call_id,
    driver_key,
    index_key,
    lua,
    translated,
)
from dispatch.domain.drivers import DriverRecord, DriverStatus
from dispatch.domain.errors import DriverBusy


def _s(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class RedisDriverStore:
    def __init__(self, client: AnyRedis, ttl_ms: int) -> None:
        self._r = client
        self._ttl_ms = ttl_ms
        self._reserve = client.register_script(lua("driver_reserve"))
        self._confirm = client.register_script(lua("driver_confirm"))
        self._release = client.register_script(lua("driver_release"))
        self._expire = client.register_script(lua("driver_expire_lease"))
        self._set_status = client.register_script(lua("driver_set_status"))

    async def get(self, driver_id: str) -> DriverRecord:
        with translated():
            raw = await self._r.hmget(driver_key(driver_id), "status", "ride", "fence", "lease")
        status, ride, fence, lease = (_s(v) for v in raw)
        return DriverRecord(
            driver_id,
            DriverStatus(status or "available"),
            ride or None,
            int(fence or 0),
            int(lease or 0),
        )

    async def set_status(self, driver_id: str, status: DriverStatus, now_ms: int) -> DriverRecord:
        if status not in (DriverStatus.AVAILABLE, DriverStatus.OFFLINE):
            raise ValueError("a driver may only set itself available or offline")
        with translated():
            res = await self._set_status(keys=[driver_key(driver_id)], args=[status.value, now_ms])
        if int(res[0]) == 0:
            raise DriverBusy(f"driver is {_s(res[1])} for ride {_s(res[2])}")
        return await self.get(driver_id)

    async def reserve(
        self, driver_id: str, ride_id: str, now_ms: int, lease_until: int
    ) -> DriverRecord | None:
        keys = [driver_key(driver_id), index_key(driver_id)]
        with translated():
            res = await self._reserve(
                keys=keys, args=[ride_id, now_ms, lease_until, self._ttl_ms, call_id()]
            )
        if len(res) == 2:
            return None
        return DriverRecord(driver_id, DriverStatus.RESERVED, ride_id, int(res[0]), lease_until)

    async def confirm(self, driver_id: str, ride_id: str, fence: int, now_ms: int) -> bool:
        with translated():
            res = await self._confirm(keys=[driver_key(driver_id)], args=[ride_id, fence, now_ms])
        return bool(int(res))

    async def release(self, driver_id: str, ride_id: str, fence: int) -> bool:
        with translated():
            res = await self._release(
                keys=[driver_key(driver_id)], args=[ride_id, fence, call_id()]
            )
        return bool(int(res))

    async def expire_lease(self, driver_id: str, now_ms: int) -> bool:
        with translated():
            res = await self._expire(keys=[driver_key(driver_id)], args=[now_ms, call_id()])
        return bool(int(res))
