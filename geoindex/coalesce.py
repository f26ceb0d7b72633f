"""CoalescingGeoIndex: upserts from concurrent callers share one batch.

A fix sent alone costs two round trips and two script calls' worth of client work; in a
batch the region writes are shared and the driver writes ride one pipeline. A service
that takes one fix per HTTP request or WebSocket frame gets batches for free under load:
while one batch is in flight, the fixes that arrive meanwhile queue up and leave together
the moment it returns. Alone, a fix goes out at once. Each caller's positions are
validated before they join a batch, so one caller's bad input never fails another's
(upsert_valid: by the caller, at its own edge), and the batch goes to the backend's
upsert_valid: a fix is checked once on its way, not once here and again there.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import cast

import numpy as np
import numpy.typing as npt

from geoindex import limits
from geoindex.columns import Columns
from geoindex.model import DriverState, Neighbor, Position, UpsertResult
from geoindex.port import GeoIndex
from geoindex.split import Layout, RegionSplitting
from geoindex.supply import CellIds

# A caller's positions (checked) and the future its results go to.
_Waiting = tuple[Sequence[Position], asyncio.Future[list[UpsertResult]]]


class CoalescingGeoIndex:
    def __init__(self, inner: GeoIndex, max_batch: int = 1_000) -> None:
        self.inner = inner
        self.ttl_ms = inner.ttl_ms
        self._max_batch = min(max_batch, limits.MAX_BATCH)
        self._queue: deque[_Waiting] = deque()
        self._sender: asyncio.Task[None] | None = None

    async def upsert(self, positions: Sequence[Position]) -> list[UpsertResult]:
        checked = limits.check_batch(positions)
        return await self._join(checked) if checked else []

    async def upsert_valid(self, positions: Sequence[Position]) -> list[UpsertResult]:
        return await self._join(positions) if positions else []

    def _join(self, positions: Sequence[Position]) -> asyncio.Future[list[UpsertResult]]:
        """A place in the next batch: its results once that batch returns."""
        future: asyncio.Future[list[UpsertResult]] = asyncio.get_running_loop().create_future()
        self._queue.append((positions, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())
        return future

    async def _send(self) -> None:
        try:
            while self._queue:
                batch: list[_Waiting] = []
                size = 0
                while self._queue and (
                    not batch or size + len(self._queue[0][0]) <= self._max_batch
                ):
                    item = self._queue.popleft()
                    batch.append(item)
                    size += len(item[0])
                await self._send_batch(batch)
        finally:
            self._sender = None

    async def _send_batch(self, batch: list[_Waiting]) -> None:
        try:
            batched = [p for positions, _ in batch for p in positions]
            results = await self.inner.upsert_valid(batched)
        except asyncio.CancelledError:
            # Shutting down: nobody may wait forever for a batch that will not be sent.
            for _, future in (*batch, *self._queue):
                future.cancel()
            self._queue.clear()
            raise
        except Exception as exc:  # every caller of the batch gets the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for positions, future in batch:
            if not future.done():  # a caller that gave up (cancelled) needs no answer
                future.set_result(results[start : start + len(positions)])
            start += len(positions)

    async def remove(self, driver_ids: Sequence[str]) -> int:
        return await self.inner.remove(driver_ids)

    async def set_available(self, driver_id: str, available: bool) -> bool:
        return await self.inner.set_available(driver_id, available)

    async def set_available_many(self, driver_ids: Sequence[str], available: bool) -> int:
        return await self.inner.set_available_many(driver_ids, available)

    async def set_products(self, driver_id: str, products: Sequence[str]) -> bool:
        return await self.inner.set_products(driver_id, products)

    async def get(self, driver_id: str) -> DriverState | None:
        return await self.inner.get(driver_id)

    async def nearest(
        self, lat: float, lng: float, k: int, radius_m: float, product: str | None = None
    ) -> list[Neighbor]:
        return await self.inner.nearest(lat, lng, k, radius_m, product)

    async def nearest_many(
        self,
        points: Sequence[tuple[float, float]],
        k: int,
        radius_m: float,
        product: str | None = None,
    ) -> list[list[Neighbor]]:
        return await self.inner.nearest_many(points, k, radius_m, product)

    async def supply(
        self, lat: float, lng: float, radius_m: float, resolution: int
    ) -> dict[str, int]:
        return await self.inner.supply(lat, lng, radius_m, resolution)

    async def supply_in(self, cells: Sequence[str], product: str | None = None) -> dict[str, int]:
        return await self.inner.supply_in(cells, product)

    async def supply_table(
        self, cells: Sequence[str] | CellIds, products: Sequence[str]
    ) -> npt.NDArray[np.int64]:
        return await self.inner.supply_table(cells, products)

    async def within(
        self, lat: float, lng: float, radius_m: float, limit: int
    ) -> list[DriverState]:
        return await self.inner.within(lat, lng, radius_m, limit)

    async def within_columns(self, lat: float, lng: float, radius_m: float, limit: int) -> Columns:
        return await self.inner.within_columns(lat, lng, radius_m, limit)

    async def expire(self, cutoff_ms: int) -> list[str]:
        return await self.inner.expire(cutoff_ms)

    async def region_split(self) -> Layout:
        return await cast(RegionSplitting, self.inner).region_split()

    async def split_region(self, parent: str, res: int, settle_s: float | None = None) -> Layout:
        return await cast(RegionSplitting, self.inner).split_region(parent, res, settle_s)

    async def close(self) -> None:
        await self.inner.close()
