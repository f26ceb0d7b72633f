"""Broken object-level authorization, route by route: every route called by every wrong
principal (another driver, another rider, a rider as driver, a driver as rider, a fleet
gateway where it has no business) gets 403 with a clean JSON error, and nothing changes:
the rides and drivers read the same afterwards, and nobody was notified."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from .conftest import BERLIN, Client, assert_clean_error

pytestmark = [pytest.mark.slow, pytest.mark.redis]


async def scene(c: Client) -> dict[str, str]:
    """d1 drives u1's accepted ride r1; d2 holds an offer for u2's ride r2; d3 is idle."""
    await c.online("d1", BERLIN["lat"], BERLIN["lng"])
    r1 = (await c.call("POST", "/v1/rides", "rider:u1", json={"pickup": BERLIN})).body
    assert r1["driver_id"] == "d1"
    assert (await c.call("POST", f"/v1/rides/{r1['id']}/accept", "driver:d1")).status == 200
    await c.online("d2", BERLIN["lat"] + 0.001, BERLIN["lng"])
    r2 = (await c.call("POST", "/v1/rides", "rider:u2", json={"pickup": BERLIN})).body
    assert r2["driver_id"] == "d2"
    await c.online("d3", BERLIN["lat"] + 0.002, BERLIN["lng"])
    return {"r1": r1["id"], "r2": r2["id"]}


def matrix(ids: dict[str, str]) -> list[tuple[str, str, Any, list[str]]]:
    """(method, path, body, wrong principals)."""
    r1, r2 = f"/v1/rides/{ids['r1']}", f"/v1/rides/{ids['r2']}"
    fix = {"lat": 10.0, "lng": 10.0, "ts": int(time.time() * 1000) + 1000, "seq": 99}
    not_d1 = ["driver:d2", "rider:u1", "rider:d1", "fleet:gw"]
    return [
        ("POST", "/v1/drivers/d1/location", fix, not_d1),
        ("PUT", "/v1/drivers/d3/status", {"status": "offline"},
         ["driver:d1", "rider:u1", "rider:d3", "fleet:gw"]),
        ("GET", "/v1/drivers/d1", None, not_d1),
        ("POST", "/v1/locations", {"updates": [{"driver_id": "d1", **fix}]},
         ["driver:d1", "rider:u1"]),
        ("POST", "/v1/rides", {"pickup": BERLIN}, ["driver:d3", "fleet:gw"]),
        ("GET", r1, None, ["rider:u2", "driver:d2", "driver:u1", "fleet:gw"]),
        ("GET", r1 + "/events", None, ["rider:u2", "driver:d1", "driver:u1", "fleet:gw"]),
        ("POST", r2 + "/accept", None, ["driver:d1", "driver:d3", "rider:u2", "fleet:gw"]),
        ("POST", r2 + "/decline", None, ["driver:d1", "driver:d3", "rider:u2", "fleet:gw"]),
        ("POST", r1 + "/arrived", None, ["driver:d2", "rider:u1", "rider:d1", "fleet:gw"]),
        ("POST", r1 + "/start", None, ["driver:d2", "rider:u1", "fleet:gw"]),
        ("POST", r1 + "/complete", None, ["driver:d2", "rider:u1", "fleet:gw"]),
        ("POST", r1 + "/cancel", None, ["rider:u2", "driver:d2", "driver:u1", "fleet:gw"]),
        ("POST", r2 + "/cancel", None, ["rider:u1", "driver:d1", "driver:u2", "fleet:gw"]),
    ]  # fmt: skip


async def snapshot(c: Client, ids: dict[str, str]) -> list[Any]:
    out = []
    for rider, ride in (("u1", ids["r1"]), ("u2", ids["r2"])):
        out.append((await c.call("GET", f"/v1/rides/{ride}", f"rider:{rider}")).body)
    for d in ("d1", "d2", "d3"):
        out.append((await c.call("GET", f"/v1/drivers/{d}", f"driver:{d}")).body)
    return out


async def test_every_route_refuses_every_wrong_principal_and_changes_nothing(live: Client) -> None:
    ids = await scene(live)
    before = await snapshot(live, ids)
    # The rightful parties' sockets: a refused step must not even reach them.
    sockets = {d: await live.session.ws_connect(f"{live.base}/v1/drivers/{d}/stream",
                                                headers=live.auth(f"driver:{d}"))
               for d in ("d1", "d2")}  # fmt: skip
    refused = 0
    for method, path, body, wrong in matrix(ids):
        for who in wrong:
            reply = await live.call(method, path, who, json=body)
            assert reply.status == 403, (method, path, who, reply.status, reply.body)
            assert_clean_error(reply, 403)
            refused += 1
    for who in ("driver:d2", "rider:u1", "rider:d1", "fleet:gw"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await live.session.ws_connect(f"{live.base}/v1/drivers/d1/stream",
                                          headers=live.auth(who))  # fmt: skip
        assert e.value.status == 403
    assert await snapshot(live, ids) == before
    for d, ws in sockets.items():
        # d2's pending offer is sent again on connect; nothing after it may arrive.
        frames = []
        while True:
            try:
                frames.append(await ws.receive_json(timeout=0.3))
            except TimeoutError:
                break
        assert all(f["type"] == "offer" for f in frames), (d, frames)
        await ws.close()
    assert refused >= 50
