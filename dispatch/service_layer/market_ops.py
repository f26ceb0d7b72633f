"""What operators may do with the market (ops tokens only): read an area's cells (of one
product, or of all), pin a group of cells to a multiplier (for one product, or for all),
turn surge off and on. Pins and the switch take effect at the next recompute of each
region (DISPATCH_SURGE_INTERVAL_S)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from h3.api import basic_str as h3

from dispatch.domain.geo import LatLng
from dispatch.domain.market import Pin
from dispatch.domain.principals import Principal, Role
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import Forbidden, InvalidRequest
from dispatch.service_layer.market import (
    AreaTooLarge,
    CellView,
    Snapshot,
    area_cells,
    area_view,
    region_of,
)
from dispatch.service_layer.ports import PinKey


def _ops_only(actor: Principal) -> None:
    if actor.role is not Role.OPS:
        raise Forbidden("the market is for ops tokens")


def _known(deps: Deps, product: str | None) -> None:
    """A product must be the market's (the entrypoints check it against the catalog
    first, with its own error): no other name reaches the store's keys."""
    if product is not None and product not in deps.market.config.products:
        raise InvalidRequest(f"unknown product {product[:40]!r}")


async def view(
    deps: Deps, actor: Principal, at: LatLng, radius_m: float, product: str | None = None
) -> list[CellView]:
    """The area's cells of `product` (None: of every product)."""
    _ops_only(actor)
    _known(deps, product)
    try:
        return await area_view(deps.market, deps.index, at, radius_m, deps.clock.now_ms(), product)
    except AreaTooLarge as exc:
        raise InvalidRequest(str(exc)) from None


async def view_and_switch(
    deps: Deps, actor: Principal, at: LatLng, radius_m: float, product: str | None = None
) -> Snapshot:
    """`view` and whether surge is on, as this instance last read them for the area
    (market.AreaSnapshots): at most AreaSnapshots.MAX_STALE_MS old, refreshed behind the
    reads once a recompute interval (at most a second) old. A fresh read of the area
    and the switch go in flight together (one round trip's time, not two)."""
    _ops_only(actor)
    _known(deps, product)
    try:
        area_cells(deps.market.config, at, radius_m)  # a bad area is refused before any read
    except AreaTooLarge as exc:
        raise InvalidRequest(str(exc)) from None
    market, clock = deps.market, deps.clock

    async def read() -> Snapshot:
        now = clock.now_ms()
        cells, on = await asyncio.gather(
            area_view(market, deps.index, at, radius_m, now, product),
            market.view_cache.enabled(market, now),
        )
        return Snapshot(now, cells, on)

    refresh_ms = min(1_000, market.config.interval_ms)
    return await market.snapshots.get((at, radius_m, product), clock.now_ms(), refresh_ms, read)


def expand(deps: Deps, ids: Sequence[str], limit: int) -> list[str]:
    """Market cells named by `ids`: each a market cell, or a coarser one (no coarser than
    a region) standing for every market cell inside it. InvalidRequest past `limit`."""
    config = deps.market.config
    out: set[str] = set()
    for cell in ids:
        if not h3.is_valid_cell(cell):
            raise InvalidRequest(f"not an H3 cell: {cell}")
        res = h3.get_resolution(cell)
        if not config.region_res <= res <= config.res:
            raise InvalidRequest(
                f"cell {cell} has resolution {res}; give cells of resolution "
                f"{config.region_res} to {config.res}"
            )
        if 7 ** (config.res - res) + len(out) > limit:
            raise InvalidRequest(f"at most {limit} market cells at once")
        out.update([cell] if res == config.res else h3.cell_to_children(cell, config.res))
    if len(out) > limit:
        raise InvalidRequest(f"at most {limit} market cells at once")
    return sorted(out)


async def pin(
    deps: Deps,
    actor: Principal,
    ids: Sequence[str],
    multiplier: float | None,
    ttl_s: int,
    limit: int,
    product: str | None = None,
) -> tuple[int, int | None]:
    """Pin (or unpin, with None) the cells for `product`'s riders (None: for every
    product; a product's own pin wins over it while both live); returns how many cells
    and until when (ms)."""
    _ops_only(actor)
    _known(deps, product)
    market = deps.market
    cap = market.config.policy.cap
    if multiplier is not None and not 1.0 <= multiplier <= cap:
        raise InvalidRequest(f"multiplier must be from 1.0 to the cap, {cap:g}")
    cells = expand(deps, ids, limit)
    now = deps.clock.now_ms()
    until = None if multiplier is None else now + ttl_s * 1000
    pins: Pin | None = None if multiplier is None or until is None else Pin(multiplier, until)
    by_region: dict[int, dict[PinKey, Pin | None]] = {}
    for c in cells:
        by_region.setdefault(region_of(market.config, c), {})[c, product] = pins
    for region, group in by_region.items():
        await market.store.set_pins(region, group, now)
    # The surge job visits active regions only: make these active now.
    await market.store.keep_active(sorted(by_region), now)
    return len(cells), until


async def set_enabled(deps: Deps, actor: Principal, enabled: bool) -> bool:
    _ops_only(actor)
    await deps.market.store.set_enabled(enabled)
    return enabled
