"""Surge recomputation: one instance per region at a time, through a lease in the store.

Every instance runs the loop. Each round it lists the regions with recent demand (or
surge or pins still standing), takes or renews each region's lease (a fencing token
comes with it) and, for the regions it holds, recomputes every active cell of every
product from the window's counts of the product's riders (the region's, and its
neighbours' along the border: surge_border.py) and the index's supply of the product's
drivers (every product's in one read), all products in one vectorised pass
(surge_fast.py), and writes the result under its fence: a holder
that stalled past its lease can no longer write over the one that took over. An
instance that dies stops renewing; another takes the region once the lease lapses.
A holder writes only what moved since its own last write, while the store still holds
that write, and keeps it as the next round's state (surge_write.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import numpy as np

from dispatch.domain.market import per_minute
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.market import region_of, ring1
from dispatch.service_layer.region_jobs import run_region_job
from dispatch.service_layer.surge_border import border_of, neighbours_to_wake
from dispatch.service_layer.surge_cells import Layouts
from dispatch.service_layer.surge_fast import (
    Floats,
    Round,
    cells_of,
    cells_to_supply,
    lay_out,
    lay_out_kept,
    next_rows,
)
from dispatch.service_layer.surge_write import (
    Written,
    WrittenCache,
    full_surge,
    new_token,
    surge_patch,
)

log = logging.getLogger(__name__)

SUPPLY_CHUNK = 5_000  # cells per GeoIndex.supply_table call at most, its documented limit
# Drivers one supply read should count, about. On Redis a read is a script per region that
# holds its node while it walks every driver in the cells given, and every ride's calls to
# that node wait behind it: a dense city's few hundred cells read at once held a node for
# 20-100 ms each round, which was the rides' p99 (docs/benchmarks.md). So the cells go in
# reads one after another, each sized by the drivers per cell the one before found; a
# sparse round still reads thousands of cells in two or three calls.
SUPPLY_READ_DRIVERS = 2_000
FIRST_READ_CELLS = 16
# Which market cells neighbour which, per region: H3 geometry, the same for every
# instance and lease, so one per process (bounded) outlives the rounds that fill it.
LAYOUTS = Layouts(ring1)
# What this process last wrote for each region, in its layout's rows (surge_write.py).
WRITTEN = WrittenCache()


async def recompute_region(deps: Deps, region: int, holder: str, fence: int) -> bool:
    """One region's surge, recomputed and written under `fence`; False if the lease was
    lost meanwhile (nothing written)."""
    market = deps.market
    store, config = market.store, market.config
    now = deps.clock.now_ms()
    # Its own cells' riders, and its neighbours' along the border (one read per region,
    # every product in it, all in flight together): a border cell is smoothed over both
    # sides. The store's token says whether it still holds this process's last write.
    border = border_of(region, config.region_res, config.res)
    own, across, token, pins, enabled = await asyncio.gather(
        store.riders([region], config.window, now, config.products),
        store.riders_in(border.outer if border else {}, config.window, now, config.products),
        store.surge_token(region),
        store.pins(region),
        store.enabled(),
    )
    riders = {
        p: own[region].get(p, {}) | across.get(p, {}) for p in own[region].keys() | across.keys()
    }
    # Every product on one layout of the cells (the rings are the same geometry), each
    # priced by its own riders and drivers: a cell with demand in its disk is priced by
    # the supply of its own disk, so the supply of every cell within two rings of any
    # product's demand is read, every product's in one read (cells without demand nearby
    # fall to 1.0 whatever their supply). The layout keeps the rings from round to round;
    # the current multipliers are this process's last write while the store holds it.
    layout = LAYOUTS.get(region, lambda cell: region_of(config, cell) == region)
    last = WRITTEN.get(region)
    if last is not None and last.follows(layout, holder, fence, token):
        laid = lay_out_kept(layout, riders, last.products, last.computed)
    else:
        last = None
        laid = lay_out(layout, riders, await store.computed(region))
    laid = replace(laid, demand=per_minute(laid.demand, config.window.window_ms))
    computed = await _next(deps, laid)
    ours = Written(
        layout,
        holder,
        fence,
        new_token(holder, fence),
        laid.products,
        computed,
        enabled,
        frozenset(cell for cell, _ in pins),
    )
    ttl = config.surge_ttl_ms
    written: bool | None = None
    if last is not None:  # only what moved, on top of the write the store holds
        patch = surge_patch(last, ours, laid.snap, pins, now, config.products)
        written = await store.patch_surge(region, holder, fence, patch, ttl)
    if written is None:
        state, quoted = full_surge(
            laid.snap, laid.products, computed, pins, enabled, now, config.products
        )
        written = await store.put_surge(region, holder, fence, state, quoted, ttl, ours.token)
    if not written:
        WRITTEN.drop(region)
        return False
    WRITTEN.put(region, ours)
    # Itself until it has fallen back to 1.0; the neighbours its demand borders, so that
    # they price their side of the border.
    wake = neighbours_to_wake(border, cells_of(own[region])) if border else []
    if pins or (computed > 1.0).any():
        wake.append(region)
    if wake:
        await store.keep_active(wake, now)
    return True


async def _next(deps: Deps, laid: Round) -> Floats:
    """Every product's next multipliers (a row each, in the layout's row order), priced
    by its own drivers' supply: every product's supply read (GeoIndex.supply_table) in
    reads of about SUPPLY_READ_DRIVERS drivers each, then one vectorised pass."""
    if not laid.products:
        return np.ones((0, len(laid.snap.cells)))
    cols = cells_to_supply(laid)
    ids = laid.snap.ids[cols]  # the index takes the layout's ids: no hex names to check
    supply = np.zeros_like(laid.demand)
    start, size = 0, FIRST_READ_CELLS
    while start < len(ids):
        end = min(start + size, len(ids))
        table = await deps.index.supply_table(ids[start:end], laid.products)
        supply[:, cols[start:end]] = table
        found = float(np.sum(table))
        size = SUPPLY_CHUNK if not found else int(SUPPLY_READ_DRIVERS * (end - start) / found)
        start, size = end, max(1, min(SUPPLY_CHUNK, size))
    return next_rows(laid, supply, deps.market.config.policy)


async def surge_round(deps: Deps, holder: str, held: dict[int, int]) -> None:
    """Take or renew every active region's lease and recompute those held. `held`
    (region -> fence) is this instance's, kept from round to round."""
    store, config = deps.market.store, deps.market.config
    now = deps.clock.now_ms()
    regions = await store.active_regions(now, now - config.window.window_ms)
    for region in set(held) - set(regions):
        del held[region]  # nothing left to compute: the lease lapses by itself
    for region in regions:
        fence = await store.take_lease(region, holder, config.lease_ms, held.get(region, 0))
        if fence is None or not await recompute_region(deps, region, holder, fence):
            held.pop(region, None)
        else:
            held[region] = fence


async def run_surge_job(deps: Deps, holder: str, *, give_up_leases: bool = True) -> None:
    """Recompute every `interval_ms` until cancelled; then give the leases up (see
    region_jobs)."""
    store = deps.market.store

    async def drop(region: int, fence: int) -> None:
        await store.drop_lease(region, holder, fence)

    await run_region_job(
        "surge round",
        lambda held: surge_round(deps, holder, held),
        drop,
        deps.market.config.interval_ms / 1000,
        give_up_leases=give_up_leases,
    )
