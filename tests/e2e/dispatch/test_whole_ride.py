"""A whole ride, request to completion, over HTTP, WebSocket and SSE against a real
`dispatch serve` process: on the embedded backend and on a Redis Cluster."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import pytest

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import parse_subject

from .conftest import SECRET, Served

PICKUP = {"lat": 52.5200, "lng": 13.4050}


def auth(subject: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + TokenCodec(SECRET).issue(parse_subject(subject), 600)}


async def next_frame(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        frame = orjson.loads(msg.data)
        if frame["type"] == kind:
            return frame  # type: ignore[no-any-return]


async def whole_ride(base: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        driver, rider = auth("driver:e2e-d1"), auth("rider:e2e-u1")
        async with http.ws_connect(f"{base}/v1/drivers/e2e-d1/stream", headers=driver) as ws:
            fix = {
                "type": "location",
                "lat": 52.5209,
                "lng": 13.4050,
                "ts": int(time.time() * 1000),
                "seq": 1,
            }
            await ws.send_json(fix)
            assert (await next_frame(ws, "ack"))["status"] == "accepted"

            headers = {**rider, "Idempotency-Key": "e2e-ride-1"}
            body = {"pickup": PICKUP, "dropoff": {"lat": 52.51, "lng": 13.39}}
            async with http.post(f"{base}/v1/rides", json=body, headers=headers) as resp:
                assert resp.status == 201
                ride = await resp.json()
            assert (ride["status"], ride["driver_id"]) == ("offered", "e2e-d1")
            async with http.post(f"{base}/v1/rides", json=body, headers=headers) as resp:
                assert resp.status == 201 and await resp.json() == ride

            offer = await next_frame(ws, "offer")
            assert offer["ride"]["id"] == ride["id"]

            events_url = f"{base}/v1/rides/{ride['id']}/events"
            async with http.get(events_url, headers=rider) as events:
                assert events.status == 200

                async def statuses() -> list[str]:
                    seen: list[str] = []
                    async for line in events.content:
                        if line.startswith(b"data: "):
                            seen.append(orjson.loads(line[6:])["status"])
                            if seen[-1] == "completed":
                                break
                    return seen

                reader = asyncio.create_task(statuses())
                await ws.send_json({"type": "accept", "ride_id": ride["id"]})
                assert (await next_frame(ws, "ride"))["ride"]["status"] == "accepted"
                for step in ("arrived", "start", "complete"):
                    async with http.post(
                        f"{base}/v1/rides/{ride['id']}/{step}", headers=driver
                    ) as resp:
                        assert resp.status == 200, await resp.text()
                assert await asyncio.wait_for(reader, 10) == [
                    "offered",
                    "accepted",
                    "arrived",
                    "in_progress",
                    "completed",
                ]

        async with http.get(f"{base}/v1/rides/{ride['id']}", headers=rider) as resp:
            assert (await resp.json())["status"] == "completed"
        async with http.get(f"{base}/v1/drivers/e2e-d1", headers=driver) as resp:
            me = await resp.json()
        assert (me["status"], me["ride_id"]) == ("available", None)
        async with http.get(f"{base}/v1/nearby", params=PICKUP, headers=rider) as resp:
            assert len((await resp.json())["cars"]) == 1


async def test_a_whole_ride_on_the_embedded_backend(embedded: Served) -> None:
    await whole_ride(embedded.url)
    assert embedded.stop() == 0


@pytest.mark.redis
async def test_a_whole_ride_on_a_redis_cluster(on_cluster: Served) -> None:
    await whole_ride(on_cluster.url)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{on_cluster.url}/readyz") as resp:
            assert (await resp.json())["backend"] == "redis-cluster"
    assert on_cluster.stop() == 0
