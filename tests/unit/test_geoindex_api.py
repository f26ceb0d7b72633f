"""geoindex's public face: one import, one exception tree, backends that fit the port."""

from collections.abc import Awaitable

import pytest
import redis.asyncio as aredis

import geoindex


def test_backends_satisfy_the_port() -> None:
    assert isinstance(geoindex.MemoryGeoIndex(), geoindex.GeoIndex)
    # Constructing a client opens no connection.
    client = aredis.Redis.from_url("redis://127.0.0.1:1/0")
    assert isinstance(geoindex.RedisGeoIndex(client), geoindex.GeoIndex)


def test_every_error_is_a_geoindex_error() -> None:
    for name in ("InvalidCoordinates", "InvalidDriverId", "InvalidTimestamp", "InvalidQuery"):
        error = getattr(geoindex, name)
        assert issubclass(error, geoindex.InvalidInput)
        assert issubclass(error, ValueError)
    assert issubclass(geoindex.InvalidInput, geoindex.GeoIndexError)
    assert issubclass(geoindex.BackendUnavailable, geoindex.GeoIndexError)


async def test_the_top_level_import_is_enough_to_index_and_search() -> None:
    """A caller who knows only `import geoindex`: store fixes, find the nearest, read one
    back, and have every refusal caught as a GeoIndexError."""
    now = 1_800_000_000_000
    index = geoindex.MemoryGeoIndex(clock=lambda: now, config=geoindex.SearchConfig())
    near = geoindex.Position("near", 52.5200, 13.4050, now, seq=1)
    far = geoindex.Position("far", 52.5290, 13.4050, now, seq=1)  # 1 km north
    accepted = geoindex.UpsertResult.ACCEPTED
    assert await index.upsert([far, near]) == [accepted, accepted]
    moved_back = geoindex.Position("near", 52.0, 13.0, now + 1, seq=1)  # seq not above
    assert await index.upsert([moved_back]) == [geoindex.UpsertResult.STALE]
    hits = await index.nearest(52.5200, 13.4050, 2, 5_000)
    assert [type(h) for h in hits] == [geoindex.Neighbor, geoindex.Neighbor]
    assert [h.driver_id for h in hits] == ["near", "far"]
    assert hits[0].distance_m < 1 and 995 < hits[1].distance_m < 1_006
    state = await index.get("far")
    assert isinstance(state, geoindex.DriverState)
    assert (state.seq, state.available, state.ts_ms) == (1, True, now)

    refusals: list[tuple[type[geoindex.InvalidInput], Awaitable[object]]] = [
        (geoindex.InvalidQuery, index.nearest(52.52, 13.405, geoindex.MAX_K + 1, 1_000)),
        (geoindex.InvalidQuery, index.nearest(52.52, 13.405, 1, geoindex.MAX_RADIUS_M * 2)),
        (geoindex.InvalidCoordinates, index.upsert([geoindex.Position("x", 91.0, 0.0, now)])),
        (geoindex.InvalidDriverId, index.upsert([geoindex.Position("{x}", 0.0, 0.0, now)])),
        (geoindex.InvalidInput, index.upsert([near] * (geoindex.MAX_BATCH + 1))),
    ]
    for kind, call in refusals:
        with pytest.raises(geoindex.GeoIndexError) as refused:
            await call
        assert isinstance(refused.value, kind), refused.value
    assert [h.driver_id for h in await index.nearest(0.0, 0.0, 5, 5_000)] == []
