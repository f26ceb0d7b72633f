"""A long-lived stream must not outlive the token that opened it: once the token has
expired, the driver's WebSocket is closed (1008, policy violation) and acts no more, and
the rider's event stream ends; a fresh token opens a new one."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import parse_subject

from .conftest import BERLIN, Client

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def short_token(client: Client, who: str, ttl_s: int) -> dict[str, str]:
    token = TokenCodec(client.secret).issue(parse_subject(who), ttl_s)
    return {"Authorization": f"Bearer {token}"}


async def test_a_websocket_closes_when_its_token_expires(live: Client) -> None:
    url = f"{live.base}/v1/drivers/d1/stream"
    async with live.session.ws_connect(url, headers=short_token(live, "driver:d1", 2)) as ws:
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json(timeout=5)) == {"type": "pong"}
        msg = await ws.receive(timeout=6)  # nothing sent: the server closes it by itself
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1008, msg
    # Nothing it might have sent after that counted; a fresh token works.
    never_seen = await live.call("GET", "/v1/drivers/d1", "driver:d1")
    assert (never_seen.status, never_seen.body["error"]) == (404, "not_found")
    async with live.session.ws_connect(url, headers=live.auth("driver:d1")) as ws:
        fix = {"type": "location", **BERLIN, "ts": int(time.time() * 1000), "seq": 1}
        await ws.send_json(fix)
        assert (await ws.receive_json(timeout=5))["status"] == "accepted"


async def test_an_event_stream_ends_when_its_token_expires(live: Client) -> None:
    await live.online("d1", BERLIN["lat"], BERLIN["lng"])
    ride = (await live.call("POST", "/v1/rides", "rider:u1", json={"pickup": BERLIN})).body
    accepted = await live.call("POST", f"/v1/rides/{ride['id']}/accept", "driver:d1")
    assert accepted.body["status"] == "accepted"  # not final: the stream would go on
    url = f"{live.base}/v1/rides/{ride['id']}/events"
    started = time.monotonic()
    async with live.session.get(url, headers=short_token(live, "rider:u1", 2)) as resp:
        assert resp.status == 200
        body = await asyncio.wait_for(resp.content.read(), 25)  # until the server ends it
    assert body.startswith(b"data: ")
    assert time.monotonic() - started < 6  # ended at the token's expiry
