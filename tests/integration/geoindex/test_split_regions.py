"""Split regions: search stays exact before, during and after a parent is split (or
unsplit), with drivers crossing the split border, on every backend; a migration neither
loses nor doubles a driver; the region function and the sweep work across resolutions."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from h3.api import basic_int as h3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoindex import GeoIndex, Position, RedisGeoIndex
from geoindex.cells import haversine_m
from geoindex.split import RegionSplitting, SplitConflict, migrate
from tests.integration.geoindex.conftest import Clock, MakeIndex
from tests.integration.geoindex.test_exactness import offset

pytestmark = [pytest.mark.redis, pytest.mark.slow]

_prefixes = itertools.count()

# A vertex where three res-5 cells meet: the split parent is one of them.
CORNER = h3.cell_to_boundary(h3.latlng_to_cell(52.5, 13.4, 5))[0]
PARENT = h3.latlng_to_cell(*CORNER, 5)  # the cell h3 assigns the vertex itself to
PARENT_HEX = h3.int_to_str(PARENT)


def splitting(index: GeoIndex) -> RegionSplitting:
    assert isinstance(index, RegionSplitting)
    return index


def redis_of(index: GeoIndex) -> RedisGeoIndex | None:
    inner = getattr(index, "inner", index)
    return inner if isinstance(inner, RedisGeoIndex) else None


async def assert_exact(
    index: GeoIndex, names: list[str], busy: set[str], query: tuple[float, float], k: int, r: float
) -> None:
    """nearest, within_columns and supply against brute force over every driver's stored
    state: each driver once, none missing."""
    fresh = [s for n in names if (s := await index.get(n)) is not None]
    qlat, qlng = query
    expected = sorted(
        (haversine_m(qlat, qlng, s.lat, s.lng), s.driver_id)
        for s in fresh
        if s.driver_id not in busy and haversine_m(qlat, qlng, s.lat, s.lng) <= r
    )
    hits = await index.nearest(qlat, qlng, k, r)
    assert [(h.distance_m, h.driver_id) for h in hits] == expected[:k]
    area = await index.within_columns(qlat, qlng, r, 50_000)
    assert sorted(area.ids) == sorted(
        s.driver_id for s in fresh if haversine_m(qlat, qlng, s.lat, s.lng) <= r
    )
    # A driver counts in its res-15 cell's ancestor (by digits, not by geometry).
    cells = [
        h3.int_to_str(h3.cell_to_parent(h3.latlng_to_cell(s.lat, s.lng, 15), 6))
        for s in fresh
        if s.available
    ]
    counts: dict[str, int] = {}
    for c in cells:
        counts[c] = counts.get(c, 0) + 1
    assert await index.supply_in(sorted(counts)) == counts


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    spread = draw(st.sampled_from([800.0, 5_000.0, 15_000.0]))
    n = draw(st.integers(1, 30))
    points = [
        offset(*CORNER, draw(st.floats(0, 2 * spread)), draw(st.floats(0, 2 * math.pi)))
        for _ in range(n)
    ]
    # Moves in each phase: a driver to another driver's spot or anywhere around, so that
    # many cross between the split parent and its unsplit neighbours.
    moves = st.lists(
        st.tuples(
            st.integers(0, n - 1),
            st.floats(0, 2 * spread),
            st.floats(0, 2 * math.pi),
        ),
        max_size=n,
    )
    return {
        "points": points,
        "busy": draw(st.sets(st.integers(0, n - 1), max_size=n // 3)),
        "moves": [draw(moves) for _ in range(4)],
        "query": offset(*CORNER, draw(st.floats(0, spread)), draw(st.floats(0, 2 * math.pi))),
        "k": draw(st.integers(1, n + 3)),
        "radius": draw(st.sampled_from([300.0, 3_000.0, 50_000.0])),
        "res": draw(st.sampled_from([6, 7])),
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
async def test_search_is_exact_before_during_and_after_a_split_and_back(
    make_index: MakeIndex, clock: Clock, scenario: dict[str, Any]
) -> None:
    prefix = f"sp{next(_prefixes)}"
    index = make_index(prefix=prefix)
    names = [f"d{i:02d}" for i in range(len(scenario["points"]))]
    busy = {names[i] for i in scenario["busy"]}
    args = (scenario["query"], scenario["k"], scenario["radius"])
    ts = itertools.count(clock.now_ms - 20_000)
    await index.upsert(
        [Position(n, *p, next(ts)) for n, p in zip(names, scenario["points"], strict=True)]
    )
    for n in busy:
        await index.set_available(n, False)
    moves = iter(scenario["moves"])

    async def move_some() -> None:
        for i, dist, bearing in next(moves):
            at = offset(*CORNER, dist, bearing)
            await index.upsert([Position(names[i], *at, next(ts))])

    await assert_exact(index, names, busy, *args)
    redis_index = redis_of(index)
    if redis_index is None:
        await splitting(index).split_region(PARENT_HEX, scenario["res"])
        await move_some()
    else:
        # In each phase: a writer that still has the previous phase's list (an instance
        # that has not refreshed yet) moves drivers, and the search is exact.
        stale = make_index(prefix=prefix)
        await stale.get(names[0])  # reads the list once; it never refreshes

        async def phase(_: float) -> None:
            await move_some()
            await stale_writes()
            await assert_exact(index, names, busy, *args)

        async def stale_writes() -> None:
            i, dist, bearing = 0, 1.0, 0.0
            await stale.upsert([Position(names[i], *offset(*CORNER, dist, bearing), next(ts))])

        redis_index._layouts._refresh_s = 0.0  # this instance: always current
        await migrate(
            redis_index._split,
            PARENT_HEX,
            scenario["res"],
            redis_index._rehome,
            0.0,
            phase,
        )
    await assert_exact(index, names, busy, *args)
    layout = await splitting(index).region_split()
    assert layout.parents[PARENT].res == scenario["res"]
    assert layout.parents[PARENT].prev is None
    if redis_index is not None:
        await assert_old_regions_empty(redis_index)
    await move_some()
    await assert_exact(index, names, busy, *args)
    # And back: unsplit.
    await splitting(index).split_region(PARENT_HEX, 5, settle_s=0.0)
    assert PARENT not in (await splitting(index).region_split()).parents
    await assert_exact(index, names, busy, *args)


async def assert_old_regions_empty(index: RedisGeoIndex) -> None:
    """After a migration no driver is left in the parent's old region, only tombstones."""
    values = await index._redis.hgetall(index._region_keys(PARENT)[1])
    assert all(v.endswith(b"t") for v in values.values())


async def test_a_split_parent_writes_finer_regions_and_neighbours_stay_coarse(
    make_index: MakeIndex, raw_redis: Any
) -> None:
    index = make_index(prefix=f"sp{next(_prefixes)}")
    await splitting(index).split_region(PARENT_HEX, 7, settle_s=0.0)
    layout = await splitting(index).region_split()
    inside = h3.cell_to_latlng(h3.cell_to_center_child(PARENT, 9))
    outside = h3.cell_to_latlng(next(c for c in h3.grid_ring(PARENT, 1) if c != PARENT))
    assert layout.write_region(_score(*inside)) == h3.latlng_to_cell(*inside, 7)
    assert layout.write_region(_score(*outside)) == h3.latlng_to_cell(*outside, 5)
    await index.upsert([Position("in", *inside, 1_700_000_000_000)])
    await index.upsert([Position("out", *outside, 1_700_000_000_000)])
    redis_index = redis_of(index)
    if redis_index is not None:
        tag = redis_index._region_keys(h3.latlng_to_cell(*inside, 7))[1]
        assert await raw_redis.hexists(tag, "in")
        assert not await raw_redis.hexists(redis_index._region_keys(PARENT)[1], "in")


async def test_the_sweep_drops_silent_drivers_of_split_regions(
    make_index: MakeIndex, clock: Clock
) -> None:
    index = make_index(prefix=f"sp{next(_prefixes)}", ttl_ms=10_000)
    await splitting(index).split_region(PARENT_HEX, 6, settle_s=0.0)
    inside = h3.cell_to_latlng(h3.cell_to_center_child(PARENT, 9))
    await index.upsert([Position("quiet", *inside, clock.now_ms - 20_000)])
    await index.upsert([Position("loud", *offset(*inside, 50, 1.0), clock.now_ms)])
    assert await index.expire(clock.now_ms - 10_000) == ["quiet"]
    assert [n.driver_id for n in await index.nearest(*inside, 5, 1_000)] == ["loud"]


async def test_a_split_request_is_validated_before_anything_changes(
    make_index: MakeIndex,
) -> None:
    index = make_index(prefix=f"sp{next(_prefixes)}")
    bad = [
        ("zz", 6),
        (h3.int_to_str(h3.cell_to_parent(PARENT, 4)), 6),  # not a region cell
        (PARENT_HEX, 8),  # more than two resolutions finer
        (PARENT_HEX, 4),
        (PARENT_HEX, True),
        ("85" + "f" * 13, 6),
    ]
    for parent, res in bad:
        with pytest.raises(ValueError):
            await splitting(index).split_region(parent, res, settle_s=0.0)  # type: ignore[arg-type]
    assert (await splitting(index).region_split()).parents == {}


async def test_a_parent_migrating_elsewhere_refuses_another_resolution(raw_redis: Any) -> None:
    if raw_redis is None:
        pytest.skip("the embedded backend migrates at once")
    index = RedisGeoIndex(raw_redis, prefix=f"sp{next(_prefixes)}")

    async def interrupt(_: float) -> None:
        raise RuntimeError("stopped mid-migration")

    with pytest.raises(RuntimeError):
        await migrate(index._split, PARENT_HEX, 7, index._rehome, 0.0, interrupt)
    entry = (await index.region_split()).parents[PARENT]
    assert (entry.prev, entry.res, entry.writes_new) == (5, 7, False)
    with pytest.raises(SplitConflict):
        await index.split_region(PARENT_HEX, 6, settle_s=0.0)
    await index.split_region(PARENT_HEX, 7, settle_s=0.0)  # resumes and finishes
    assert (await index.region_split()).parents[PARENT].prev is None


def _score(lat: float, lng: float) -> int:
    return int(h3.latlng_to_cell(lat, lng, 15)) & (2**52 - 1)
