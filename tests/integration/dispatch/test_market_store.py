"""The market stores' contract, on every backend: counting demand per product (one rider
counts once per cell, product and window), the window sliding, the surge lease and its
fencing token, surge per product, pins for a product or all, the switch, and quotes that
expire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from h3.api import basic_str as h3

from dispatch.adapters.memory_market import MemoryMarketStore, MemoryQuoteStore
from dispatch.adapters.redis_client import connect
from dispatch.adapters.redis_market import SCRIPTS, RedisMarketStore, RedisQuoteStore
from dispatch.domain.fares import Estimate, FareTable
from dispatch.domain.geo import LatLng
from dispatch.domain.market import CountWindow, Pin
from dispatch.domain.quotes import Quote
from dispatch.service_layer.ports import (
    Ask,
    CellCounts,
    MarketStore,
    Outcome,
    QuoteStore,
    SurgePatch,
)
from geoindex import ScriptRunner
from tests.fake_clock import FakeClock

WINDOW = CountWindow(5_000, 60_000)
CELL = h3.latlng_to_cell(52.52, 13.405, 8)
OTHER = h3.latlng_to_cell(52.53, 13.42, 8)
REGION = int(h3.cell_to_parent(CELL, 5), 16)
ECONOMY = ("economy",)
PRODUCTS = ("economy", "xl", "wav")


@dataclass
class Stores:
    market: MarketStore
    quotes: QuoteStore
    clock: FakeClock


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=pytest.mark.redis),
    ]
)
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    clock = FakeClock()
    if request.param == "memory":
        yield Stores(MemoryMarketStore(clock.now_ms), MemoryQuoteStore(clock.now_ms), clock)
        return
    cluster = request.param == "cluster"
    url = request.getfixturevalue("redis_cluster_url" if cluster else "redis_url")
    client: Any = connect(url, cluster=cluster)
    try:
        if cluster:
            await client.initialize()
        runner = ScriptRunner(client, SCRIPTS)
        yield Stores(RedisMarketStore(runner), RedisQuoteStore(client, clock.now_ms), clock)
    finally:
        await client.aclose()


def ask(s: Stores, rider: str, outcome: Outcome = Outcome.QUOTE, **kw: Any) -> Ask:
    product = kw.pop("product", "economy")
    return Ask(kw.pop("cell", CELL), REGION, rider, s.clock.now, outcome, **kw, product=product)


async def counts(s: Stores, products: tuple[str, ...] = ECONOMY) -> dict[str, CellCounts]:
    return (await s.market.counts([REGION], WINDOW, s.clock.now, products))[REGION]


async def test_each_rider_counts_once_per_cell_and_window(stores: Stores) -> None:
    for _ in range(50):
        await stores.market.count(ask(stores, "flood"), WINDOW)
        stores.clock.advance(400)  # 20 s of quotes over four buckets
    await stores.market.count(ask(stores, "calm"), WINDOW)
    await stores.market.count(ask(stores, "calm", cell=OTHER), WINDOW)
    got = await counts(stores)
    assert got[CELL].riders == 2
    assert got[OTHER].riders == 1


async def test_requests_no_driver_and_etas_are_counted(stores: Stores) -> None:
    await stores.market.count(ask(stores, "a", Outcome.OFFERED, eta_s=120), WINDOW)
    await stores.market.count(ask(stores, "a", Outcome.OFFERED, eta_s=60), WINDOW)
    await stores.market.count(ask(stores, "b", Outcome.NO_DRIVER), WINDOW)
    assert (await counts(stores))[CELL] == CellCounts(
        riders=2, requests=3, no_driver=1, eta_sum_s=180, etas=2
    )


async def test_asks_counted_in_one_call_count_as_one_by_one(stores: Stores) -> None:
    await stores.market.count_many(
        [
            ask(stores, "a", Outcome.OFFERED, eta_s=120),
            ask(stores, "a", Outcome.OFFERED, eta_s=60),
            ask(stores, "b", Outcome.NO_DRIVER),
            ask(stores, "c", Outcome.OFFERED, eta_s=30, cell=OTHER),
        ],
        WINDOW,
    )
    await stores.market.count_many([], WINDOW)
    got = await counts(stores)
    assert got[CELL] == CellCounts(riders=2, requests=3, no_driver=1, eta_sum_s=180, etas=2)
    assert got[OTHER] == CellCounts(riders=1, requests=1, no_driver=0, eta_sum_s=30, etas=1)
    assert REGION in await stores.market.active_regions(stores.clock.now, 0)


async def test_riders_are_the_counts_distinct_riders_alone(stores: Stores) -> None:
    await stores.market.count(ask(stores, "a", Outcome.OFFERED, eta_s=120), WINDOW)
    await stores.market.count(ask(stores, "b", Outcome.NO_DRIVER), WINDOW)
    stores.clock.advance(10_000)
    await stores.market.count(ask(stores, "a", cell=OTHER), WINDOW)
    await stores.market.count(ask(stores, "a", Outcome.OFFERED), WINDOW)  # counted already
    empty = REGION + 1
    got = await stores.market.riders([REGION, empty], WINDOW, stores.clock.now, PRODUCTS)
    assert got == {REGION: {"economy": {CELL: 2, OTHER: 1}}, empty: {}}


async def test_riders_in_reads_only_the_named_cells_of_each_region(stores: Stores) -> None:
    far = h3.latlng_to_cell(48.85, 2.35, 8)  # another region
    far_region = int(h3.cell_to_parent(far, 5), 16)
    await stores.market.count(ask(stores, "a"), WINDOW)
    await stores.market.count(ask(stores, "b", cell=OTHER), WINDOW)
    stores.clock.advance(10_000)
    far_ask = Ask(far, far_region, "c", stores.clock.now, Outcome.QUOTE, product="xl")
    await stores.market.count(far_ask, WINDOW)
    named = {REGION: [CELL, h3.grid_ring(CELL, 3)[0]], far_region: [far], REGION + 1: []}
    got = await stores.market.riders_in(named, WINDOW, stores.clock.now, PRODUCTS)
    assert got == {"economy": {CELL: 1}, "xl": {far: 1}}
    assert await stores.market.riders_in({}, WINDOW, stores.clock.now, PRODUCTS) == {}


async def test_each_product_counts_apart_and_all_of_them_sum(stores: Stores) -> None:
    m = stores.market
    await m.count(ask(stores, "a", Outcome.OFFERED, eta_s=100), WINDOW)
    await m.count(ask(stores, "a", Outcome.NO_DRIVER, product="xl"), WINDOW)  # a new ask
    await m.count(ask(stores, "b", product="xl"), WINDOW)
    await m.count(ask(stores, "b", product="xl"), WINDOW)  # counted already for xl
    assert (await counts(stores))[CELL] == CellCounts(1, 1, 0, 100, 1)
    assert (await counts(stores, ("xl",)))[CELL] == CellCounts(2, 1, 1, 0, 0)
    assert await counts(stores, ("wav",)) == {}
    # Every product: each product's riders summed (a rider asking two counts in each).
    assert (await counts(stores, PRODUCTS))[CELL] == CellCounts(3, 2, 1, 100, 1)
    got = await m.riders([REGION], WINDOW, stores.clock.now, PRODUCTS)
    assert got == {REGION: {"economy": {CELL: 1}, "xl": {CELL: 2}}}


async def test_the_window_slides_and_forgets(stores: Stores) -> None:
    await stores.market.count(ask(stores, "a"), WINDOW)
    stores.clock.advance(30_000)
    await stores.market.count(ask(stores, "b"), WINDOW)
    assert (await counts(stores))[CELL].riders == 2
    stores.clock.advance(35_000)  # a's bucket has left the window
    assert (await counts(stores))[CELL].riders == 1
    await stores.market.count(ask(stores, "a"), WINDOW)  # and a counts anew
    assert (await counts(stores))[CELL].riders == 2
    stores.clock.advance(WINDOW.window_ms)
    assert await counts(stores) == {}


async def test_a_rider_counts_anew_only_once_its_bucket_leaves_the_window(stores: Stores) -> None:
    stores.clock.advance(WINDOW.bucket_ms - stores.clock.now % WINDOW.bucket_ms)
    await stores.market.count(ask(stores, "a"), WINDOW)
    stores.clock.advance(WINDOW.window_ms - 1)  # a's bucket is the window's oldest
    await stores.market.count(ask(stores, "a"), WINDOW)
    assert (await counts(stores))[CELL].riders == 1
    stores.clock.advance(1)  # and now it has left: a counts anew
    await stores.market.count(ask(stores, "a"), WINDOW)
    assert (await counts(stores))[CELL].riders == 1
    stores.clock.advance(WINDOW.bucket_ms - 1)  # a twice in the window would read 2
    await stores.market.count(ask(stores, "a"), WINDOW)
    assert (await counts(stores))[CELL].riders == 1


async def test_counted_regions_are_active(stores: Stores) -> None:
    await stores.market.count(ask(stores, "a"), WINDOW)
    now = stores.clock.now
    assert await stores.market.active_regions(now, now - 1) == [REGION]
    assert await stores.market.active_regions(now + 10, now + 5) == []
    await stores.market.keep_active([REGION], now + 10)
    assert await stores.market.active_regions(now + 10, now + 5) == [REGION]


async def test_one_lease_holder_at_a_time_and_the_fence_grows(stores: Stores) -> None:
    m = stores.market
    first = await m.take_lease(REGION, "i1", 1_000)
    assert first is not None
    assert await m.take_lease(REGION, "i2", 1_000) is None
    assert await m.take_lease(REGION, "i1", 1_000) == first  # renewed
    await m.drop_lease(REGION, "i2", first)  # not its lease: nothing happens
    assert await m.take_lease(REGION, "i2", 1_000) is None
    await m.drop_lease(REGION, "i1", first)
    second = await m.take_lease(REGION, "i2", 1_000)
    assert second is not None and second > first


async def test_surge_is_written_only_under_the_current_fence(stores: Stores) -> None:
    m = stores.market
    fence = await m.take_lease(REGION, "i1", 60_000)
    assert fence is not None
    computed = {"economy": {CELL: 2.0}, "xl": {OTHER: 1.2}}
    quoted = {"economy": {CELL: 1.5}, "xl": {CELL: 1.8, OTHER: 1.2}}
    assert await m.put_surge(REGION, "i1", fence, computed, quoted, 60_000)
    both = [(CELL, REGION), (OTHER, REGION)]
    assert await m.surge(both, "economy") == {CELL: 1.5}
    assert await m.surge(both, "xl") == {CELL: 1.8, OTHER: 1.2}
    assert await m.surge(both, "wav") == {}
    assert await m.surge(both, None) == {CELL: 1.8, OTHER: 1.2}  # the highest of any
    assert await m.computed(REGION) == computed
    assert not await m.put_surge(REGION, "i1", fence + 1, {}, {}, 60_000)
    assert not await m.put_surge(REGION, "i2", fence, {}, {}, 60_000)
    await m.drop_lease(REGION, "i1", fence)
    taken = await m.take_lease(REGION, "i2", 60_000)
    assert taken is not None
    assert not await m.put_surge(REGION, "i1", fence, {}, {}, 60_000)  # the old holder
    assert await m.surge([(CELL, REGION)], "economy") == {CELL: 1.5}


async def test_a_patch_changes_only_the_write_it_names(stores: Stores) -> None:
    m = stores.market
    fence = await m.take_lease(REGION, "i1", 60_000)
    assert fence is not None
    computed = {"economy": {CELL: 2.0, OTHER: 1.4}, "xl": {OTHER: 1.2}}
    assert await m.put_surge(REGION, "i1", fence, computed, computed, 60_000, "t1")
    assert await m.surge_token(REGION) == "t1"
    both = [(CELL, REGION), (OTHER, REGION)]
    # CELL's economy back to 1.0 (and its highest with it), OTHER's xl up, the state as was
    patch = SurgePatch(
        "t1", "t2", {(CELL, "economy"): None, (OTHER, "xl"): 1.6}, {CELL: None, OTHER: 1.6}, None
    )
    assert not await m.patch_surge(REGION, "i1", fence + 1, patch, 60_000)  # not the fence
    assert await m.patch_surge(REGION, "i1", fence, patch, 90_000)
    assert await m.surge_token(REGION) == "t2"
    if isinstance(m, RedisMarketStore):  # every key's expiry renewed, the state's too
        tag = f"mk:{{r{REGION:x}}}"
        for key in ("surge", "calc", "token"):
            assert 60_000 < await m._r.pttl(f"{tag}:{key}") <= 90_000
    assert await m.surge(both, "economy") == {OTHER: 1.4}
    assert await m.surge(both, "xl") == {OTHER: 1.6}
    assert await m.surge(both, None) == {OTHER: 1.6}
    assert await m.computed(REGION) == computed
    # on top of a write the store no longer holds: nothing written, the caller writes in full
    stale = SurgePatch("t1", "t3", {(CELL, "xl"): 2.5}, {CELL: 2.5}, {"xl": {CELL: 2.5}})
    assert await m.patch_surge(REGION, "i1", fence, stale, 60_000) is None
    assert await m.surge(both, "xl") == {OTHER: 1.6}
    state = {"xl": {CELL: 2.5}}
    moved = SurgePatch("t2", "t3", {(CELL, "xl"): 2.5}, {CELL: 2.5}, state)
    assert await m.patch_surge(REGION, "i1", fence, moved, 60_000)
    assert await m.computed(REGION) == state
    assert await m.surge(both, None) == {CELL: 2.5, OTHER: 1.6}
    # a full write without a token: no patch follows it
    assert await m.put_surge(REGION, "i1", fence, {}, {}, 60_000)
    assert await m.surge_token(REGION) is None
    assert await m.patch_surge(REGION, "i1", fence, moved, 60_000) is None


async def test_a_lost_or_expired_write_refuses_patches(stores: Stores) -> None:
    m = stores.market
    fence = await m.take_lease(REGION, "i1", 60_000)
    assert fence is not None
    assert await m.put_surge(REGION, "i1", fence, {}, {"xl": {CELL: 1.5}}, 30_000, "t1")
    patch = SurgePatch("t1", "t2", {(OTHER, "xl"): 1.2}, {OTHER: 1.2}, None)
    if isinstance(m, RedisMarketStore):  # as a failover to a replica that missed it
        await m._r.delete(f"mk:{{r{REGION:x}}}:token")
    else:
        stores.clock.advance(30_000)  # expired with the surge
        await m.take_lease(REGION, "i1", 60_000, fence)
    assert await m.surge_token(REGION) is None
    assert await m.patch_surge(REGION, "i1", fence, patch, 30_000) is None
    assert await m.surge([(OTHER, REGION)], "xl") == {}


async def test_state_written_before_products_is_dropped(stores: Stores) -> None:
    if not isinstance(stores.market, RedisMarketStore):
        pytest.skip("a stored format: Redis only")
    tag = f"mk:{{r{REGION:x}}}"
    await stores.market._r.set(f"{tag}:calc", b'{"%s": 1.7}' % CELL.encode())
    assert await stores.market.computed(REGION) == {}


async def test_many_cells_are_written_at_once(stores: Stores) -> None:
    cells = list(h3.grid_disk(CELL, 40))  # 4921 cells, more than one HSET chunk
    fence = await stores.market.take_lease(REGION, "i1", 60_000)
    assert fence is not None
    values = {"economy": {c: 1.5 for c in cells}, "xl": {c: 1.3 for c in cells}}
    assert await stores.market.put_surge(REGION, "i1", fence, values, values, 60_000)
    assert len((await stores.market.computed(REGION))["xl"]) == len(cells)
    some = [(c, REGION) for c in cells[:100]]
    assert set((await stores.market.surge(some, None)).values()) == {1.5}


async def test_pins_and_the_switch(stores: Stores) -> None:
    m = stores.market
    now = stores.clock.now
    pins = {
        (CELL, None): Pin(1.8, now + 1_000),
        (CELL, "xl"): Pin(2.5, now + 1_000),
        (OTHER, None): Pin(1.2, now + 10),
    }
    await m.set_pins(REGION, pins, now)
    assert await m.pins(REGION) == pins
    await m.set_pins(REGION, {(OTHER, None): None, (CELL, "xl"): None}, now)
    assert await m.pins(REGION) == {(CELL, None): Pin(1.8, now + 1_000)}
    assert await m.enabled()
    await m.set_enabled(False)
    assert not await m.enabled()
    await m.set_enabled(True)
    assert await m.enabled()


async def test_a_quote_lives_until_it_expires(stores: Stores) -> None:
    now = stores.clock.now
    quote = Quote(
        "q_1",
        "r1",
        CELL,
        LatLng(52.52, 13.405),
        None,
        1.3,
        120,
        FareTable(),
        Estimate(10.0, 14.5),
        now,
        now + 2_000,
        "xl",
    )
    await stores.quotes.put(quote)
    assert await stores.quotes.get("q_1") == quote
    assert await stores.quotes.get("q_2") is None
