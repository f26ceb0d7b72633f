"""within_columns is within as columns: the same drivers, order and values on every backend
(and both the same as brute force over the stored positions)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import redis.asyncio as aredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoindex import (
    MAX_WITHIN,
    Columns,
    GeoIndexError,
    Position,
    RedisGeoIndex,
    SearchConfig,
)
from geoindex.cells import haversine_m, position_score, region_of
from tests.integration.geoindex.conftest import Clock, MakeIndex
from tests.integration.geoindex.test_exactness import scenarios

pytestmark = [pytest.mark.redis]

_prefixes = itertools.count()
PRODUCTS = ("economy", "xl", "wav")


def rows(columns: Columns) -> list[tuple[object, ...]]:
    return list(
        zip(
            columns.ids,
            columns.lat.tolist(),
            columns.lng.tolist(),
            columns.ts_ms.tolist(),
            columns.available.tolist(),
            columns.products,
            strict=True,
        )
    )


@st.composite
def area_scenarios(draw: st.DrawFn) -> dict:
    base = draw(scenarios())
    n = len(base["drivers"])
    indices = st.integers(0, max(n - 1, 0))
    return {
        **base,
        "limit": draw(st.one_of(st.integers(1, n + 3), st.just(MAX_WITHIN))),
        "products": draw(
            st.dictionaries(indices, st.sets(st.sampled_from(PRODUCTS)).map(sorted), max_size=n)
        ),
        "moved": draw(st.sets(indices, max_size=n // 3)),  # a second fix, maybe another region
    }


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=area_scenarios())
async def test_within_columns_equals_brute_force(
    make_index: MakeIndex, clock: Clock, scenario: dict
) -> None:
    ttl = 60_000
    index = make_index(ttl_ms=ttl, config=scenario["config"], prefix=f"wc{next(_prefixes)}")
    now = clock.now_ms
    names = [f"d{i:02d}" for i in range(len(scenario["drivers"]))]
    await index.upsert(
        [
            Position(names[i], lat, lng, now - (ttl + 1 if i in scenario["old"] else 10))
            for i, (lat, lng) in enumerate(scenario["drivers"])
        ]
    )
    for i, products in scenario["products"].items():
        await index.set_products(names[i], products)
    for i in scenario["busy"]:
        await index.set_available(names[i], False)
    for i in scenario["moved"]:
        lat, lng = scenario["drivers"][(i + 1) % len(names)]
        await index.upsert([Position(names[i], lat, lng, now - 5)])

    (qlat, qlng), radius, limit = scenario["query"], scenario["radius"], scenario["limit"]
    columns = await index.within_columns(qlat, qlng, radius, limit)
    assert columns.lat.dtype == np.float64 and columns.ts_ms.dtype == np.int64
    assert columns.available.dtype == np.bool_

    stored = [s for i in names if (s := await index.get(i)) is not None]
    expected = sorted(
        (d, s.driver_id, s)
        for s in stored
        if s.ts_ms >= now - ttl and (d := haversine_m(qlat, qlng, s.lat, s.lng)) <= radius
    )[:limit]
    assert rows(columns) == [
        (s.driver_id, s.lat, s.lng, s.ts_ms, s.available, s.products) for _, _, s in expected
    ]
    assert await index.within(qlat, qlng, radius, limit) == columns.states()


@pytest.mark.parametrize(("radius", "limit"), [(1_000, 0), (1_000, True), (-1, 10), (1e9, 10)])
async def test_bad_columnar_reads_raise(index: object, radius: float, limit: int) -> None:
    with pytest.raises(GeoIndexError):
        await index.within_columns(52.5, 13.4, radius, limit)  # type: ignore[attr-defined]


async def test_a_driver_in_two_regions_at_once_is_read_once_at_its_newest(
    redis_url: str, clock: Clock
) -> None:
    """Between a move's two region writes a driver is in both regions' meta: both reads
    give it once, where its newer version puts it."""
    client = aredis.Redis.from_url(redis_url)
    index = RedisGeoIndex(client, clock=clock)
    t = clock.now_ms
    old_spot, new_spot = (52.40, 13.40), (52.70, 13.40)
    old_region = region_of(position_score(*old_spot), SearchConfig().region_res)
    assert old_region != region_of(position_score(*new_spot), SearchConfig().region_res)
    meta = f"gi:{{r{old_region:x}}}:meta"
    await index.upsert([Position("x", *old_spot, t - 20), Position("y", *old_spot, t - 20)])
    before = await client.hget(meta, "x")
    await index.upsert([Position("x", *new_spot, t - 10)])
    await client.hset(meta, "x", before)  # the old region's tombstone not written yet
    columns = await index.within_columns(52.55, 13.40, 50_000, 100)
    assert sorted(columns.ids) == ["x", "y"]
    x = columns.ids.index("x")
    assert haversine_m(columns.lat[x], columns.lng[x], *new_spot) < 1.0
    assert columns.ts_ms[x] == t - 10
    await client.aclose()
