"""Redis restarted empty (no persistence) under a running `dispatch serve`: what survives
is what clients send again. Defined behaviour (docs/reliability.md):

- the service itself needs no restart: its pool reconnects, scripts are loaded again;
- drivers come back with their next fix (a fresh fix is accepted: the stored seq and
  timestamp are gone with everything else) and can be dispatched again;
- rides in flight are gone: reading one is 404 for its rider and its driver, steps on it
  are 404, nobody is left reserved for it; a rider who retries the request with the same
  Idempotency-Key gets a new ride under the same id, matched afresh."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from loadtest.redis_procs import RedisServer
from tests.e2e.dispatch.conftest import SECRET, serve

from .conftest import BERLIN, Client, record_figure

pytestmark = [pytest.mark.slow, pytest.mark.redis]


async def request(client: Client, rider: str, key: str) -> dict[str, object]:
    reply = await client.call(
        "POST",
        "/v1/rides",
        f"rider:{rider}",
        json={"pickup": BERLIN},
        headers={"Idempotency-Key": key},
    )
    assert reply.status == 201, reply.body
    return reply.body  # type: ignore[no-any-return]


async def test_after_redis_restarts_empty_drivers_return_with_their_next_fix() -> None:
    redis = RedisServer()
    await asyncio.to_thread(redis.__enter__)
    served = await asyncio.to_thread(
        serve, "--redis-url", redis.url, env={"DISPATCH_REDIS_TIMEOUT_S": "0.5"}
    )
    try:
        async with aiohttp.ClientSession() as http:
            client = Client(served.url, SECRET, http)
            await client.online("d1", BERLIN["lat"], BERLIN["lng"], seq=10)
            await client.online("d2", BERLIN["lat"] + 0.001, BERLIN["lng"], seq=10)
            accepted = await request(client, "u1", "k1")
            assert accepted["driver_id"] == "d1"
            reply = await client.call("POST", f"/v1/rides/{accepted['id']}/accept", "driver:d1")
            assert reply.status == 200
            offered = await request(client, "u2", "k2")
            assert (offered["status"], offered["driver_id"]) == ("offered", "d2")

            await asyncio.to_thread(redis.node.stop)  # gone, and with it every key
            await asyncio.to_thread(redis.node.start)  # same port, empty
            restarted = time.monotonic()

            # Drivers: the next fix is taken (seq 1 after seq 10: nothing to be stale against).
            while (await client.fix("d1", BERLIN["lat"], BERLIN["lng"], seq=1)).status != 202:
                assert time.monotonic() - restarted < 5
                await asyncio.sleep(0.05)
            back_s = time.monotonic() - restarted
            assert (
                await client.fix("d2", BERLIN["lat"] + 0.001, BERLIN["lng"], seq=1)
            ).status == 202
            for d in ("d1", "d2"):
                view = (await client.call("GET", f"/v1/drivers/{d}", f"driver:{d}")).body
                assert view["ride_id"] is None and view["seq"] == 1

            # Rides in flight are gone, for everyone, and steps on them too.
            for ride, rider, driver in ((accepted, "u1", "d1"), (offered, "u2", "d2")):
                path = f"/v1/rides/{ride['id']}"
                assert (await client.call("GET", path, f"rider:{rider}")).status == 404
                assert (await client.call("GET", path, f"driver:{driver}")).status == 404
                assert (
                    await client.call("POST", path + "/arrived", f"driver:{driver}")
                ).status == 404
                assert (await client.call("POST", path + "/cancel", f"rider:{rider}")).status == 404

            # The drivers can be dispatched again; the rider's retry is matched afresh,
            # under the same ride id.
            again = await request(client, "u1", "k1")
            assert again["id"] == accepted["id"]
            assert again["status"] == "offered" and again["driver_id"] in ("d1", "d2")
            other = await request(client, "u3", "k3")
            assert other["status"] == "offered" and other["driver_id"] != again["driver_id"]
            record_figure("redis_restart_empty", driver_back_after_s=round(back_s, 3))
    finally:
        await asyncio.to_thread(served.stop)
        await asyncio.to_thread(redis.__exit__)
