"""The market per H3 cell and product: where demand is counted, what a cell's surge is
for a product, and the ops view of an area (of one product, or of all). H3 work lives
here (the domain stays free of it); the stores behind MarketStore partition everything
by the geo index's region."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from h3.api import basic_str as h3

from dispatch.domain.fares import FareTable
from dispatch.domain.geo import LatLng, haversine_m
from dispatch.domain.market import CountWindow, SurgePolicy, per_minute
from dispatch.domain.products import DEFAULT_CATALOG
from dispatch.service_layer.ports import Ask, CellCounts, MarketStore, Outcome, QuoteStore
from geoindex import BackendUnavailable, GeoIndex

log = logging.getLogger(__name__)

MAX_VIEW_RADIUS_M = 5_000.0
MAX_VIEW_CELLS = 2_000


@dataclass(frozen=True, slots=True)
class MarketConfig:
    res: int = 8  # market cells: about 0.74 km2 at res 8
    region_res: int = 5  # the geo index's regions: the market partitions the same way
    window: CountWindow = field(default_factory=CountWindow)
    policy: SurgePolicy = field(default_factory=SurgePolicy)
    fare: FareTable = field(default_factory=FareTable)
    quote_ttl_ms: int = 120_000
    interval_ms: int = 2_000  # surge recompute, per region
    lease_ms: int = 10_000  # the recomputing instance's lease: a dead one is replaced after
    # The catalog's products: each counted and priced on its own.
    products: tuple[str, ...] = tuple(DEFAULT_CATALOG.products)

    def __post_init__(self) -> None:
        if not 0 <= self.region_res <= self.res <= 15:
            raise ValueError("need region_res <= market res <= 15")
        if not self.products:
            raise ValueError("the market needs at least one product")
        if self.lease_ms < 2 * self.interval_ms:
            raise ValueError("the lease must outlast two recompute intervals")

    @property
    def surge_ttl_ms(self) -> int:
        """Stored surge outlives a lapsed lease and its takeover, then falls to 1.0."""
        return 3 * self.lease_ms


class ViewCache:
    """This instance's copy of what the ops view reads from the market store: each
    region's window counts and each cell's quoted surge (of a product, or of all) and
    the switch, read again once a recompute interval (at most a second) has passed.
    Ops maps poll the same areas every second or two; the surge they show moves only
    once per recompute, the counts are a minute's window; and every store call costs a
    round trip and, on a cluster, a client's routing work. With the copy fresh a read
    makes one call: the index's supply, always read. Quotes never read the copy."""

    MAX_REGIONS = 1_024
    MAX_CELLS = 50_000

    def __init__(self) -> None:
        # (region or cell, product or None for all) -> (read at, what was read)
        self._counts: dict[tuple[int, str | None], tuple[int, dict[str, CellCounts]]] = {}
        self._surge: dict[tuple[str, str | None], tuple[int, float]] = {}
        self._enabled: tuple[int, bool] | None = None

    @staticmethod
    def _fresh(at_ms: int, now_ms: int, market: Market) -> bool:
        return 0 <= now_ms - at_ms < min(1_000, market.config.interval_ms)

    async def counts(
        self, market: Market, regions: Sequence[int], now_ms: int, product: str | None = None
    ) -> dict[int, dict[str, CellCounts]]:
        kept = self._counts
        stale = [
            r
            for r in regions
            if (r, product) not in kept or not self._fresh(kept[r, product][0], now_ms, market)
        ]
        if stale:
            products = market.config.products if product is None else (product,)
            fresh = await market.store.counts(stale, market.config.window, now_ms, products)
            if len(kept) + len(stale) > self.MAX_REGIONS:
                kept.clear()  # an operator panning across a continent: start over
            kept.update(((r, product), (now_ms, fresh[r])) for r in stale)
        return {r: kept[r, product][1] for r in regions}

    async def surge(
        self,
        market: Market,
        cells: Sequence[tuple[str, int]],
        now_ms: int,
        product: str | None = None,
    ) -> dict[str, float]:
        kept = self._surge
        stale = [
            (c, r)
            for c, r in cells
            if (c, product) not in kept or not self._fresh(kept[c, product][0], now_ms, market)
        ]
        if stale:
            fresh = await market.store.surge(stale, product)
            if len(kept) + len(stale) > self.MAX_CELLS:
                kept.clear()
            kept.update(((c, product), (now_ms, fresh.get(c, 1.0))) for c, _ in stale)
        return {c: kept[c, product][1] for c, _ in cells}

    async def enabled(self, market: Market, now_ms: int) -> bool:
        kept = self._enabled
        if kept is None or not self._fresh(kept[0], now_ms, market):
            kept = self._enabled = (now_ms, await market.store.enabled())
        return kept[1]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An area's answer as read at `at_ms`: its cells and whether surge is on."""

    at_ms: int
    cells: list[CellView]
    enabled: bool


Area = tuple[LatLng, float, str | None]  # centre, radius, product


class AreaSnapshots:
    """This instance's last answer per area for GET /v1/market, refreshed behind the
    reads. Reading an area costs the backend a walk of its drivers (the index's supply
    of its cells: at 100,000 drivers about 4 ms of Redis CPU for a 2 km area, one script
    call per region) and the market store's reads; an ops map asks for the same area
    every second or two. So a read answers the area's snapshot, and once that is
    `refresh_ms` old (a recompute interval, at most a second) also starts one read of
    the area in the background, for the reads after it. A snapshot `max_stale_ms` old
    or older is not answered: that read (or the first of an area) waits for a fresh
    one. One read per area is in flight at a time, shared by every reader waiting for
    it. The backend then reads an area at most once per refresh interval however often
    it is asked, and no read waits on the backend while its area is asked for at least
    every `max_stale_ms`. A failed read in the background is logged and the snapshot
    kept until too old; a reader waiting for a read gets its error. Bounded: at most
    MAX_AREAS areas and MAX_CELLS cells kept, the one read longest ago dropped first."""

    MAX_AREAS = 256
    MAX_CELLS = 50_000
    MAX_STALE_MS = 5_000

    def __init__(self, max_stale_ms: int = MAX_STALE_MS) -> None:
        self.max_stale_ms = max_stale_ms
        self._kept: dict[Area, Snapshot] = {}  # the one read longest ago first
        self._cells = 0  # kept, over every area
        self._reading: dict[Area, asyncio.Task[Snapshot]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    async def get(
        self, area: Area, now_ms: int, refresh_ms: int, read: Callable[[], Awaitable[Snapshot]]
    ) -> Snapshot:
        """The area's snapshot: the kept one if younger than max_stale_ms (and read again
        behind it once refresh_ms old), else a fresh one from `read`."""
        kept = self._kept.get(area)
        if kept is not None and 0 <= now_ms - kept.at_ms < self.max_stale_ms:
            if now_ms - kept.at_ms >= refresh_ms and area not in self._reading:
                self._start(area, read)
            return kept
        task = self._reading.get(area) or self._start(area, read)
        # Shielded: a reader that goes away (its client hung up) leaves the read to the
        # others waiting for it and to the next reads.
        return await asyncio.shield(task)

    async def settled(self) -> None:
        """Once every read in flight has ended (whether it failed or not)."""
        while self._reading:
            await asyncio.gather(*self._reading.values(), return_exceptions=True)

    def _start(self, area: Area, read: Callable[[], Awaitable[Snapshot]]) -> asyncio.Task[Snapshot]:
        task = asyncio.ensure_future(self._read(area, read))
        self._reading[area] = task
        task.add_done_callback(lambda t: self._done(area, t))
        return task

    async def _read(self, area: Area, read: Callable[[], Awaitable[Snapshot]]) -> Snapshot:
        snap = await read()
        kept = self._kept
        old = kept.pop(area, None)
        self._cells += len(snap.cells) - (0 if old is None else len(old.cells))
        while kept and (len(kept) >= self.MAX_AREAS or self._cells > self.MAX_CELLS):
            self._cells -= len(kept.pop(next(iter(kept))).cells)
        kept[area] = snap
        return snap

    def _done(self, area: Area, task: asyncio.Task[Snapshot]) -> None:
        if self._reading.get(area) is task:
            del self._reading[area]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("market area read failed: %r", exc)  # retrieved: no asyncio noise


@dataclass(frozen=True, slots=True)
class Market:
    store: MarketStore
    quotes: QuoteStore
    config: MarketConfig
    view_cache: ViewCache = field(default_factory=ViewCache, compare=False)
    snapshots: AreaSnapshots = field(default_factory=AreaSnapshots, compare=False)


def cell_of(config: MarketConfig, at: LatLng) -> tuple[str, int]:
    """The market cell holding a validated point, and its region."""
    cell = h3.latlng_to_cell(at.lat, at.lng, config.res)
    return cell, region_of(config, cell)


def region_of(config: MarketConfig, cell: str) -> int:
    return int(h3.cell_to_parent(cell, config.region_res), 16)


@functools.lru_cache(maxsize=65_536)
def ring1(cell: str) -> tuple[str, ...]:
    """A cell's ring-1 neighbours (six, five around a pentagon). They never change, and a
    region's recompute asks for the same ones every round: cached."""
    return tuple(c for c in h3.grid_disk(cell, 1) if c != cell)


async def count_ask(
    market: Market,
    rider_id: str,
    at: LatLng,
    now_ms: int,
    outcome: Outcome,
    eta_s: int | None = None,
    *,
    product: str,
) -> None:
    """Count one quote or ride request as demand for its product in its pickup cell
    (one store call). Best effort: the counters are statistics, and a ride already
    stored must not fail for them."""
    await count_asks(
        market, [ask_of(market, rider_id, at, now_ms, outcome, eta_s, product=product)]
    )


def ask_of(
    market: Market,
    rider_id: str,
    at: LatLng,
    now_ms: int,
    outcome: Outcome,
    eta_s: int | None = None,
    *,
    product: str,
) -> Ask:
    cell, region = cell_of(market.config, at)
    return Ask(cell, region, rider_id, now_ms, outcome, eta_s, product=product)


async def count_asks(market: Market, asks: Sequence[Ask]) -> None:
    """count_ask for many (a matching window's offers), in one store call."""
    try:
        await market.store.count_many(asks, market.config.window)
    except BackendUnavailable as exc:
        log.warning("%d market counts lost: %s", len(asks), exc)


async def surge_at(market: Market, at: LatLng, product: str | None = None) -> tuple[str, float]:
    """The pickup cell and the multiplier the product's riders there are quoted now
    (None: the highest any product is quoted there)."""
    cell, region = cell_of(market.config, at)
    return cell, (await market.store.surge([(cell, region)], product)).get(cell, 1.0)


# -- the ops view --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CellView:
    cell: str
    centre: LatLng
    supply: int
    demand_per_min: float
    requests: int
    no_driver_rate: float | None  # None without requests
    mean_eta_s: float | None
    surge: float


class AreaTooLarge(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AreaCell:
    cell: str
    region: int
    centre: LatLng


def cells_within(config: MarketConfig, at: LatLng, radius_m: float) -> list[str]:
    """Market cells whose centre lies within radius_m; AreaTooLarge past the limits."""
    return [c.cell for c in area_cells(config, at, radius_m)]


def area_cells(config: MarketConfig, at: LatLng, radius_m: float) -> tuple[AreaCell, ...]:
    """cells_within with each cell's region and centre; AreaTooLarge past the limits."""
    if not 0 <= radius_m <= MAX_VIEW_RADIUS_M:
        raise AreaTooLarge(f"radius_m must be in [0, {MAX_VIEW_RADIUS_M:g}]")
    return _area_cells(at, float(radius_m), config.res, config.region_res)


@functools.lru_cache(maxsize=256)
def _area_cells(at: LatLng, radius_m: float, res: int, region_res: int) -> tuple[AreaCell, ...]:
    """Cached: an ops map and the market stream look at the same area again and again, and
    this geometry (an H3 disk, a centre and a distance per cell) was a third of a read's
    CPU. Errors are not cached."""
    edge = h3.average_hexagon_edge_length(res, "m")
    rings = int(radius_m / (1.3 * edge)) + 2  # ring j's nearest centres: ~1.5 j edges
    if 3 * rings * (rings + 1) + 1 > 4 * MAX_VIEW_CELLS:
        raise AreaTooLarge(f"at most {MAX_VIEW_CELLS} cells of resolution {res}")
    out = []
    for c in h3.grid_disk(h3.latlng_to_cell(at.lat, at.lng, res), rings):
        centre = LatLng(*h3.cell_to_latlng(c))
        if haversine_m(at, centre) <= radius_m:
            out.append(AreaCell(c, int(h3.cell_to_parent(c, region_res), 16), centre))
    if len(out) > MAX_VIEW_CELLS:
        raise AreaTooLarge(f"at most {MAX_VIEW_CELLS} cells of resolution {res}")
    return tuple(out)


async def area_view(
    market: Market,
    index: GeoIndex,
    at: LatLng,
    radius_m: float,
    now_ms: int,
    product: str | None = None,
) -> list[CellView]:
    """Every market cell within radius_m with drivers, demand or surge (others left out):
    of one product (its drivers, its riders, its surge), or with None of every product
    (every available driver; the products' riders, requests and ETAs summed; the highest
    multiplier any product is quoted in the cell)."""
    config = market.config
    cells = area_cells(config, at, radius_m)
    if not cells:
        return []
    # Independent reads, in flight together: the view costs one round trip's time. The
    # index is asked for these very cells (its own supply(lat, lng, radius) would lay the
    # same disk out a second time); the market's part comes from this instance's copy
    # when fresh (ViewCache).
    supply, counts, surge = await asyncio.gather(
        index.supply_in([c.cell for c in cells], product),
        market.view_cache.counts(market, sorted({c.region for c in cells}), now_ms, product),
        market.view_cache.surge(market, [(c.cell, c.region) for c in cells], now_ms, product),
    )
    out = []
    window_ms = config.window.window_ms
    for a in cells:
        n = counts[a.region].get(a.cell, _NONE)
        s = supply.get(a.cell, 0)
        m = surge.get(a.cell, 1.0)
        if not (s or n.riders or n.requests or m > 1.0):
            continue
        out.append(
            CellView(
                cell=a.cell,
                centre=a.centre,
                supply=s,
                demand_per_min=round(per_minute(n.riders, window_ms), 2),
                requests=n.requests,
                no_driver_rate=round(n.no_driver / n.requests, 3) if n.requests else None,
                mean_eta_s=round(n.eta_sum_s / n.etas, 1) if n.etas else None,
                surge=m,
            )
        )
    return out


_NONE = CellCounts()
