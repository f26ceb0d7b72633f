"""Per-rider limits held in the backend: the bucket's contract on every backend, and one
rider token flooding ride requests through two instances writes a bounded number of
rides, each kept an hour (a no_driver answer), not a day."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatch.service_layer.rider_limits import QUOTES, RIDES, Rate
from dispatch.settings import Settings

from .conftest import Backend, Instance
from .test_multi_instance import pair

RATE = Rate(per_s=2.0, burst=5)


async def test_a_bucket_gives_its_burst_then_one_per_interval(backend: Backend) -> None:
    limits = backend.deps.rider_limits
    assert limits is not None
    store, now = limits.store, backend.clock.now
    assert [await store.take("r1", RIDES, RATE, now) for _ in range(5)] == [0] * 5
    wait = await store.take("r1", RIDES, RATE, now)
    assert 490 <= wait <= 500  # one token comes back every 500 ms
    assert await store.take("r1", RIDES, RATE, now + 250) > 0  # refused again, nothing taken
    assert await store.take("r1", RIDES, RATE, now + 500) == 0
    assert await store.take("r1", RIDES, RATE, now + 500) > 0
    # other riders and other actions have their own buckets
    assert await store.take("r2", RIDES, RATE, now) == 0
    assert await store.take("r1", QUOTES, RATE, now) == 0
    # a full bucket holds no more than its burst, however long it rested
    later = now + 3_600_000
    assert [await store.take("r1", RIDES, RATE, later) for _ in range(6)].count(0) == 5


async def test_concurrent_takes_never_pass_the_burst(backend: Backend) -> None:
    limits = backend.deps.rider_limits
    assert limits is not None
    now = backend.clock.now
    got = await asyncio.gather(*(limits.store.take("r9", RIDES, RATE, now) for _ in range(40)))
    assert got.count(0) == 5


async def test_a_clock_behind_the_stored_one_refills_nothing(backend: Backend) -> None:
    limits = backend.deps.rider_limits
    assert limits is not None
    now = backend.clock.now
    for _ in range(5):
        assert await limits.store.take("r3", RIDES, RATE, now + 10_000) == 0
    assert await limits.store.take("r3", RIDES, RATE, now) > 0  # another instance, behind


@pytest.mark.redis
@pytest.mark.slow
async def test_one_rider_flooding_two_instances_writes_a_bounded_number_of_rides(
    redis_url: str,
) -> None:
    rate, burst = 2.0, 5
    settings = Settings(
        redis_url=redis_url,
        ride_request_rate_per_s=rate,
        ride_request_rate_burst=burst,
        match_window_ms=0,
    )
    pickup = {"pickup": {"lat": 52.52, "lng": 13.40}}  # no driver anywhere: no_driver
    async with pair(settings) as (a, b):

        async def ask(inst: Instance, n: int) -> tuple[int, Any, str | None]:
            headers = {"Idempotency-Key": f"flood-{n}"}
            status, data, resp = await inst.call(
                "POST", "/v1/rides", ("rider", "flooder"), json=pickup, headers=headers
            )
            return status, data, resp.headers.get("Retry-After")

        started = time.monotonic()
        answers: list[tuple[int, Any, str | None]] = []
        for batch in range(6):  # 6 bursts of 40 concurrent requests, spread over both
            answers += await asyncio.gather(
                *(ask((a, b)[n % 2], batch * 40 + n) for n in range(40))
            )
            await asyncio.sleep(0.25)
        elapsed = time.monotonic() - started
        # another rider is served meanwhile
        status, other, _ = await a.call("POST", "/v1/rides", ("rider", "calm"), json=pickup)
        assert status == 201 and other["status"] == "no_driver"
        # each instance counts the refusals it answered
        _, metrics, _ = await a.call("GET", "/metrics")
        assert b'dispatch_rate_limited_total{limit="rider_rides"}' in metrics

    made = [d for s, d, _ in answers if s == 201]
    refused = [(d, retry) for s, d, retry in answers if s == 429]
    # Concurrent ones may also meet the cap on active rides (each counts while it looks).
    capped = [d for s, d, _ in answers if s == 409 and d["error"] == "active_ride_limit"]
    assert len(made) + len(refused) + len(capped) == len(answers), {s for s, _, _ in answers}
    allowed = burst + rate * elapsed + 1
    print(f"\nflood: {len(answers)} requests in {elapsed:.2f} s, {len(made)} rides made "
          f"(bound {allowed:.1f}), {len(refused)} refused 429, {len(capped)} 409")  # fmt: skip
    assert 1 <= len(made) <= allowed  # tokens that met the cap are spent too
    assert all(d["status"] == "no_driver" for d in made)
    assert all(d["error"] == "rate_limited" and retry and int(retry) >= 1 for d, retry in refused)
    client = Redis.from_url(redis_url)
    try:
        rides = [k async for k in client.scan_iter(match="dispatch:ride:*", count=1000)]
        idem = [k async for k in client.scan_iter(match="dispatch:idem:*", count=1000)]
        assert len(rides) == len(made) + 1  # and the calm rider's
        assert len(idem) == len(made)  # a refused request keeps no answer
        for key in rides + idem:  # a no_driver answer is kept an hour, not a day
            assert 0 < await client.pttl(key) <= 3600 * 1000
    finally:
        await client.aclose()


async def test_a_ride_request_takes_its_token_and_its_count_in_one_step(backend: Backend) -> None:
    riders, now = backend.deps.active_rides, backend.clock.now
    limits = backend.deps.rider_limits
    assert limits is not None
    rate = Rate(per_s=0.001, burst=3)
    assert await riders.admit("u1", "r1", now, 2, RIDES, rate) == (0, [])
    assert await riders.admit("u1", "r1", now, 2, RIDES, rate) == (0, [])  # counted before
    waited, full = await riders.admit("u1", "r2", now, 1, RIDES, rate)  # the cap refuses...
    assert waited == 0 and [h.ride_id for h in full] == ["r1"]
    # ... with its token taken, as each of the three calls above took one: none is left,
    # and an empty bucket counts nothing.
    waited, full = await riders.admit("u1", "r3", now, 5, RIDES, rate)
    assert waited > 0 and full == []
    assert await riders.hold("u1", "r4", now, 2) == []  # a hold alone takes no token
    assert [h.ride_id for h in await riders.hold("u1", "r5", now, 2)] == ["r1", "r4"]
    # The bucket is the rider limits' own: the same one LimitStore.take reads.
    assert await limits.store.take("u1", RIDES, rate, now) > 0
    assert await limits.store.take("u2", RIDES, rate, now) == 0
    assert await riders.admit("u2", "r6", now, 2, RIDES, rate) == (0, [])
    assert await riders.hold("u2", "r7", now, 1) != []  # r6 counted
