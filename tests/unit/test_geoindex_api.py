"""geoindex's public face: one import, one exception tree, backends that fit the port."""

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


def test_all_names_are_exported() -> None:
    assert all(hasattr(geoindex, name) for name in geoindex.__all__)
