"""An instance killed while it holds an Idempotency-Key (its ride request in flight):
the retry, which nginx sends to another instance by design for keyed POSTs, must be
answered within seconds, not wait out a lock nobody will release."""

from __future__ import annotations

import asyncio
import signal
import time
from urllib.parse import urlparse

import aiohttp
import pytest
from redis.asyncio import Redis

from dispatch.bootstrap import bootstrap
from dispatch.service_layer.ports import ClaimState
from dispatch.settings import Settings
from loadtest.faultproxy import FaultProxy
from tests.e2e.dispatch.conftest import SECRET, serve
from tests.integration.dispatch.conftest import FakeClock
from tests.waiting import eventually

from .conftest import BERLIN, Client, Reply, record_figure

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ANSWER_WITHIN_S = 5.0


async def test_a_retry_after_the_key_holder_died_is_answered_soon(redis_url: str) -> None:
    port = urlparse(redis_url).port
    assert port is not None
    async with FaultProxy(port) as proxy, aiohttp.ClientSession() as http:
        # A reaches Redis through the proxy, B directly.
        doomed = await asyncio.to_thread(serve, "--redis-url", f"redis://127.0.0.1:{proxy.port}/0")
        survivor = await asyncio.to_thread(serve, "--redis-url", redis_url)
        try:
            a, b = Client(doomed.url, SECRET, http), Client(survivor.url, SECRET, http)
            await b.online("d1", BERLIN["lat"], BERLIN["lng"])
            body, headers = {"pickup": BERLIN}, {"Idempotency-Key": "only-once"}
            proxy.latency_s = 0.3  # A's claim lands in Redis at 0.3 s; the rest crawls
            first = asyncio.create_task(
                a.call("POST", "/v1/rides", "rider:u1", json=body, headers=headers)
            )
            raw = Redis.from_url(redis_url)
            try:

                async def a_holds_the_key() -> bool:
                    return bool(await raw.keys("dispatch:idem:*"))

                await eventually(a_holds_the_key, interval_s=0.02, what="A's claim in Redis")
            finally:
                await raw.aclose()
            doomed.stop(signal.SIGKILL)  # dies holding the key
            with pytest.raises(aiohttp.ClientError):
                await first
            started = time.monotonic()

            async def answered() -> Reply:
                reply = await b.call("POST", "/v1/rides", "rider:u1", json=body, headers=headers)
                assert reply.status != 409, reply.body  # the dead holder's lock still stands
                return reply

            retry = await eventually(answered, ANSWER_WITHIN_S, 0.2, what="an answer to the retry")
            answered_s = time.monotonic() - started
            record_figure("dead_key_holder", retry_answered_after_s=round(answered_s, 2))
            assert retry.status == 201, retry.body
            assert answered_s < ANSWER_WITHIN_S
            again = await b.call("POST", "/v1/rides", "rider:u1", json=body, headers=headers)
            assert again.body == retry.body  # one ride, the same answer from now on
        finally:
            doomed.stop(signal.SIGKILL)
            await asyncio.to_thread(survivor.stop)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_held_key_stays_locked_and_a_dropped_one_frees(
    kind: str, request: pytest.FixtureRequest
) -> None:
    settings = (
        Settings(redis_url=request.getfixturevalue("redis_url")) if kind == "redis" else Settings()
    )
    clock = FakeClock()
    async with bootstrap(settings, clock=clock) as runtime:
        store = runtime.deps.idempotency
        first = await store.begin("u1:k", "fp", 300)
        assert first.state is ClaimState.NEW
        for _ in range(4):  # a live holder keeps it past its first lock period
            clock.advance(150)
            await asyncio.sleep(0.15)  # Redis's lock runs on its own (real) clock
            await store.touch("u1:k", first.token, 300)
            assert (await store.begin("u1:k", "fp", 300)).state is ClaimState.PENDING
        await store.touch("u1:k", "someone-else", 60_000)  # only the holder may
        clock.advance(400)
        await asyncio.sleep(0.4)  # the holder died: no touch for a whole lock period
        assert (await store.begin("u1:k", "fp", 300)).state is ClaimState.NEW
