"""The driver WebSocket and the rider's event stream on one real instance."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import pytest

from tests.waiting import eventually

from .conftest import Instance

BERLIN = {"lat": 52.52, "lng": 13.405}


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return orjson.loads(msg.data)  # type: ignore[no-any-return]


async def recv_type(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        frame = await recv(ws)
        if frame["type"] == kind:
            return frame


def stream_url(inst: Instance, driver_id: str) -> str:
    return f"{inst.url}/v1/drivers/{driver_id}/stream"


async def connect(inst: Instance, driver_id: str) -> aiohttp.ClientWebSocketResponse:
    return await inst.session.ws_connect(
        stream_url(inst, driver_id), headers=inst.auth("driver", driver_id)
    )


def location(seq: int) -> dict[str, Any]:
    return {"type": "location", **BERLIN, "ts": int(time.time() * 1000) + seq, "seq": seq}


async def test_location_frames_are_acked_with_their_seq(service: Instance) -> None:
    async with await connect(service, "d1") as ws:
        await ws.send_json(location(1))
        assert await recv(ws) == {"type": "ack", "seq": 1, "status": "accepted"}
        stale = {**location(0), "ts": 1}
        await ws.send_json(stale)
        stale = await recv(ws)  # with the fix it lost to, to resync from
        assert stale == {
            "type": "ack",
            "seq": 0,
            "status": "stale",
            "stored_seq": 1,
            "stored_ts": stale["stored_ts"],
        }
        assert isinstance(stale["stored_ts"], int)
        await ws.send_json({"type": "ping"})
        assert await recv(ws) == {"type": "pong"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ('{"type": "location", "lat": NaN, "lng": 1, "ts": 1, "seq": 1}', "invalid_json"),
        ('{"type": "teleport"}', "invalid_frame"),
        ("[1]", "invalid_frame"),
        (
            '{"type": "location", "lat": 1, "lng": 1, "ts": 1, "seq": 1, "status": "x"}',
            "unknown_field",
        ),
        ('{"type": "accept", "ride_id": "r_' + "0" * 32 + '"}', "not_found"),
        ('{"type": "accept"}', "invalid_body"),
    ],
)
async def test_bad_frames_get_an_error_frame_and_the_socket_stays_open(
    service: Instance, frame: str, code: str
) -> None:
    async with await connect(service, "d1") as ws:
        await ws.send_str(frame)
        reply = await recv(ws)
        assert (reply["type"], reply["error"]) == ("error", code) and reply["message"]
        await ws.send_json({"type": "ping"})
        assert await recv(ws) == {"type": "pong"}


async def test_a_message_above_the_limit_closes_the_socket_with_1009(service: Instance) -> None:
    async with await connect(service, "d1") as ws:
        await ws.send_str("x" * (service.settings.max_ws_message_bytes + 1))
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009


async def test_stream_needs_the_drivers_own_token(service: Instance) -> None:
    for headers in ({}, service.auth("driver", "d2"), service.auth("rider", "d1")):
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await service.session.ws_connect(stream_url(service, "d1"), headers=headers)
        assert err.value.status in (401, 403)
    token = service.auth("driver", "d1")["Authorization"].split()[1]
    async with service.session.ws_connect(
        stream_url(service, "d1"), params={"access_token": token}
    ) as ws:
        await ws.send_json({"type": "ping"})
        assert await recv(ws) == {"type": "pong"}


async def test_offer_accept_and_ride_updates_over_the_websocket(service: Instance) -> None:
    async with await connect(service, "d1") as ws:
        await ws.send_json(location(1))
        await recv_type(ws, "ack")
        status, ride, _ = await service.call(
            "POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN}
        )
        assert status == 201
        offer = await recv_type(ws, "offer")
        assert offer["ride"]["id"] == ride["id"]
        assert offer["expires_at"] == ride["offer_expires_at"]
        await ws.send_json({"type": "accept", "ride_id": ride["id"]})
        reply = await recv_type(ws, "ride")
        assert reply["ride"]["status"] == "accepted"
        status, _, _ = await service.call(
            "POST", f"/v1/rides/{ride['id']}/arrived", ("driver", "d1")
        )
        assert status == 200
        pushed = await recv_type(ws, "ride")
        assert pushed["ride"]["status"] in ("accepted", "arrived")
        if pushed["ride"]["status"] == "accepted":  # the push of our own accept came first
            pushed = await recv_type(ws, "ride")
        assert pushed["ride"]["status"] == "arrived"


async def test_decline_over_the_websocket(service: Instance) -> None:
    async with await connect(service, "d1") as ws:
        await ws.send_json(location(1))
        await recv_type(ws, "ack")
        _, ride, _ = await service.call(
            "POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN}
        )
        await recv_type(ws, "offer")
        await ws.send_json({"type": "decline", "ride_id": ride["id"]})
        reply = await recv_type(ws, "ride")
        assert reply["ride"]["status"] == "no_driver" and reply["ride"]["driver_id"] is None


async def test_a_pending_offer_is_sent_again_after_a_reconnect(service: Instance) -> None:
    await service.fix("d1", BERLIN["lat"], BERLIN["lng"])
    _, ride, _ = await service.call("POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN})
    for _ in range(2):
        async with await connect(service, "d1") as ws:
            offer = await recv(ws)
            assert (offer["type"], offer["ride"]["id"]) == ("offer", ride["id"])


async def test_too_many_location_frames_get_rate_limited(service: Instance) -> None:
    async with await connect(service, "d1") as ws:
        for i in range(service.settings.driver_rate_burst + 5):
            await ws.send_json(location(i + 1))
        replies = [await recv(ws) for _ in range(service.settings.driver_rate_burst + 5)]
    assert any(r.get("error") == "rate_limited" for r in replies)


async def open_websockets_reach(service: Instance, n: int) -> None:
    """Wait until /metrics counts `n` open WebSockets: a socket is counted just after its
    handshake and uncounted just after it closes, a moment after the client sees either."""

    async def gauge_reads_n() -> bool:
        _, text, _ = await service.call("GET", "/metrics")
        lines = [ln for ln in text.split(b"\n") if ln.startswith(b"dispatch_websockets_open ")]
        assert len(lines) == 1 and float(lines[0].split()[1]) == n, lines
        return True

    await eventually(gauge_reads_n, what=f"dispatch_websockets_open to read {n}")


async def test_websocket_gauge_follows_open_sockets(service: Instance) -> None:
    async with await connect(service, "d1"), await connect(service, "d2"):
        await open_websockets_reach(service, 2)
    await open_websockets_reach(service, 0)


async def read_events(resp: aiohttp.ClientResponse, until: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async for line in resp.content:
        if line.startswith(b"data: "):
            events.append(orjson.loads(line[6:]))
            if events[-1]["status"] == until:
                return events
    return events


async def test_the_rider_follows_the_ride_as_server_sent_events(service: Instance) -> None:
    await service.fix("d1", BERLIN["lat"], BERLIN["lng"])
    _, ride, _ = await service.call("POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN})
    url = f"{service.url}/v1/rides/{ride['id']}/events"
    async with service.session.get(url, headers=service.auth("rider", "u1")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        reader = asyncio.create_task(read_events(resp, "completed"))
        for step in ("accept", "arrived", "start", "complete"):
            status, _, _ = await service.call(
                "POST", f"/v1/rides/{ride['id']}/{step}", ("driver", "d1")
            )
            assert status == 200
        events = await asyncio.wait_for(reader, 5)
    assert [e["status"] for e in events] == [
        "offered",
        "accepted",
        "arrived",
        "in_progress",
        "completed",
    ]
    assert events[0]["id"] == ride["id"]


async def test_event_streams_are_for_the_rides_rider_only(service: Instance) -> None:
    await service.fix("d1", BERLIN["lat"], BERLIN["lng"])
    _, ride, _ = await service.call("POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN})
    path = f"/v1/rides/{ride['id']}/events"
    for who in (("rider", "u2"), ("driver", "d1")):
        status, data, _ = await service.call("GET", path, who)
        assert (status, data["error"]) == (403, "forbidden")
    assert (await service.call("GET", path))[0] == 401


async def test_a_drivers_newest_socket_closes_its_oldest_beyond_the_cap(service: Instance) -> None:
    """A driver app on a flaky network reconnects while its old socket lingers half-open:
    the new one always gets through, and one token opening sockets in a loop holds at
    most the cap of them."""
    cap = service.settings.max_streams_per_owner
    sockets = [await connect(service, "d1") for _ in range(cap + 2)]
    other = await connect(service, "d2")
    try:
        for old in sockets[:2]:
            msg = await old.receive(timeout=5)
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4000, msg
        for ws in (*sockets[2:], other):
            await ws.send_json({"type": "ping"})
            assert await recv(ws) == {"type": "pong"}
        await open_websockets_reach(service, cap + 1)
    finally:
        for ws in (*sockets, other):
            await ws.close()


async def test_a_riders_newest_event_stream_ends_its_oldest_beyond_the_cap(
    service: Instance,
) -> None:
    await service.fix("d1", BERLIN["lat"], BERLIN["lng"])
    _, ride, _ = await service.call("POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN})
    url = f"{service.url}/v1/rides/{ride['id']}/events"
    cap = service.settings.max_streams_per_owner
    streams = []
    for _ in range(cap + 1):
        resp = await service.session.get(url, headers=service.auth("rider", "u1"))
        assert resp.status == 200
        assert (await resp.content.readline()).startswith(b"data: ")  # the current state
        streams.append(resp)
    try:
        # The oldest ends (its body is complete); the others still get the ride's news.
        assert await asyncio.wait_for(streams[0].content.read(), 5) == b"\n"
        status, _, _ = await service.call(
            "POST", f"/v1/rides/{ride['id']}/accept", ("driver", "d1")
        )
        assert status == 200
        for resp in streams[1:]:
            events = await asyncio.wait_for(read_events(resp, "accepted"), 5)
            assert events[-1]["status"] == "accepted"
    finally:
        for resp in streams:
            resp.close()


async def test_a_caller_above_the_map_query_rate_gets_429_while_others_are_served(
    service: Instance,
) -> None:
    query = "/v1/nearby?lat=52.52&lng=13.405"
    burst = service.settings.nearby_rate_burst
    statuses = [(await service.call("GET", query, ("rider", "u1")))[0] for _ in range(burst + 5)]
    assert statuses[:burst] == [200] * burst and set(statuses[burst:]) == {429}
    status, data, _ = await service.call("GET", query, ("rider", "u1"))
    assert (status, data["error"]) == (429, "rate_limited")
    assert (await service.call("GET", query, ("rider", "u2")))[0] == 200
    _, text, _ = await service.call("GET", "/metrics")
    assert b'dispatch_rate_limited_total{limit="nearby"} 6' in text
