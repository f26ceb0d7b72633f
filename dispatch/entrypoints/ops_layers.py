"""The ops map's market and area layers, looked at by the ops feed beside its drivers and
sent on the same stream (one stream per page; one look per instance, shared by its pages).

- Market cells (supply, demand, no-driver rate, surge) of the whole watched area, from the
  market's ops view: several reads when the area is wider than one read's bound
  (ops_market_reads.py), of every product together and of each product on its own (the
  pages share one look, and each shows the product its operator picked). Surge only
  changes at each recompute, so the market is looked at once per recompute interval,
  not every tick.
- Areas from this instance's compiled copy (in memory, kept fresh by the area refresher):
  those whose bounding box meets the watched area's. Airport queue lengths: one read per
  airport drawn."""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import Protocol

from dispatch.domain.areas import AreaKind
from dispatch.domain.geo import LatLng, haversine_m
from dispatch.entrypoints.ops_market_reads import Read, plan_reads
from dispatch.service_layer.area_index import CompiledArea
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.market import MAX_VIEW_RADIUS_M, CellView, area_view
from dispatch.service_layer.ops_view import Area

log = logging.getLogger(__name__)

M_PER_DEGREE = 111_320.0


@dataclass(frozen=True, slots=True)
class Layers:
    market: list[CellView]  # of every product together
    areas_version: int
    areas: list[CompiledArea]
    queues: dict[str, int]  # airport id -> drivers waiting
    market_by_product: dict[str, list[CellView]] = field(default_factory=dict)


class LayerSource(Protocol):
    async def look(self, now_ms: int) -> Layers: ...


def _bbox_meets(area: Area, c: CompiledArea) -> bool:
    """Whether an area's bounding box meets the watched circle's (cheap, generous)."""
    dlat = area.radius_m / M_PER_DEGREE
    dlng = dlat / max(0.01, math.cos(math.radians(area.lat)))
    xs = [x for polygon in c.area.polygons for x, _ in polygon[0]]
    ys = [y for polygon in c.area.polygons for _, y in polygon[0]]
    return (
        min(ys) <= area.lat + dlat
        and max(ys) >= area.lat - dlat
        and min(xs) <= area.lng + dlng
        and max(xs) >= area.lng - dlng
    )


class LayerLook:
    """What the market and the areas hold now, around the watched area."""

    def __init__(self, deps: Deps, area: Area) -> None:
        self._deps = deps
        self._area = area
        self._market: list[CellView] = []
        self._by_product: dict[str, list[CellView]] = {}
        self._market_at: int | None = None
        self._reads: list[Read] | None = None  # planned at the first look
        self._areas_version = -2
        self._areas: list[CompiledArea] = []
        self._queue_lengths: dict[str, int] = {}
        self._failing = False

    async def look(self, now_ms: int) -> Layers:
        """Never fails: a read that does leaves the layers as last seen, and the drivers
        keep moving on the map. Said once when it starts failing, once when it works."""
        try:
            _, self._queue_lengths = await asyncio.gather(self._market_look(now_ms), self._queues())
            if self._failing:
                log.info("ops map layers: reading the market and the queues again")
            self._failing = False
        except Exception:
            if not self._failing:
                log.warning("ops map layers: reading the market or a queue failed", exc_info=True)
            self._failing = True
        return Layers(
            self._market, self._areas_version, self._areas, self._queue_lengths, self._by_product
        )

    async def _market_look(self, now_ms: int) -> None:
        market = self._deps.market
        due = self._market_at is None or now_ms - self._market_at >= market.config.interval_ms
        if due:
            if self._reads is None:
                self._reads = plan_reads(self._area, market.config.res, MAX_VIEW_RADIUS_M)
            reads, products = self._reads, market.config.products
            every, *each = await asyncio.gather(
                *(self._market_of(reads, now_ms, p) for p in (None, *products))
            )
            self._market, self._by_product = every, dict(zip(products, each, strict=True))
            self._market_at = now_ms

    async def _market_of(
        self, reads: list[Read], now_ms: int, product: str | None
    ) -> list[CellView]:
        """The cells of one product (None: of all) within the watched area."""
        market, index = self._deps.market, self._deps.index
        views = await asyncio.gather(
            *(area_view(market, index, c, r, now_ms, product) for c, r in reads)
        )
        # The reads overlap, and reach past the watched radius: each cell once, and only
        # those the area holds.
        centre = LatLng(self._area.lat, self._area.lng)
        cells = {c.cell: c for view in views for c in view}
        return [c for c in cells.values() if haversine_m(centre, c.centre) <= self._area.radius_m]

    async def _queues(self) -> dict[str, int]:
        book = self._deps.areas
        if book.version != self._areas_version:
            self._areas_version = book.version
            self._areas = [c for c in book.all() if _bbox_meets(self._area, c)]
        airports = [c.area.id for c in self._areas if c.area.kind is AreaKind.AIRPORT]
        orders = await asyncio.gather(*(self._deps.fences.queues.order(a) for a in airports))
        return {a: len(order) for a, order in zip(airports, orders, strict=True)}
