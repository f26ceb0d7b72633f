"""Two nginx nodes in front of the same two instances (the proxy layer's X axis), clients
spread over both; one nginx is killed outright under load. Clients that retry a failed
call on the other node, with the same Idempotency-Key, lose nothing: every ride request
is answered 201 once, and exactly one ride is stored per key."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from redis.asyncio import Redis

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import parse_subject
from dispatch.entrypoints.server import start
from dispatch.settings import Settings
from loadtest.nginx_proc import NginxProcess, nginx_available
from loadtest.redis_procs import free_port

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.skipif(
        not nginx_available(), reason="nginx is not installed (scripts/test installs it)"
    ),
]
SECRET = "two-gw-secret-0123456789-0123456789-abc"
PICKUP = {"pickup": {"lat": 52.52, "lng": 13.40}}


@pytest.fixture
async def two_gateways(redis_url: str) -> AsyncIterator[list[NginxProcess]]:
    settings = replace(Settings(redis_url=redis_url, jwt_secret=SECRET), port=0)
    started = [await start(replace(settings, instance_id=f"i{n}")) for n in range(2)]
    upstreams = [f"127.0.0.1:{port}" for _, port in started]
    nodes = [NginxProcess(upstreams, free_port()) for _ in range(2)]
    for node in nodes:
        await asyncio.to_thread(node.start)
    try:
        yield nodes
    finally:
        for node in nodes:
            await asyncio.to_thread(node.stop)
        for runner, _ in started:
            await runner.cleanup()


def kill_outright(node: NginxProcess) -> None:
    """SIGKILL to nginx's master and workers at once (their own process group)."""
    assert node.proc is not None
    os.killpg(node.proc.pid, signal.SIGKILL)
    node.proc.wait(timeout=10)


async def test_a_client_that_retries_on_the_other_nginx_loses_nothing(
    two_gateways: list[NginxProcess], redis_url: str
) -> None:
    urls = [node.url for node in two_gateways]
    codec = TokenCodec(SECRET)
    answered: dict[str, str] = {}  # key -> ride id
    retried = Counter[str]()
    stop_at = time.monotonic() + 4.0

    async def rider(n: int, http: aiohttp.ClientSession) -> None:
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            key = f"t{n}-{i}"
            # A rider per request: with no driver about, batched matching leaves each ride
            # searching (active) for its maximum wait, and a rider may hold only two.
            bearer = codec.issue(parse_subject(f"rider:{key}"), 600)
            headers = {"Authorization": f"Bearer {bearer}"}
            for attempt in range(6):  # this client's node first, then the other, in turn
                url = urls[(n + attempt) % 2] + "/v1/rides"
                try:
                    async with http.post(
                        url, json=PICKUP, headers={**headers, "Idempotency-Key": key}
                    ) as resp:
                        body = await resp.json()
                        if resp.status == 201:
                            answered[key] = body["id"]
                            break
                        retried[str(resp.status)] += 1
                except (TimeoutError, aiohttp.ClientError):
                    retried["connection"] += 1
                await asyncio.sleep(0.05 * attempt)
            else:
                pytest.fail(f"{key} never answered")
            await asyncio.sleep(0.6)  # each client paced as before

    async def kill_one_midway() -> None:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(kill_outright, two_gateways[0])

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(kill_one_midway(), *(rider(n, http) for n in range(12)))

    client = Redis.from_url(redis_url)
    try:
        stored = {
            key.decode().split("{")[1].rstrip("}")
            async for key in client.scan_iter(match="dispatch:ride:*", count=1000)
        }
    finally:
        await client.aclose()
    print(
        f"\ntwo gateways, one killed at 1.5 s: {len(answered)} ride requests answered 201, "
        f"{len(stored)} rides stored, retried on the other node: {dict(retried)}"
    )
    assert len(answered) >= 24 and retried  # the kill was felt, and retried through
    assert set(answered.values()) == stored  # every answered ride stored, nothing else
    assert len(set(answered.values())) == len(answered)  # one ride per key
