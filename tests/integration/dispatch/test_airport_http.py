"""Geofence events and airport queues through the real service: the driver's WebSocket
hears its crossings and its place in the queue, the ops stream hears every event once,
GET /v1/areas/{id}/queue lists the queue; two instances on a Redis Cluster serving 200
concurrent airport rides for 50 queued drivers offer each driver at most one at a time."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatch.settings import Settings
from tests.waiting import eventually

from .conftest import Instance, running
from .test_areas_http import OPS, feature, put

AIRPORT = (52.36, 13.50)
TOWN = (52.52, 13.405)


def fix(lat: float, lng: float, seq: int) -> dict[str, Any]:
    ts = int(time.time() * 1000) + seq  # each fix newer than the last
    return {"type": "location", "lat": lat, "lng": lng, "ts": ts, "seq": seq}


async def frames_until(
    ws: aiohttp.ClientWebSocketResponse, wanted: int, kinds: set[str]
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        while len(got) < wanted:
            frame = orjson.loads((await ws.receive()).data)
            if frame["type"] in kinds:
                got.append(frame)
    return got


async def test_a_drivers_socket_hears_its_crossings_and_its_place(service: Instance) -> None:
    await put(service, "ber", feature("airport", *AIRPORT, 0.01, dwell_s=0))
    await service.fix("d0", *AIRPORT)
    await service.call(
        "PUT", "/v1/drivers/d0/status", ("driver", "d0"), json={"status": "available"}
    )
    url = f"{service.url}/v1/drivers/d1/stream"
    async with service.session.ws_connect(url, headers=service.auth("driver", "d1")) as ws:
        await ws.send_json(fix(*TOWN, 1))
        await ws.send_json(fix(*AIRPORT, 2))
        enter, place = await frames_until(ws, 2, {"area", "queue"})
        assert {k: enter[k] for k in ("type", "event", "area_id", "driver_id")} == {
            "type": "area",
            "event": "enter",
            "area_id": "ber",
            "driver_id": "d1",
        }
        assert (place["type"], place["position"], place["length"]) == ("queue", 2, 2)
        status, q, _ = await service.call("GET", "/v1/areas/ber/queue", OPS)
        assert status == 200
        assert [(d["driver_id"], d["position"]) for d in q["drivers"]] == [("d0", 1), ("d1", 2)]
        await ws.send_json(fix(*TOWN, 3))  # dwell 0: out at once
        out = await frames_until(ws, 2, {"area", "queue"})
        assert {(f["type"], f.get("event"), f.get("position")) for f in out} == {
            ("area", "exit", None),
            ("queue", None, None),
        }
    assert (await service.call("GET", "/v1/areas/town/queue", OPS))[0] == 404
    assert (await service.call("GET", "/v1/areas/ber/queue", ("rider", "u1")))[0] == 403


async def test_a_locations_frame_crosses_by_its_newest_fix_through_the_same_geofence(
    service: Instance,
) -> None:
    """A `locations` frame (fixes an app buffered) moves the driver as its newest fix does:
    through the airport and out again within one frame, nothing; ending inside, an enter
    and a place in the queue; a frame ending back in town, the exit."""
    await put(service, "ber", feature("airport", *AIRPORT, 0.01, dwell_s=0))
    url = f"{service.url}/v1/drivers/d1/stream"

    def frame(name: str, *places: tuple[int, tuple[float, float]]) -> dict[str, Any]:
        fixes = [{k: v for k, v in fix(*at, seq).items() if k != "type"} for seq, at in places]
        return {"type": "locations", "id": name, "fixes": fixes}

    async with service.session.ws_connect(url, headers=service.auth("driver", "d1")) as ws:
        await ws.send_json(frame("b1", (1, TOWN), (2, AIRPORT), (3, TOWN)))
        await ws.send_json(frame("b2", (4, TOWN), (5, AIRPORT)))
        enter, place = await frames_until(ws, 2, {"area", "queue"})
        assert (enter["type"], enter["event"], enter["area_id"]) == ("area", "enter", "ber")
        assert (place["type"], place["position"]) == ("queue", 1)
        await ws.send_json(frame("b3", (6, AIRPORT), (7, TOWN)))
        out = await frames_until(ws, 2, {"area", "queue"})
        assert {(f["type"], f.get("event"), f.get("position")) for f in out} == {
            ("area", "exit", None),
            ("queue", None, None),
        }
        with pytest.raises(TimeoutError):  # and no other crossing (b1's went unseen)
            async with asyncio.timeout(1):
                await frames_until(ws, 1, {"area"})


async def test_the_ops_stream_hears_each_event_once(service: Instance) -> None:
    await put(service, "ber", feature("airport", *AIRPORT, 0.01, dwell_s=0))
    token = service.auth(*OPS)
    async with service.session.get(f"{service.url}/v1/areas/events", headers=token) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
        assert (await resp.content.readline()).startswith(b": area events")
        await resp.content.readline()
        for seq, at in enumerate((AIRPORT, AIRPORT, TOWN), 1):  # the second: no event
            await asyncio.sleep(0.005)  # each fix newer than the last
            await service.fix("d1", *at, seq=seq)
        seen: list[tuple[str, Any]] = []
        async with asyncio.timeout(5):
            while len(seen) < 4:
                line = await resp.content.readline()
                if line.startswith(b"data: "):
                    e = orjson.loads(line[6:])
                    seen.append((e["type"], e.get("event") or e.get("drivers")))
        assert seen == [("area", "enter"), ("queue", ["d1"]), ("area", "exit"), ("queue", [])]
    for who in (("rider", "u1"), ("driver", "d1")):
        status, _, _ = await service.call("GET", "/v1/areas/events", who)
        assert status == 403


async def test_a_fleet_batch_moves_its_drivers_in_and_out_of_the_queue(
    service: Instance,
) -> None:
    await put(service, "ber", feature("airport", *AIRPORT, 0.01, dwell_s=0))
    ts = int(time.time() * 1000)

    async def batch(seq: int, where: dict[str, tuple[float, float]]) -> None:
        updates = [
            {"driver_id": d, "lat": lat, "lng": lng, "ts": ts + seq, "seq": seq}
            for d, (lat, lng) in where.items()
        ]
        status, data, _ = await service.call(
            "POST", "/v1/locations", ("fleet", "gw1"), json={"updates": updates}
        )
        assert status == 200 and {r["status"] for r in data["results"]} == {"accepted"}

    async def queued() -> list[str]:
        status, data, _ = await service.call("GET", "/v1/areas/ber/queue", OPS)
        assert status == 200
        return [d["driver_id"] for d in data["drivers"]]

    await batch(1, {"d1": AIRPORT, "d2": TOWN, "d3": AIRPORT})
    assert sorted(await queued()) == ["d1", "d3"]  # one batch: joined at one time
    await batch(2, {"d1": TOWN, "d2": AIRPORT, "d3": AIRPORT})
    assert await queued() == ["d3", "d2"]


@pytest.mark.redis
@pytest.mark.slow
async def test_two_instances_serve_airport_rides_from_one_queue(
    request: pytest.FixtureRequest,
) -> None:
    settings = Settings(
        redis_cluster_url=request.getfixturevalue("redis_cluster_url"),
        areas_refresh_s=0.2,
        rider_max_active_rides=5,
        match_window_ms=0,
    )
    async with running(settings.with_overrides(instance_id="A")) as a:
        async with running(settings.with_overrides(instance_id="B")) as b:
            await put(a, "ber", feature("airport", *AIRPORT, 0.02))
            drivers = [f"q{i:02d}" for i in range(50)]
            for i, d in enumerate(drivers):  # queued in this order, the last nearest
                await a.fix(d, AIRPORT[0] + 0.01 - i * 0.0002, AIRPORT[1])

            async def queued() -> list[str]:
                _, q, _ = await b.call("GET", "/v1/areas/ber/queue", OPS)
                return [x["driver_id"] for x in q["drivers"]]

            assert await eventually(queued) == drivers

            async def ask(i: int) -> Any:
                inst = (a, b)[i % 2]
                body = {"pickup": {"lat": AIRPORT[0], "lng": AIRPORT[1]}}
                return (await inst.call("POST", "/v1/rides", ("rider", f"u{i % 40}"), json=body))[1]

            rides = await asyncio.gather(*(ask(i) for i in range(200)))
            offered = [r["driver_id"] for r in rides if r.get("status") == "offered"]
            assert len(offered) == 50
            assert Counter(offered).most_common(1)[0][1] == 1  # nobody offered two at once
            assert set(offered) == set(drivers)
            # the queue kept its order, each driver held for exactly its own ride
            _, q, _ = await a.call("GET", "/v1/areas/ber/queue", OPS)
            assert [x["driver_id"] for x in q["drivers"]] == drivers
            by_ride = {r["id"]: r["driver_id"] for r in rides if r.get("status") == "offered"}
            assert {x["offered_ride"]: x["driver_id"] for x in q["drivers"]} == by_ride


@pytest.mark.redis
async def test_crossings_reach_a_socket_on_another_instance_and_the_redis_stream(
    request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue("redis_url")
    settings = Settings(redis_url=url, areas_refresh_s=0.2, match_window_ms=0)
    async with running(settings.with_overrides(instance_id="A")) as a:
        async with running(settings.with_overrides(instance_id="B")) as b:
            await put(a, "ber", feature("airport", *AIRPORT, 0.01, dwell_s=0))
            ws_url = f"{b.url}/v1/drivers/d1/stream"
            async with b.session.ws_connect(ws_url, headers=b.auth("driver", "d1")) as ws:
                await asyncio.sleep(0.3)  # B follows the stream from now on
                for seq, at in enumerate((AIRPORT, TOWN), 1):  # fixes through A, which
                    # decides the crossings; B hears of them through the Redis Stream
                    await asyncio.sleep(0.005)
                    await a.fix("d1", *at, seq=seq)
                got = await frames_until(ws, 2, {"area"})
                assert [(f["event"], f["area_id"]) for f in got] == [
                    ("enter", "ber"),
                    ("exit", "ber"),
                ]
    client = Redis.from_url(url)
    try:
        await client.xgroup_create("dispatch:area_events", "billing", id="0")
        read = await client.xreadgroup("billing", "c1", {"dispatch:area_events": ">"})
        events = [orjson.loads(f[b"j"]) for _, f in read[0][1]]
        assert [(e["type"], e.get("event")) for e in events] == [
            ("area", "enter"),
            ("queue", None),
            ("area", "exit"),
            ("queue", None),
        ]
    finally:
        await client.aclose()
