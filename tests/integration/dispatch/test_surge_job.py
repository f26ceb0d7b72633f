"""Surge recomputed by one instance per region, per product: a product's riders and
drivers price it alone; every instance answers the same multiplier, and when the
recomputing instance dies another takes over within the lease."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from h3.api import basic_str as h3

from dispatch.bootstrap import bootstrap
from dispatch.domain.geo import LatLng
from dispatch.domain.market import Pin
from dispatch.service_layer import surge_job
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.market import count_ask, surge_at
from dispatch.service_layer.ports import Outcome
from dispatch.service_layer.surge_job import run_surge_job, surge_round
from dispatch.service_layer.surge_write import full_surge
from dispatch.settings import Settings
from geoindex import Position
from tests.fake_clock import FakeClock
from tests.waiting import eventually

HOT = LatLng(52.52, 13.405)
FAR = LatLng(52.549, 13.387)  # same region (res 5), four rings away at res 8
# A lease well above a round's time even on a loaded machine: a round that outlasts its
# lease has its write refused (the fence at work), which would look like no takeover.
INTERVAL_S, LEASE_S = 0.1, 1.5


async def spike(
    deps: Deps, at: LatLng, riders: int, prefix: str = "r", product: str = "economy"
) -> None:
    for i in range(riders):
        now = deps.clock.now_ms()
        await count_ask(deps.market, f"{prefix}{i}", at, now, Outcome.QUOTE, product=product)


@contextlib.asynccontextmanager
async def job(deps: Deps, holder: str, give_up: bool = True) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(run_surge_job(deps, holder, give_up_leases=give_up))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_spike_surges_its_cell_and_ring_on_the_embedded_backend() -> None:
    clock = FakeClock()
    async with bootstrap(Settings(), clock=clock) as runtime:
        deps = runtime.deps
        await spike(deps, HOT, 40)
        held: dict[int, int] = {}
        for _ in range(6):
            await surge_round(deps, "only", held)
        far_cell, _ = await surge_at(deps.market, FAR)
        hot_cell, _ = await surge_at(deps.market, HOT)
        assert h3.cell_to_parent(far_cell, 5) == h3.cell_to_parent(hot_cell, 5)
        assert h3.grid_distance(far_cell, hot_cell) >= 3
        cell, multiplier = await surge_at(deps.market, HOT)
        assert multiplier == deps.market.config.policy.cap
        ring = [c for c in h3.grid_ring(cell, 1)]
        near = LatLng(*h3.cell_to_latlng(ring[0]))
        assert (await surge_at(deps.market, near))[1] > 1.0
        two_away = LatLng(*h3.cell_to_latlng(h3.grid_ring(cell, 2)[0]))
        assert (await surge_at(deps.market, two_away))[1] == 1.0
        # Demand gone (the window passed): back to 1.0 within a few rounds.
        clock.advance(deps.market.config.window.window_ms + 5_000)
        for _ in range(6):
            await surge_round(deps, "only", held)
        assert (await surge_at(deps.market, HOT))[1] == 1.0


async def test_drivers_in_the_cell_damp_the_surge() -> None:
    clock = FakeClock()
    async with bootstrap(Settings(), clock=clock) as runtime:
        deps = runtime.deps
        await deps.index.upsert(
            [Position(f"d{i}", HOT.lat, HOT.lng + i * 1e-5, clock.now) for i in range(30)]
        )
        await spike(deps, HOT, 40)
        held: dict[int, int] = {}
        for _ in range(6):
            await surge_round(deps, "only", held)
        assert (await surge_at(deps.market, HOT))[1] == 1.0


async def test_each_product_is_priced_by_its_own_riders_and_drivers() -> None:
    clock = FakeClock()
    async with bootstrap(Settings(), clock=clock) as runtime:
        deps = runtime.deps
        # Economy drivers at the spot, no XL driver: an XL spike surges XL alone, and the
        # economy drivers do not damp it.
        await deps.index.upsert(
            [Position(f"e{i}", HOT.lat, HOT.lng + i * 1e-5, clock.now) for i in range(50)]
        )
        await spike(deps, HOT, 40, product="xl")
        await spike(deps, HOT, 3, prefix="e", product="economy")
        held: dict[int, int] = {}
        for _ in range(6):
            await surge_round(deps, "only", held)
        cap = deps.market.config.policy.cap
        assert (await surge_at(deps.market, HOT, "xl"))[1] == cap
        assert (await surge_at(deps.market, HOT, "economy"))[1] == 1.0
        assert (await surge_at(deps.market, HOT, "wav"))[1] == 1.0
        assert (await surge_at(deps.market, HOT))[1] == cap  # the highest of any product
        # The drivers turn out to serve XL too (more of them than riders): XL falls back.
        for i in range(50):
            await deps.index.set_products(f"e{i}", ["economy", "xl"])
        for _ in range(6):
            await surge_round(deps, "only", held)
        assert (await surge_at(deps.market, HOT, "xl"))[1] == 1.0


@pytest.mark.redis
@pytest.mark.parametrize("kind", ["redis_url", "redis_cluster_url"])
async def test_two_instances_answer_the_same_and_a_dead_holder_is_replaced(
    kind: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(kind)
    settings = Settings(surge_interval_s=INTERVAL_S, surge_lease_s=LEASE_S, **{kind: url})
    async with AsyncExitStack() as stack:
        a = (await stack.enter_async_context(bootstrap(settings))).deps
        b = (await stack.enter_async_context(bootstrap(settings))).deps
        await spike(a, HOT, 40)
        await spike(b, HOT, 40, prefix="s")  # counts meet in Redis, whoever took them
        job_a = await stack.enter_async_context(job(a, "a", give_up=False))

        async def both_surge() -> bool:
            (_, ma), (_, mb) = await surge_at(a.market, HOT), await surge_at(b.market, HOT)
            return ma == mb == a.market.config.policy.cap

        await eventually(both_surge, timeout_s=10)  # a holds the lease: it started alone
        client = a.market.store._r  # type: ignore[attr-defined]
        region = int(h3.cell_to_parent(h3.latlng_to_cell(HOT.lat, HOT.lng, 8), 5), 16)
        lease_key = f"mk:{{r{region:x}}}:lease"
        assert (await client.get(lease_key)).decode().split()[1] == "a"
        async with job(b, "b") as job_b:
            await asyncio.sleep(3 * INTERVAL_S)
            assert (await client.get(lease_key)).decode().split()[1] == "a"  # b waits
            # Kill a (no goodbye: its lease must lapse), then make new demand elsewhere
            # in the region that only a live holder can price.
            job_a.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job_a
            killed_at = time.monotonic()
            await spike(b, FAR, 40, prefix="f")

            async def far_surges() -> bool:
                lease = await client.get(lease_key)
                assert (await surge_at(b.market, FAR))[1] > 1.0, (lease, job_b)
                return True

            await eventually(far_surges, timeout_s=10)
            took = time.monotonic() - killed_at
            assert took <= LEASE_S + 3 * INTERVAL_S + 0.5, took
            assert (await client.get(lease_key)).decode().split()[1] == "b"

            # b's rounds keep moving FAR's surge (1.5, then the cap): the two reads are
            # a moment apart, so they agree once a round leaves it where it settles.
            async def both_answer_the_same() -> bool:
                return await surge_at(a.market, FAR) == await surge_at(b.market, FAR)

            await eventually(both_answer_the_same, timeout_s=5)


@pytest.mark.redis
async def test_rounds_after_the_first_write_only_what_moved_and_store_a_full_writes_surge(
    redis_url: str,
) -> None:
    """The holder's rounds patch the stored surge (surge_write.py); after each, the hash
    is the one a full write of the same round leaves (written to a spare region through
    market_surge_put.lua and compared field by field), with demand moving, a pin coming
    and going and the switch turned off and on; a write the store lost is written in full."""
    clock = FakeClock()
    async with bootstrap(Settings(redis_url=redis_url), clock=clock) as runtime:
        deps = runtime.deps
        store, config = deps.market.store, deps.market.config
        client = store._r  # type: ignore[attr-defined]
        region = int(h3.cell_to_parent(h3.latlng_to_cell(HOT.lat, HOT.lng, 8), 5), 16)
        spare = int(h3.cell_to_parent(h3.latlng_to_cell(-33.9, 18.4, 8), 5), 16)
        calls = {"put_surge": 0, "patch_surge": 0}
        for name in calls:

            def counted(f: Any, name: str = name) -> Any:
                async def call(*a: Any, **k: Any) -> Any:
                    if a[0] == region:
                        calls[name] += 1
                    return await f(*a, **k)

                return call

            setattr(store, name, counted(getattr(store, name)))
        held: dict[int, int] = {}
        hot = h3.latlng_to_cell(HOT.lat, HOT.lng, 8)
        steps = [
            lambda: spike(deps, HOT, 40),
            lambda: spike(deps, FAR, 25, prefix="f", product="xl"),
            lambda: store.set_pins(region, {(hot, None): Pin(1.3, clock.now + 4_000)}, clock.now),
            lambda: store.set_enabled(False),
            lambda: store.set_enabled(True),
            lambda: client.delete(f"mk:{{r{region:x}}}:token"),  # as a failover would lose it
        ]
        for step in steps:
            await step()
            for _ in range(2):
                clock.advance(2_500)
                await surge_round(deps, "only", held)
                written = surge_job.WRITTEN.get(region)
                assert written is not None
                pins = await store.pins(region)
                state, quoted = full_surge(
                    written.layout.snapshot((), ()),
                    written.products,
                    written.computed,
                    pins,
                    written.enabled,
                    clock.now,
                    config.products,
                )
                fence = await store.take_lease(spare, "spare", 60_000)
                assert await store.put_surge(spare, "spare", fence, state, quoted, 60_000)
                ours = await client.hgetall(f"mk:{{r{region:x}}}:surge")
                full = await client.hgetall(f"mk:{{r{spare:x}}}:surge")
                assert ours == full
                assert await store.computed(region) == state
        assert (await surge_at(deps.market, HOT))[1] > 1.0
        # in full: the first round and the one after the lost write; every other patched
        assert calls == {"put_surge": 2, "patch_surge": 10}
