"""The ETA port: pickup times for matching, offers, quotes and the ride JSON, from one
model every instance shares (its parameters live in the backend), learned from the
pickups drivers make (dispatch.domain.eta)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from h3.api import basic_str as h3

from dispatch.domain.eta import EtaParams, Learning, hour_of_week, observe
from dispatch.domain.geo import LatLng

ETA_RES = 7  # about 5 km²: enough pickups per cell and hour to learn from
# A cell's parameters, once read, serve this instance's offers and quotes for a few
# seconds (a smoothed average of many pickups moves slowly; this instance's own updates
# replace its copy at once): a ride request's ETA read is most often no round trip.
CACHE_S = 5.0
CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class EtaKey:
    cell: str  # H3 hex at ETA_RES
    hour: int  # hour of the week, 0-167
    region: int  # the partition (Redis Cluster slot) the cell's parameters live in


class EtaStore(Protocol):
    async def get(self, keys: Sequence[EtaKey]) -> list[EtaParams | None]:
        """Each key's learned parameters, None where nothing was learned yet."""
        ...

    async def put(self, key: EtaKey, params: EtaParams) -> None: ...


class EtaModel:
    def __init__(
        self,
        store: EtaStore,
        *,
        region_res: int,
        defaults: EtaParams | None = None,
        learning: Learning | None = None,
        cache_s: float = CACHE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._cache_s = cache_s
        self._monotonic = monotonic
        self._cache: dict[EtaKey, tuple[float, EtaParams | None]] = {}
        self.defaults = defaults or EtaParams()
        self.learning = learning or Learning()
        # The parameters of a cell live under its parent at the index's region resolution
        # (never finer than the cell itself), as the geo index and the market partition.
        self._tag_res = min(region_res, ETA_RES)

    def key(self, at: LatLng, now_ms: int) -> EtaKey:
        cell = h3.latlng_to_cell(at.lat, at.lng, ETA_RES)
        region = int(h3.str_to_int(h3.cell_to_parent(cell, self._tag_res)))
        return EtaKey(cell, hour_of_week(now_ms), region)

    async def params(self, at: LatLng, now_ms: int) -> EtaParams:
        key = self.key(at, now_ms)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._monotonic():
            return cached[1] or self.defaults
        (found,) = await self.store.get([key])
        self._keep(key, found)
        return found or self.defaults

    def _keep(self, key: EtaKey, params: EtaParams | None) -> None:
        if self._cache_s <= 0:
            return
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()  # a few seconds' worth: read again
        self._cache[key] = (self._monotonic() + self._cache_s, params)

    async def params_many(self, points: Sequence[LatLng], now_ms: int) -> list[EtaParams]:
        """One store read (pipelined) for many pickups: a matching window's."""
        found = await self.store.get([self.key(p, now_ms) for p in points])
        return [f or self.defaults for f in found]

    async def eta_s(self, pickup: LatLng, distance_m: float, now_ms: int) -> int:
        return (await self.params(pickup, now_ms)).eta_s(distance_m)

    async def observe_pickup(
        self,
        pickup: LatLng,
        distance_m: float,
        duration_ms: int,
        now_ms: int,
        path_m: float | None = None,
    ) -> EtaParams | None:
        """Learn from one pickup (accepted `duration_ms` ago from `distance_m` away).
        Two instances learning in one cell at once may lose one of the two updates: a
        smoothed average shrugs that off, so no atomic read-modify-write is paid for."""
        key = self.key(pickup, now_ms)
        (found,) = await self.store.get([key])
        moved = observe(
            found or self.defaults, self.learning, distance_m, duration_ms / 1000, path_m
        )
        if moved is not None:
            await self.store.put(key, moved)
            self._keep(key, moved)
        return moved
