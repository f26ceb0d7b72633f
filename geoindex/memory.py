"""MemoryGeoIndex: the embedded, in-process backend (the default when there is no Redis).

The same layout as the Redis backend, minus the network: per region a sorted list of
(score, driver_id) holding available drivers only, one more per region and product (a
driver listed in each product it serves), and one state record per driver. k-nearest
searches do not plan H3 disks here: they read a grid of the same drivers, one for every
available driver and one per product, searched in C (geoindex/_gridknn.c).
Every method runs without awaiting in between, so each call is atomic within the event loop.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from geoindex import limits
from geoindex._gridknn import Grid
from geoindex.cells import position_score, score_latlng
from geoindex.columns import Columns, nearest_rows
from geoindex.knn import Candidate
from geoindex.model import DriverState, Neighbor, Position, UpsertResult
from geoindex.search import SearchConfig
from geoindex.split import Entry, Layout
from geoindex.supply import (
    CellIds,
    checked_products,
    count_supply,
    id_rows,
    named_cells,
    supply_cells,
    table_columns,
)
from geoindex.within import check_limit


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Driver:
    score: int
    lat: float
    lng: float
    ts_ms: int
    seq: int | None
    available: bool
    region: int
    products: tuple[str, ...]


class MemoryGeoIndex:
    def __init__(
        self,
        *,
        ttl_ms: int = 30_000,
        clock: Callable[[], int] = wall_clock_ms,
        config: SearchConfig | None = None,
        new_drivers_available: bool = True,
        default_products: Sequence[str] = (),
    ) -> None:
        self.ttl_ms = ttl_ms
        self._clock = clock
        self._config = config or SearchConfig()
        self._drivers: dict[str, _Driver] = {}
        # Availability of drivers without a position (not seen yet, or swept): the Redis
        # backend keeps it for a day; here it lasts as long as the process.
        self._availability: dict[str, bool] = {}
        self._new_available = new_drivers_available
        # Products outlive positions too, for as long as the process.
        self._products: dict[str, tuple[str, ...]] = {}
        self._default_products = limits.check_products(default_products)
        # (region, product or None for every product) -> sorted (score, driver_id)
        self._regions: dict[tuple[int, str | None], list[tuple[int, str]]] = {}
        # product or None for every product -> the available drivers, for k-nearest
        self._grids: dict[str | None, Grid] = {}
        self._layout = Layout(self._config.region_res)  # the split list (geoindex/split.py)

    # -- writes ---------------------------------------------------------------------------
    async def upsert(self, positions: Sequence[Position]) -> list[UpsertResult]:
        return [self._upsert_one(p) for p in limits.check_batch(positions)]

    async def upsert_valid(self, positions: Sequence[Position]) -> list[UpsertResult]:
        return [self._upsert_one(p) for p in positions]

    def _upsert_one(self, p: Position) -> UpsertResult:
        old = self._drivers.get(p.driver_id)
        score = position_score(p.lat, p.lng)
        if old is not None and (old.ts_ms, old.seq, old.score) == (p.ts_ms, p.seq, score):
            return UpsertResult.ACCEPTED  # the same fix again: a retry, answered the same
        if old is not None and (
            p.ts_ms <= old.ts_ms or (p.seq is not None and old.seq is not None and p.seq <= old.seq)
        ):
            return UpsertResult.STALE
        lat, lng = score_latlng(score)
        if old is not None:
            available = old.available
        else:
            available = self._availability.pop(p.driver_id, self._new_available)
        seq = p.seq if p.seq is not None else (old.seq if old is not None else None)
        new = _Driver(
            score,
            lat,
            lng,
            p.ts_ms,
            seq,
            available,
            self._layout.write_region(score),
            self._products.get(p.driver_id, self._default_products),
        )
        self._unlist(p.driver_id, old)
        self._drivers[p.driver_id] = new
        self._list(p.driver_id, new)
        return UpsertResult.ACCEPTED

    async def remove(self, driver_ids: Sequence[str]) -> int:
        ids = [limits.check_driver_id(i) for i in driver_ids]
        return sum(self._drop(i) for i in ids)

    def _drop(self, driver_id: str) -> bool:
        self._availability.pop(driver_id, None)
        self._products.pop(driver_id, None)
        old = self._drivers.pop(driver_id, None)
        self._unlist(driver_id, old)
        return old is not None

    async def set_available(self, driver_id: str, available: bool) -> bool:
        limits.check_driver_id(driver_id)
        d = self._drivers.get(driver_id)
        if d is None:
            self._availability[driver_id] = available
            return False
        if d.available != available:
            self._unlist(driver_id, d)
            d.available = available
            self._list(driver_id, d)
        return True

    async def set_available_many(self, driver_ids: Sequence[str], available: bool) -> int:
        ids = [limits.check_driver_id(i) for i in driver_ids]
        return sum([await self.set_available(i, available) for i in ids])

    async def set_products(self, driver_id: str, products: Sequence[str]) -> bool:
        limits.check_driver_id(driver_id)
        served = limits.check_products(products)
        self._products[driver_id] = served
        d = self._drivers.get(driver_id)
        if d is None:
            return False
        if d.products != served:
            self._unlist(driver_id, d)
            d.products = served
            self._list(driver_id, d)
        return True

    async def expire(self, cutoff_ms: int) -> list[str]:
        limits.check_ts(cutoff_ms)
        gone = [i for i, d in self._drivers.items() if d.ts_ms < cutoff_ms]
        for i in gone:
            self._availability[i] = self._drivers[i].available
            self._unlist(i, self._drivers.pop(i))
        return gone

    def _list(self, driver_id: str, d: _Driver) -> None:
        if d.available:
            for product in (None, *d.products):
                entries = self._regions.setdefault((d.region, product), [])
                bisect.insort(entries, (d.score, driver_id))
                grid = self._grids.get(product)
                if grid is None:
                    grid = self._grids[product] = Grid()
                grid.add(driver_id, d.ts_ms, d.lat, d.lng)

    def _unlist(self, driver_id: str, d: _Driver | None) -> None:
        if d is None or not d.available:
            return
        for product in (None, *d.products):
            entries = self._regions[(d.region, product)]
            i = bisect.bisect_left(entries, (d.score, driver_id))
            del entries[i]
            if not entries:
                del self._regions[(d.region, product)]
            grid = self._grids[product]
            grid.remove(driver_id)
            if not grid:
                del self._grids[product]

    # -- the split list (geoindex/split.py) ------------------------------------------------
    async def region_split(self) -> Layout:
        return self._layout

    async def split_region(self, parent: str, res: int, settle_s: float | None = None) -> Layout:
        """Index `parent`'s drivers at `res` (region_res: unsplit it). One process holds
        the list, so no phase needs to wait: the drivers move at once, with no await in
        between (settle_s is the Redis backend's)."""
        p, res = self._layout.check_change(parent, res)
        parents = dict(self._layout.parents)
        if res == self._config.region_res:
            parents.pop(p, None)
        else:
            parents[p] = Entry(res)
        if parents == self._layout.parents:
            return self._layout
        self._layout = Layout(self._config.region_res, self._layout.version + 1, parents)
        for driver_id, d in self._drivers.items():
            region = self._layout.write_region(d.score)
            if region != d.region:
                self._unlist(driver_id, d)
                d.region = region
                self._list(driver_id, d)
        return self._layout

    # -- reads ----------------------------------------------------------------------------
    async def get(self, driver_id: str) -> DriverState | None:
        limits.check_driver_id(driver_id)
        d = self._drivers.get(driver_id)
        if d is None:
            return None
        return DriverState(driver_id, d.lat, d.lng, d.ts_ms, d.seq, d.available, d.products)

    def _fetch(
        self, region: int, product: str | None = None
    ) -> Callable[[int, int], Iterable[Candidate]]:
        entries = self._regions.get((region, product), [])

        def fetch(lo: int, hi: int) -> Iterable[Candidate]:
            i = bisect.bisect_left(entries, (lo, ""))
            while i < len(entries) and entries[i][0] <= hi:
                d = self._drivers[entries[i][1]]
                yield (entries[i][1], d.ts_ms, d.lat, d.lng)
                i += 1

        return fetch

    async def nearest_many(
        self,
        points: Sequence[tuple[float, float]],
        k: int,
        radius_m: float,
        product: str | None = None,
    ) -> list[list[Neighbor]]:
        checked = limits.check_searches(points, k, radius_m, product)
        return [await self.nearest(lat, lng, k, radius_m, product) for lat, lng in checked]

    async def nearest(
        self, lat: float, lng: float, k: int, radius_m: float, product: str | None = None
    ) -> list[Neighbor]:
        lat, lng = limits.check_latlng(lat, lng)
        k, radius_m = limits.check_k(k), limits.check_radius(radius_m)
        if product is not None:
            limits.check_product(product)
        grid = self._grids.get(product)
        if grid is None:
            return []
        return grid.nearest(lat, lng, k, radius_m, self._clock() - self.ttl_ms)

    async def supply(
        self, lat: float, lng: float, radius_m: float, resolution: int
    ) -> dict[str, int]:
        cells = supply_cells(lat, lng, radius_m, resolution, self._config.region_res)
        cells = self._layout.supply_cells(cells)
        min_ts = self._clock() - self.ttl_ms
        return count_supply(cells, lambda r, lo, hi: self._fresh_in(r, None, lo, hi, min_ts))

    async def supply_in(self, cells: Sequence[str], product: str | None = None) -> dict[str, int]:
        named = self._layout.supply_cells(named_cells(cells, self._config.region_res))
        if product is not None:
            limits.check_product(product)
        min_ts = self._clock() - self.ttl_ms
        return count_supply(named, lambda r, lo, hi: self._fresh_in(r, product, lo, hi, min_ts))

    async def supply_table(
        self, cells: Sequence[str] | CellIds, products: Sequence[str]
    ) -> npt.NDArray[np.int64]:
        if isinstance(cells, np.ndarray):
            named = id_rows(cells, self._config.region_res).as_cells()
        else:
            named = named_cells(cells, self._config.region_res)
        checked = checked_products(products)
        rows = self._layout.supply_cells(named)
        min_ts = self._clock() - self.ttl_ms
        counts = [self._fresh_in(r, p, lo, hi, min_ts) for p in checked for _, r, lo, hi in rows]
        table = np.array(counts, dtype=np.int64).reshape(len(checked), len(rows))
        return table_columns(named, rows, table)

    def _fresh_in(self, region: int, product: str | None, lo: int, hi: int, min_ts: int) -> int:
        """Fresh available drivers of the region (serving `product`) in a score range."""
        return sum(1 for c in self._fetch(region, product)(lo, hi) if c[1] >= min_ts)

    async def within(
        self, lat: float, lng: float, radius_m: float, limit: int
    ) -> list[DriverState]:
        return (await self.within_columns(lat, lng, radius_m, limit)).states()

    async def within_columns(self, lat: float, lng: float, radius_m: float, limit: int) -> Columns:
        lat, lng = limits.check_latlng(lat, lng)
        radius_m, limit = limits.check_radius(radius_m), check_limit(limit)
        min_ts = self._clock() - self.ttl_ms
        # One pass over the drivers for the columns the order needs (map with attrgetter
        # runs at C speed); the others are read for the rows kept only. A stale driver's
        # latitude is NaN, which is within no radius.
        ids = list(self._drivers)
        drivers = list(self._drivers.values())
        n = len(drivers)
        fresh = np.fromiter(map(_TS, drivers), np.int64, n) >= min_ts
        lats = np.where(fresh, np.fromiter(map(_LAT, drivers), np.float64, n), np.nan)
        lngs = np.fromiter(map(_LNG, drivers), np.float64, n)
        rows = nearest_rows(lat, lng, radius_m, limit, ids, lats, lngs)
        kept = [drivers[r] for r in rows.tolist()]
        m = len(kept)
        return Columns(
            [ids[r] for r in rows.tolist()],
            lats[rows],
            lngs[rows],
            np.fromiter(map(_TS, kept), np.int64, m),
            np.fromiter(map(_AVAILABLE, kept), np.bool_, m),
            list(map(_PRODUCTS, kept)),
        )

    async def close(self) -> None:
        return None


_TS, _LAT, _LNG = attrgetter("ts_ms"), attrgetter("lat"), attrgetter("lng")
_AVAILABLE, _PRODUCTS = attrgetter("available"), attrgetter("products")
