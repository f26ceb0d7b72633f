"""DriverStore in process memory: the embedded backend. Each method checks and writes
with no await in between, so it is atomic within the event loop."""

from __future__ import annotations

from collections.abc import Sequence

from dispatch.domain import drivers
from dispatch.domain.drivers import DriverRecord, DriverStatus
from dispatch.service_layer.ports import Reservation
from geoindex import GeoIndex


class MemoryDriverStore:
    def __init__(self, index: GeoIndex) -> None:
        self._index = index  # for the freshness of the last fix (invariant 4)
        self._records: dict[str, DriverRecord] = {}

    def _get(self, driver_id: str) -> DriverRecord:
        return self._records.get(driver_id) or DriverRecord(driver_id)

    async def get(self, driver_id: str) -> DriverRecord:
        return self._get(driver_id)

    async def set_status(self, driver_id: str, status: DriverStatus, now_ms: int) -> DriverRecord:
        rec = drivers.set_status(self._get(driver_id), status, now_ms)
        self._records[driver_id] = rec
        return rec

    async def reserve(
        self,
        driver_id: str,
        ride_id: str,
        now_ms: int,
        lease_until: int,
        serves: tuple[str, ...] = (),
        hide: bool = False,
    ) -> DriverRecord | None:
        state = await self._index.get(driver_id)
        fresh = state is not None and state.ts_ms >= now_ms - self._index.ttl_ms
        if state is not None and serves and not set(serves) & set(state.products):
            return None  # its vehicle does not serve the ride's product (any more)
        rec = drivers.reserve(self._get(driver_id), ride_id, now_ms, lease_until, fresh)
        if rec is not None:
            self._records[driver_id] = rec
        return rec

    async def hidden(self, driver_id: str, fence: int) -> None:
        await self._index.set_available(driver_id, False)  # the whole change: one step here

    async def reserve_many(
        self, asks: Sequence[Reservation], now_ms: int, lease_until: int
    ) -> list[DriverRecord | None]:
        return [
            await self.reserve(a.driver_id, a.ride_id, now_ms, lease_until, a.serves) for a in asks
        ]

    async def confirm(self, driver_id: str, ride_id: str, fence: int, now_ms: int) -> bool:
        rec = drivers.confirm(self._get(driver_id), ride_id, fence, now_ms)
        if rec is not None:
            self._records[driver_id] = rec
        return rec is not None

    async def release(self, driver_id: str, ride_id: str, fence: int, show: bool = False) -> bool:
        rec = drivers.release(self._get(driver_id), ride_id, fence)
        return await self._freed(driver_id, rec, show)

    async def expire_lease(self, driver_id: str, now_ms: int, show: bool = False) -> bool:
        rec = drivers.expire_lease(self._get(driver_id), now_ms)
        return await self._freed(driver_id, rec, show)

    async def _freed(self, driver_id: str, rec: DriverRecord | None, show: bool) -> bool:
        if rec is None:
            return False
        self._records[driver_id] = rec
        if show:
            await self._index.set_available(driver_id, True)
        return True
