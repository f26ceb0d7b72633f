"""The driver's own key (driver_upsert.lua, driver_change.lua): it outlives its last fix by
at least DRIVER_MEMORY_MS without a PEXPIRE on every fix (the first write of each period
of 10^10 us of the server's clock sets it, to a day and a period), no change shortens it
or leaves a later fix of its period without it, and each fix written is one HMSET (what
the benches and loadtest/hot_regions.py count fixes by)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis

from geoindex import Position, RedisGeoIndex, UpsertResult
from geoindex.redis_index import DRIVER_CHANGE, DRIVER_MEMORY_MS

pytestmark = pytest.mark.redis

LAT, LNG = 52.52, 13.405
DAY = DRIVER_MEMORY_MS
PERIOD_MS = 10**7  # driver_upsert.lua's period, 10^10 us
LONGEST = DAY + PERIOD_MS


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Any]:
    client = aredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _now() -> int:
    return int(time.time() * 1000)


async def _calls(raw: Any, command: str) -> int:
    stats = await raw.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def _last_write_a_period_ago(raw: Any, key: str) -> None:
    """As if the key's last write were in the period before this one, its TTL nearly gone."""
    await raw.hset(key, "ver", str(int(time.time() * 1e6) - 10**10))
    await raw.pexpire(key, 60_000)


async def test_the_ttl_is_set_by_the_first_fix_of_a_period_only(raw: Any) -> None:
    index = RedisGeoIndex(raw)
    key, t = index.driver_key("d1"), _now()
    await raw.config_resetstat()
    await index.upsert([Position("d1", LAT, LNG, t)])
    assert LONGEST - 5_000 < await raw.pttl(key) <= LONGEST
    for i in range(1, 6):  # later fixes of the period: written, the TTL left as it is
        await index.upsert([Position("d1", LAT + i * 1e-4, LNG, t + i)])
    assert await _calls(raw, "pexpire") == 1
    assert await _calls(raw, "hmset") == 6  # one a fix written
    assert await index.upsert([Position("d1", LAT, LNG, t)]) == [UpsertResult.STALE]
    assert await _calls(raw, "hmset") == 6  # a stale fix writes nothing
    await _last_write_a_period_ago(raw, key)
    await index.upsert([Position("d1", LAT, LNG, t + 10)])  # the first of a new period
    assert LONGEST - 5_000 < await raw.pttl(key) <= LONGEST
    assert await _calls(raw, "pexpire") == 3  # the test's own, then the fix's


async def test_a_key_whose_version_is_not_the_clock_gets_its_ttl(raw: Any) -> None:
    index = RedisGeoIndex(raw)
    key, t = index.driver_key("d1"), _now()
    await index.upsert([Position("d1", LAT, LNG, t)])
    await raw.hset(key, "ver", "5")  # far behind the clock, no TTL
    await raw.persist(key)
    await index.upsert([Position("d1", LAT, LNG + 1e-4, t + 1)])
    assert LONGEST - 5_000 < await raw.pttl(key) <= LONGEST
    assert (await index.get("d1")) is not None


@pytest.mark.parametrize("change", ["available", "products", "expire", "rehome"])
async def test_a_change_leaves_the_later_fixes_of_its_period_a_day(raw: Any, change: str) -> None:
    index = RedisGeoIndex(raw, ttl_ms=30_000)
    key, t = index.driver_key("d1"), _now()
    await index.upsert([Position("d1", LAT, LNG, t)])
    await _last_write_a_period_ago(raw, key)
    if change == "available":
        assert await index.set_available("d1", False)
    elif change == "products":
        assert await index.set_products("d1", ["x"])
    elif change == "expire":
        assert await index.expire(t + 60_000) == ["d1"]
    else:  # a split's migration moving it to another region
        region = int(await raw.hget(key, "region"), 16)
        args = ["rehome", f"{region:x} {region + 1:x}", DAY, "-"]
        assert (await index._scripts.call(DRIVER_CHANGE, [key], args))[0] == 1
    # Its version is now in this period: the next fix sets no TTL, and needs none.
    assert LONGEST - 5_000 < await raw.pttl(key) <= LONGEST
    await index.upsert([Position("d1", LAT, LNG, t + 120_000)])
    assert LONGEST - 5_000 < await raw.pttl(key) <= LONGEST


async def test_a_change_never_shortens_the_ttl(raw: Any) -> None:
    index = RedisGeoIndex(raw)
    key, t = index.driver_key("d1"), _now()
    await index.upsert([Position("d1", LAT, LNG, t)])
    await raw.pexpire(key, 10 * DAY)
    assert await index.set_available("d1", False)
    assert await index.set_products("d1", ["x"])
    assert await raw.pttl(key) > 9 * DAY
    # Before any fix: a day and a period, and the first fix keeps it.
    assert await index.set_available("d2", False) is False
    assert LONGEST - 5_000 < await raw.pttl(index.driver_key("d2")) <= LONGEST
    await index.upsert([Position("d2", LAT, LNG, t)])
    assert LONGEST - 5_000 < await raw.pttl(index.driver_key("d2")) <= LONGEST
    got = await index.get("d2")
    assert got is not None and not got.available


async def test_versions_grow_past_the_clock_and_across_fixes_of_one_call(raw: Any) -> None:
    index = RedisGeoIndex(raw)
    key, t = index.driver_key("d1"), _now()
    await raw.hset(key, "ver", str(8 * 10**15))  # ahead of the clock (below 2**53)
    await index.upsert([Position("d1", LAT, LNG, t), Position("d1", LAT, LNG + 1e-4, t + 1)])
    assert int(await raw.hget(key, "ver")) == 8 * 10**15 + 2
    await raw.hset(key, "ver", "5")  # behind it: the clock in microseconds
    before = time.time() * 1e6
    await index.upsert([Position("d1", LAT, LNG, t + 2)])
    assert before - 1e6 < int(await raw.hget(key, "ver")) < time.time() * 1e6 + 1e6


async def test_sequences_order_fixes_as_numbers(raw: Any) -> None:
    index = RedisGeoIndex(raw)
    t = _now()
    ok, stale = UpsertResult.ACCEPTED, UpsertResult.STALE
    assert await index.upsert([Position("d1", LAT, LNG, t, 9)]) == [ok]
    assert await index.upsert([Position("d1", LAT, LNG, t + 1, 10)]) == [ok]  # 10 > 9
    assert await index.upsert([Position("d1", LAT, LNG, t + 2, 9)]) == [stale]
    assert await index.upsert([Position("d1", LAT, LNG, t + 3, 10)]) == [stale]
    assert await index.upsert([Position("d1", LAT, LNG, t + 100, 100)]) == [ok]
    assert await index.upsert([Position("d1", LAT, LNG, t + 99)]) == [stale]  # ts 99 < 100
    assert await index.upsert([Position("d1", LAT, LNG, t + 1000)]) == [ok]  # no seq
    got = await index.get("d1")
    assert got is not None and got.seq == 100 and got.ts_ms == t + 1000
