"""The fault proxy itself, against an in-process echo server: each fault does what it says."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from loadtest.faultproxy import FaultProxy
from tests.waiting import eventually


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with FaultProxy(port) as p:
        yield p
    server.close()
    await server.wait_closed()


async def _roundtrip(port: int, payload: bytes = b"ping", timeout: float = 2.0) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        started = time.monotonic()
        writer.write(payload)
        assert await asyncio.wait_for(reader.readexactly(len(payload)), timeout) == payload
        return time.monotonic() - started
    finally:
        writer.close()


async def test_a_plain_pipe_forwards_both_ways(proxy: FaultProxy) -> None:
    assert await _roundtrip(proxy.port, b"x" * 200_000) < 1.0


async def test_latency_delays_each_direction(proxy: FaultProxy) -> None:
    proxy.latency_s = 0.1
    assert 0.2 <= await _roundtrip(proxy.port) < 0.6


async def test_a_black_hole_stalls_until_healed_and_loses_nothing(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    proxy.blackhole()
    writer.write(b"held")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(4), 0.3)
    proxy.heal()
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"held"
    writer.close()


async def test_kill_cuts_open_connections_and_refuses_new_ones(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)

    def the_proxy_holds_it() -> bool:
        return proxy.open_connections == 1

    await eventually(the_proxy_holds_it)
    proxy.kill()
    assert await asyncio.wait_for(reader.read(10), 2) == b""  # cut
    writer.close()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError, TimeoutError)):
        await _roundtrip(proxy.port, timeout=0.5)
    proxy.heal()
    assert await _roundtrip(proxy.port) < 1.0


async def test_kill_reaches_connections_still_being_set_up(proxy: FaultProxy) -> None:
    """A connection accepted just before kill(), whose forwarding had not started yet,
    must be cut all the same: a live pipe through a "dead" server would let requests
    through mid-fault."""
    survivors = 0
    for _ in range(50):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        proxy.kill()  # the proxy has accepted; its forwarding task has not run yet
        writer.write(b"ping")
        try:
            survivors += await asyncio.wait_for(reader.read(4), 1) == b"ping"
        except (ConnectionError, TimeoutError):
            pass
        writer.close()
        proxy.heal()
    assert survivors == 0
