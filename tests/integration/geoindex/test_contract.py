"""The GeoIndex contract: every backend (embedded, Redis, Redis Cluster) passes all of it."""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pytest

from geoindex import (
    MAX_BATCH,
    MAX_K,
    MAX_RADIUS_M,
    MAX_WITHIN,
    GeoIndex,
    GeoIndexError,
    InvalidCoordinates,
    InvalidDriverId,
    InvalidQuery,
    InvalidTimestamp,
    Position,
    UpsertResult,
)
from geoindex.cells import haversine_m, position_score, score_latlng
from tests.integration.geoindex.conftest import Clock, MakeIndex, driver_key

pytestmark = pytest.mark.redis

ACCEPTED, STALE = UpsertResult.ACCEPTED, UpsertResult.STALE
LAT, LNG = 52.52, 13.405  # Berlin


def at(driver: str, lat: float, lng: float, ts: int, seq: int | None = None) -> Position:
    return Position(driver, lat, lng, ts, seq)


async def snapshot(index: GeoIndex, raw: Any, ids: list[str]) -> Any:
    """Everything observable: driver states, a search, and for Redis every key and value."""
    states = [await index.get(i) for i in ids]
    near = await index.nearest(LAT, LNG, MAX_K, MAX_RADIUS_M)
    keys: dict[bytes, Any] = {}
    if raw is not None:
        async for key in raw.scan_iter(match="gi*"):
            kind = await raw.type(key)
            if kind == b"zset":
                keys[key] = await raw.zrange(key, 0, -1, withscores=True)
            elif kind == b"hash":
                keys[key] = sorted((await raw.hgetall(key)).items())
            elif kind == b"set":
                keys[key] = sorted(await raw.smembers(key))
    return states, near, keys


async def regions_holding(raw: Any, driver_id: str) -> list[bytes]:
    """The region geo sets that list `driver_id` (a member ends with the driver's id)."""
    suffix = driver_id.encode()
    return [
        k
        async for k in raw.scan_iter(match="gi:*:geo")
        if any(m.endswith(suffix) for m in await raw.zrange(k, 0, -1))
    ]


async def test_nearest_orders_by_distance_then_id(index: GeoIndex, clock: Clock) -> None:
    t = clock.now_ms
    await index.upsert(
        [
            at("far", LAT + 0.01, LNG, t),
            at("b-near", LAT + 0.001, LNG, t),
            at("a-near", LAT + 0.001, LNG, t),  # same spot as b-near: the id breaks the tie
            at("mid", LAT + 0.005, LNG, t),
        ]
    )
    hits = await index.nearest(LAT, LNG, 3, 5_000)
    assert [h.driver_id for h in hits] == ["a-near", "b-near", "mid"]
    assert hits[0].distance_m == hits[1].distance_m
    assert math.isclose(hits[2].distance_m, 556, rel_tol=0.01)
    assert hits[0].ts_ms == t
    assert haversine_m(hits[2].lat, hits[2].lng, LAT + 0.005, LNG) < 1.0


async def test_radius_limits_results_and_zero_radius_finds_only_the_same_spot(
    index: GeoIndex, clock: Clock
) -> None:
    t = clock.now_ms
    await index.upsert([at("here", LAT, LNG, t), at("there", LAT + 0.01, LNG, t)])
    assert [h.driver_id for h in await index.nearest(LAT, LNG, 10, 1_000)] == ["here"]
    here = await index.get("here")
    assert here is not None
    assert [h.driver_id for h in await index.nearest(here.lat, here.lng, 10, 0)] == ["here"]
    assert len(await index.nearest(LAT, LNG, 10, 2_000)) == 2


async def test_stale_updates_are_rejected_and_change_nothing(index: GeoIndex, clock: Clock) -> None:
    t = clock.now_ms
    assert await index.upsert([at("d1", LAT, LNG, t, seq=5)]) == [ACCEPTED]
    before = await index.get("d1")
    results = await index.upsert(
        [
            at("d1", LAT + 0.1, LNG, t + 10, seq=4),  # lower seq, newer ts
            at("d1", LAT + 0.1, LNG, t - 10, seq=6),  # higher seq, older ts
            at("d1", LAT + 0.1, LNG, t, seq=6),  # same ts
            at("d1", LAT + 0.1, LNG, t + 10, seq=5),  # same seq
        ]
    )
    assert results == [STALE, STALE, STALE, STALE]
    assert await index.get("d1") == before
    assert [h.driver_id for h in await index.nearest(LAT, LNG, 5, 100)] == ["d1"]
    assert await index.upsert([at("d1", LAT + 0.001, LNG, t + 10, seq=6)]) == [ACCEPTED]
    after = await index.get("d1")
    assert after is not None and after.seq == 6 and after.ts_ms == t + 10


async def test_updates_without_seq_are_ordered_by_timestamp(index: GeoIndex, clock: Clock) -> None:
    t = clock.now_ms
    assert await index.upsert([at("d1", LAT, LNG, t)]) == [ACCEPTED]
    assert await index.upsert([at("d1", LAT, LNG, t - 1)]) == [STALE]
    assert await index.upsert([at("d1", LAT, LNG, t + 1)]) == [ACCEPTED]


async def test_unavailable_drivers_never_crowd_out_available_ones(
    index: GeoIndex, clock: Clock
) -> None:
    t = clock.now_ms
    busy = [at(f"busy{i}", LAT + 0.0001 * i, LNG, t) for i in range(60)]
    await index.upsert([*busy, at("free", LAT + 0.02, LNG, t)])
    for p in busy:
        assert await index.set_available(p.driver_id, False)
    assert [h.driver_id for h in await index.nearest(LAT, LNG, 1, 5_000)] == ["free"]
    state = await index.get("busy0")
    assert state is not None and not state.available
    assert await index.set_available("busy0", True)
    assert [h.driver_id for h in await index.nearest(LAT, LNG, 1, 5_000)] == ["busy0"]
    assert not await index.set_available("nobody", True)


async def test_availability_changes_in_one_call_each_driver_as_alone(
    index: GeoIndex, clock: Clock
) -> None:
    t = clock.now_ms
    # Two regions (0.3 degrees apart), so one call changes several.
    await index.upsert([at("a", LAT, LNG, t), at("b", LAT + 0.3, LNG, t), at("c", LAT, LNG, t)])
    assert await index.set_available_many(["a", "b", "nobody"], False) == 2
    assert [h.driver_id for h in await index.nearest(LAT, LNG, 5, 1_000)] == ["c"]
    assert await index.nearest(LAT + 0.3, LNG, 5, 1_000) == []
    assert await index.set_available_many([], True) == 0
    assert await index.set_available_many(["a", "b"], True) == 2
    assert [h.driver_id for h in await index.nearest(LAT + 0.3, LNG, 5, 1_000)] == ["b"]
    assert {h.driver_id for h in await index.nearest(LAT, LNG, 5, 1_000)} == {"a", "c"}


async def test_busy_driver_keeps_moving_and_returns_at_its_latest_position(
    index: GeoIndex, clock: Clock
) -> None:
    t = clock.now_ms
    await index.upsert([at("d1", LAT, LNG, t)])
    await index.set_available("d1", False)
    await index.upsert([at("d1", LAT + 0.3, LNG, t + 1)])  # a different region, while busy
    assert await index.nearest(LAT + 0.3, LNG, 5, 1_000) == []
    await index.set_available("d1", True)
    assert [h.driver_id for h in await index.nearest(LAT + 0.3, LNG, 5, 1_000)] == ["d1"]
    assert await index.nearest(LAT, LNG, 5, 1_000) == []


async def test_remove_forgets_a_driver(index: GeoIndex, clock: Clock, raw_redis: Any) -> None:
    await index.upsert([at("d1", LAT, LNG, clock.now_ms), at("d2", LAT, LNG, clock.now_ms)])
    assert await index.remove(["d1", "ghost"]) == 1
    assert await index.get("d1") is None
    assert [h.driver_id for h in await index.nearest(LAT, LNG, 5, 1_000)] == ["d2"]
    # A removed driver can come back with any fresh fix.
    assert await index.upsert([at("d1", LAT, LNG, clock.now_ms - 5)]) == [ACCEPTED]
    assert len(await index.nearest(LAT, LNG, 5, 1_000)) == 2


async def test_silent_drivers_are_never_returned_even_before_a_sweep(
    make_index: MakeIndex, clock: Clock
) -> None:
    index = make_index(ttl_ms=10_000)
    t = clock.now_ms
    await index.upsert([at("old", LAT, LNG, t - 10_001), at("new", LAT + 0.001, LNG, t - 9_999)])
    assert [h.driver_id for h in await index.nearest(LAT, LNG, 5, 1_000)] == ["new"]
    supply = await index.supply(LAT, LNG, 1_000, 8)
    assert sum(supply.values()) == 1
    clock.now_ms += 2
    assert await index.nearest(LAT, LNG, 5, 1_000) == []


async def test_sweep_removes_expired_drivers_from_every_key(
    make_index: MakeIndex, clock: Clock, raw_redis: Any
) -> None:
    index = make_index(ttl_ms=10_000)
    t = clock.now_ms
    await index.upsert([at("old", LAT, LNG, t - 20_000), at("new", LAT, LNG, t)])
    await index.upsert([at("moved", LAT, LNG, t - 30_000)])
    await index.upsert([at("moved", LAT + 0.5, LNG + 0.5, t - 25_000)])  # other region
    assert sorted(await index.expire(t - 10_000)) == ["moved", "old"]
    assert await index.get("old") is None and await index.get("moved") is None
    assert await index.get("new") is not None
    if raw_redis is not None:
        async for key in raw_redis.scan_iter(match="gi*"):
            kind = await raw_redis.type(key)
            if kind == b"zset":
                members = [m for m, _ in await raw_redis.zrange(key, 0, -1, withscores=True)]
            elif kind == b"hash":
                members = list(await raw_redis.hkeys(key))
            else:
                continue
            assert not any(m.endswith(b"old") or m.endswith(b"moved") for m in members), key
        # The driver's own key keeps its availability (for its return), not its position.
        for gone in ("old", "moved"):
            key = driver_key(index, gone)
            assert set(await raw_redis.hkeys(key)) == {b"avail", b"ver"}
            assert 0 < await raw_redis.pttl(key) <= 24 * 3_600_000 + 10**7  # and a period


async def test_crossing_a_region_border_leaves_no_entry_behind(
    index: GeoIndex, clock: Clock, raw_redis: Any
) -> None:
    t = clock.now_ms
    # 0.5 degrees apart: different res-5 regions.
    await index.upsert([at("d1", LAT, LNG, t)])
    await index.upsert([at("d1", LAT + 0.5, LNG, t + 1)])
    assert await index.nearest(LAT, LNG, 5, 10_000) == []
    assert [h.driver_id for h in await index.nearest(LAT + 0.5, LNG, 5, 10_000)] == ["d1"]
    if raw_redis is not None:
        assert len(await regions_holding(raw_redis, "d1")) == 1


async def test_a_batch_naming_drivers_twice_in_one_region_keeps_each_once_at_its_newest(
    index: GeoIndex, clock: Clock, raw_redis: Any
) -> None:
    t = clock.now_ms
    # More drivers than region_apply.lua reads at once (1,000), all in one region, each
    # sent twice in the batch: first 100 m south, then at its final spot.
    n = 1_200
    final = {f"d{i}": (LAT + (i % 40) * 1e-4, LNG + (i // 40) * 1e-4) for i in range(n)}
    first = [at(d, lat - 1e-3, lng, t) for d, (lat, lng) in final.items()]
    second = [at(d, lat, lng, t + 1) for d, (lat, lng) in final.items()]
    assert await index.upsert(first[:600] + second[:600] + first[600:] + second[600:]) == (
        [ACCEPTED] * (2 * n)
    )
    found = await index.within(LAT, LNG, 2_000, n + 1)
    assert sorted((s.driver_id, s.lat, s.lng) for s in found) == sorted(
        (d, *score_latlng(position_score(lat, lng))) for d, (lat, lng) in final.items()
    )
    if raw_redis is not None:
        sets = [k async for k in raw_redis.scan_iter(match="gi:*:geo")]
        assert len(sets) == 1 and await raw_redis.zcard(sets[0]) == n


async def test_concurrent_updates_of_one_driver_converge_on_the_newest(
    index: GeoIndex, clock: Clock, raw_redis: Any
) -> None:
    rng = random.Random(5)
    t = clock.now_ms
    # 40 fixes hopping between four regions, sent concurrently in random order.
    spots = [(LAT, LNG), (LAT + 0.5, LNG), (LAT, LNG + 0.8), (LAT - 0.5, LNG - 0.8)]
    fixes = [at("d1", *spots[i % 4], t + i, seq=i) for i in range(40)]
    rng.shuffle(fixes)
    await asyncio.gather(*(index.upsert([f]) for f in fixes))
    state = await index.get("d1")
    assert state is not None and state.seq == 39 and state.ts_ms == t + 39
    newest = spots[39 % 4]
    for spot in spots:
        hits = await index.nearest(*spot, 5, 20_000)
        assert [h.driver_id for h in hits] == (["d1"] if spot == newest else [])
    if raw_redis is not None:
        assert len(await regions_holding(raw_redis, "d1")) == 1


async def test_supply_counts_fresh_available_drivers_per_cell(
    index: GeoIndex, clock: Clock
) -> None:
    t = clock.now_ms
    await index.upsert([at(f"d{i}", LAT + 0.00001 * i, LNG, t) for i in range(5)])
    await index.upsert([at("busy", LAT, LNG, t), at("far", LAT + 1, LNG, t)])
    await index.set_available("busy", False)
    supply = await index.supply(LAT, LNG, 2_000, 7)
    assert sum(supply.values()) == 5
    assert all(len(cell) == 15 for cell in supply)
    assert await index.supply(LAT + 5, LNG, 1_000, 9) == {}


async def test_within_lists_fresh_drivers_available_or_not_nearest_first(
    index: GeoIndex, clock: Clock
) -> None:
    t = clock.now_ms
    await index.upsert(
        [
            at("far", LAT + 0.01, LNG, t),
            at("b", LAT + 0.001, LNG, t),
            at("a", LAT + 0.001, LNG, t),  # same spot as b: the id breaks the tie
            at("busy", LAT + 0.005, LNG, t, seq=3),
            at("outside", LAT + 0.1, LNG, t),
        ]
    )
    await index.set_available("busy", False)
    got = await index.within(LAT, LNG, 5_000, 100)
    assert [s.driver_id for s in got] == ["a", "b", "busy", "far"]
    assert [s.available for s in got] == [True, True, False, True]
    assert all(s.seq is None and s.ts_ms == t for s in got)
    assert haversine_m(got[2].lat, got[2].lng, LAT + 0.005, LNG) < 1.0
    assert [s.driver_id for s in await index.within(LAT, LNG, 5_000, 2)] == ["a", "b"]
    # Past the TTL only the driver heard from again is listed.
    clock.now_ms = t + 30_001
    await index.upsert([at("b", LAT + 0.002, LNG, t + 30_001)])
    assert [s.driver_id for s in await index.within(LAT, LNG, 5_000, 100)] == ["b"]


@pytest.mark.parametrize(
    ("centre", "spread"),
    [((LAT, LNG), 0.4), ((0.0, 179.95), 0.15)],  # many res-5 regions; the antimeridian
)
async def test_within_answers_as_brute_force_does_across_region_borders(
    index: GeoIndex, clock: Clock, centre: tuple[float, float], spread: float
) -> None:
    rng = random.Random(17)
    t = clock.now_ms
    ids = [f"d{i}" for i in range(300)]
    fixes = []
    for i in ids:
        lng = centre[1] + rng.uniform(-spread, spread)
        lng = lng - 360 if lng > 180 else lng
        fixes.append(at(i, centre[0] + rng.uniform(-spread, spread), lng, t))
    await index.upsert(fixes)
    for i in ids[::3]:
        await index.set_available(i, False)
    states = [s for i in ids if (s := await index.get(i)) is not None]
    for radius, limit in [(20_000.0, MAX_WITHIN), (8_000.0, 25), (30_000.0, 1)]:
        expected = sorted(
            (d, s.driver_id) for s in states if (d := haversine_m(*centre, s.lat, s.lng)) <= radius
        )[:limit]
        got = await index.within(*centre, radius, limit)
        assert [s.driver_id for s in got] == [i for _, i in expected]
        assert all(s.available == (int(s.driver_id[1:]) % 3 != 0) for s in got)


@pytest.mark.parametrize(
    ("lat", "radius", "limit"),
    [
        (LAT, 1_000, 0),
        (LAT, 1_000, MAX_WITHIN + 1),
        (LAT, 1_000, True),
        (LAT, 1_000, 2.5),
        (LAT, -1, 10),
        (LAT, MAX_RADIUS_M + 1, 10),
        (95, 1_000, 10),
    ],
)
async def test_bad_area_reads_raise(index: GeoIndex, lat: Any, radius: Any, limit: Any) -> None:
    with pytest.raises(GeoIndexError):
        await index.within(lat, LNG, radius, limit)


BAD_POSITIONS = [
    (at("d", 90.0001, 0, 1), InvalidCoordinates),
    (at("d", -91, 0, 1), InvalidCoordinates),
    (at("d", 0, 180.5, 1), InvalidCoordinates),
    (at("d", float("nan"), 0, 1), InvalidCoordinates),
    (at("d", 0, float("inf"), 1), InvalidCoordinates),
    (at("", 0, 0, 1), InvalidDriverId),
    (at("x" * 65, 0, 0, 1), InvalidDriverId),
    (at("a{b}", 0, 0, 1), InvalidDriverId),
    (at("d", 0, 0, -1), InvalidTimestamp),
    (at("d", 0, 0, 1, seq=-1), InvalidTimestamp),
    (at("d", 0, 0, 2**53), InvalidTimestamp),
]


@pytest.mark.parametrize(("bad", "error"), BAD_POSITIONS)
async def test_bad_positions_raise_and_write_nothing(
    index: GeoIndex, clock: Clock, raw_redis: Any, bad: Position, error: type[Exception]
) -> None:
    await index.upsert([at("ok", LAT, LNG, clock.now_ms)])
    before = await snapshot(index, raw_redis, ["ok", "d"])
    good = at("d", LAT, LNG, clock.now_ms)
    with pytest.raises(error) as info:
        await index.upsert([good, bad])  # the whole batch is refused, good items too
    assert isinstance(info.value, GeoIndexError) and str(info.value)
    assert await snapshot(index, raw_redis, ["ok", "d"]) == before


async def test_oversized_batch_is_refused(index: GeoIndex, clock: Clock) -> None:
    batch = [at(f"d{i}", LAT, LNG, clock.now_ms) for i in range(MAX_BATCH + 1)]
    with pytest.raises(InvalidQuery):
        await index.upsert(batch)
    assert await index.get("d0") is None


@pytest.mark.parametrize(
    ("lat", "lng", "k", "radius"),
    [
        (LAT, LNG, 0, 100),
        (LAT, LNG, MAX_K + 1, 100),
        (LAT, LNG, 5, -1),
        (LAT, LNG, 5, MAX_RADIUS_M + 1),
        (LAT, LNG, 5, float("nan")),
        (95, LNG, 5, 100),
        (LAT, float("-inf"), 5, 100),
        (LAT, LNG, True, 100),
        (LAT, LNG, 2.5, 100),
    ],
)
async def test_bad_queries_raise(index: GeoIndex, lat: Any, lng: Any, k: Any, radius: Any) -> None:
    with pytest.raises(GeoIndexError):
        await index.nearest(lat, lng, k, radius)


async def test_bad_queries_of_many_points_raise(index: GeoIndex) -> None:
    with pytest.raises(GeoIndexError):
        await index.nearest_many([(LAT, LNG), (95, LNG)], 5, 100)
    with pytest.raises(GeoIndexError):
        await index.nearest_many([(LAT, LNG)], 0, 100)
    with pytest.raises(GeoIndexError):
        await index.nearest_many([(LAT, LNG)], 5, float("nan"))


async def test_many_points_searched_together_find_what_each_finds_alone(
    index: GeoIndex, clock: Clock
) -> None:
    rng = random.Random(7)
    t = clock.now_ms
    # A dense centre and a sparse ring out to 40 km: searches of one call end after
    # different numbers of steps, and cross regions.
    fleet = [
        at(f"d{i}", LAT + rng.gauss(0, 0.01 if i % 3 else 0.15), LNG + rng.gauss(0, 0.02), t)
        for i in range(600)
    ]
    await index.upsert(fleet)
    for p in fleet[::4]:
        await index.set_products(p.driver_id, ["xl"])
    points = [(LAT + rng.uniform(-0.3, 0.3), LNG + rng.uniform(-0.4, 0.4)) for _ in range(40)]
    for k, radius, product in ((8, 5_000, None), (3, 20_000, "xl"), (30, 900, None)):
        for lat, lng in points:  # the searches below start from the same density hints
            await index.nearest(lat, lng, k, radius, product)
        together = await index.nearest_many(points, k, radius, product)
        alone = [await index.nearest(lat, lng, k, radius, product) for lat, lng in points]
        assert together == alone
        assert any(together) and not all(len(found) == k for found in together)
    assert await index.nearest_many([], 5, 1_000) == []


@pytest.mark.parametrize("resolution", [-1, 3, 16, "9", 1.5])
async def test_bad_supply_resolution_raises(index: GeoIndex, resolution: Any) -> None:
    with pytest.raises(InvalidQuery):
        await index.supply(LAT, LNG, 1_000, resolution)


async def test_bad_ids_in_remove_and_availability_raise(index: GeoIndex) -> None:
    with pytest.raises(InvalidDriverId):
        await index.remove(["ok", "bad id"])
    with pytest.raises(InvalidDriverId):
        await index.set_available("", True)


async def test_resending_the_exact_same_fix_is_accepted_again_and_changes_nothing(
    index: GeoIndex, clock: Clock
) -> None:
    fix = at("d1", LAT, LNG, clock.now_ms, seq=3)
    assert await index.upsert([fix]) == [ACCEPTED]
    before = await index.get("d1")
    assert await index.upsert([fix]) == [ACCEPTED]  # a retry after a lost answer
    assert await index.get("d1") == before
    assert [h.driver_id for h in await index.nearest(LAT, LNG, 5, 100)] == ["d1"]


async def test_a_retry_repairs_region_writes_lost_after_the_driver_write(
    make_index: MakeIndex, clock: Clock, raw_redis: Any
) -> None:
    if raw_redis is None:
        pytest.skip("the embedded backend writes driver and region in one step")
    from geoindex.cells import position_score, region_of, score_latlng
    from geoindex.redis_index import DRIVER_UPSERT

    index = make_index()
    t = clock.now_ms
    await index.upsert([at("d1", LAT, LNG, t, seq=1)])
    # The next fix (another region) reaches the driver's key, then the caller dies.
    lat, lng = LAT + 0.5, LNG
    score = position_score(lat, lng)
    qlat, qlng = score_latlng(score)
    fix = f"{qlat!r} {qlng!r} {t + 1} 2 {score} {region_of(score, 5):x} 120000 1 -"
    key = driver_key(index, "d1")
    await raw_redis.evalsha(DRIVER_UPSERT.sha, 1, key, key, fix)
    assert [h.driver_id for h in await index.nearest(LAT, LNG, 5, 1_000)] == ["d1"]  # stale
    assert await index.upsert([at("d1", lat, lng, t + 1, seq=2)]) == [ACCEPTED]  # the retry
    assert await index.nearest(LAT, LNG, 5, 1_000) == []
    assert [h.driver_id for h in await index.nearest(lat, lng, 5, 1_000)] == ["d1"]


async def test_availability_set_before_the_first_fix_applies_to_it(
    index: GeoIndex, clock: Clock
) -> None:
    assert not await index.set_available("early", False)  # no position yet
    await index.upsert([at("early", LAT, LNG, clock.now_ms), at("new", LAT, LNG, clock.now_ms)])
    state = await index.get("early")
    assert state is not None and not state.available
    assert [h.driver_id for h in await index.nearest(LAT, LNG, 5, 100)] == ["new"]


async def test_a_swept_driver_returns_with_its_availability_and_a_fresh_sequence(
    make_index: MakeIndex, clock: Clock
) -> None:
    index = make_index(ttl_ms=10_000)
    t = clock.now_ms
    await index.upsert([at("d1", LAT, LNG, t - 20_000, seq=500)])
    await index.set_available("d1", False)
    assert await index.expire(t - 10_000) == ["d1"]
    assert await index.get("d1") is None
    # Back after the silence, its app counting from zero again: accepted, still busy.
    assert await index.upsert([at("d1", LAT, LNG, t, seq=1)]) == [ACCEPTED]
    state = await index.get("d1")
    assert state is not None and not state.available and state.seq == 1
    assert await index.nearest(LAT, LNG, 5, 100) == []


async def test_new_drivers_can_start_unavailable(make_index: MakeIndex, clock: Clock) -> None:
    index = make_index(new_drivers_available=False)
    await index.upsert([at("d1", LAT, LNG, clock.now_ms)])
    assert await index.nearest(LAT, LNG, 5, 100) == []
    assert await index.set_available("d1", True)
    assert [h.driver_id for h in await index.nearest(LAT, LNG, 5, 100)] == ["d1"]


async def test_concurrent_callers_each_get_their_own_answers(index: GeoIndex, clock: Clock) -> None:
    t = clock.now_ms
    await index.upsert([at("d0", LAT, LNG, t, seq=10)])
    # Fifty callers at once (a coalescing backend sends them as one batch): each gets the
    # answers to its own fixes, in its own order, a stale one included.
    calls = [[at(f"d{i}", LAT + 0.0001 * i, LNG, t, seq=1)] for i in range(1, 51)]
    calls.append([at("d0", LAT, LNG, t + 5, seq=9), at("d0", LAT, LNG, t + 6, seq=11)])
    answers = await asyncio.gather(*(index.upsert(c) for c in calls))
    assert answers[:50] == [[ACCEPTED]] * 50
    assert answers[50] == [STALE, ACCEPTED]
    assert len(await index.nearest(LAT, LNG, MAX_K, 1_000)) == 51


async def test_one_callers_bad_input_fails_only_that_caller(index: GeoIndex, clock: Clock) -> None:
    good = index.upsert([at("good", LAT, LNG, clock.now_ms)])
    bad = index.upsert([at("bad", 91, LNG, clock.now_ms)])
    results = await asyncio.gather(good, bad, return_exceptions=True)
    assert results[0] == [ACCEPTED]
    assert isinstance(results[1], InvalidCoordinates)
    assert await index.get("bad") is None
