"""The driver WebSocket's `locations` frame (fixes an app buffered, sent at once) on one
real instance, on the embedded backend and on a real Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from dispatch.entrypoints.contract import MAX_FRAME_FIXES
from dispatch.settings import Settings

from .conftest import Instance, running, settings_for
from .test_streams import connect, recv

BERLIN = (52.52, 13.405)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def inst(request: pytest.FixtureRequest) -> AsyncIterator[Instance]:
    async with running(settings_for(request.param, request)) as inst:
        yield inst


def fix(seq: int, ts: int, north_m: float = 0.0) -> dict[str, Any]:
    return {"lat": BERLIN[0] + north_m / 111_195, "lng": BERLIN[1], "ts": ts, "seq": seq}


async def stored(inst: Instance, driver_id: str) -> tuple[int, Any]:
    status, body, _ = await inst.call("GET", f"/v1/drivers/{driver_id}", ("driver", driver_id))
    return status, body


async def updates_counted(inst: Instance) -> dict[str, float]:
    _, text, _ = await inst.call("GET", "/metrics")
    counted = {}
    for line in text.decode().splitlines():
        if line.startswith("dispatch_location_updates_total{"):
            label, value = line.split("}")
            counted[label.split('"')[1]] = float(value)
    return counted


async def send(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(orjson.dumps(frame).decode())
    return await recv(ws)


async def test_a_burst_is_acked_as_its_newest_fix_which_alone_is_stored(inst: Instance) -> None:
    now = int(time.time() * 1000)
    before = await updates_counted(inst)
    async with await connect(inst, "d1") as ws:
        fixes = [fix(1, now - 3000), fix(2, now - 2000, 10), fix(3, now - 1000, 20)]
        ack = await send(ws, {"type": "locations", "id": "b1", "fixes": fixes})
    assert ack == {"type": "ack", "id": "b1", "seq": 3, "status": "accepted"}
    status, body = await stored(inst, "d1")
    assert status == 200
    assert (body["seq"], body["ts"]) == (3, now - 1000)
    assert body["lat"] == pytest.approx(fixes[2]["lat"], abs=1e-5)
    after = await updates_counted(inst)
    assert after.get("accepted", 0) - before.get("accepted", 0) == 3


async def test_fixes_out_of_order_are_stale_as_if_sent_one_by_one(inst: Instance) -> None:
    now = int(time.time() * 1000)
    async with await connect(inst, "d1") as ws:
        assert (await send(ws, {"type": "location", **fix(10, now - 5000)}))["status"] == "accepted"
        before = await updates_counted(inst)
        # 12 beats 5, then 11 is older than 12: 12 is the newest, 5 and 11 are stale
        # (5 also against the stored 10, which the index decides).
        fixes = [fix(5, now - 6000), fix(12, now - 2000, 30), fix(11, now - 3000, 20)]
        ack = await send(ws, {"type": "locations", "fixes": fixes})
        assert ack == {"type": "ack", "seq": 12, "status": "accepted"}
        after = await updates_counted(inst)
        assert after["accepted"] - before.get("accepted", 0) == 2  # 5 then 12, in order
        assert after["stale"] - before.get("stale", 0) == 1  # 11
        # A burst older than what is stored changes nothing and says what is.
        ack = await send(ws, {"type": "locations", "fixes": [fix(7, now - 4000), fix(8, now)]})
    assert ack == {"type": "ack", "seq": 8, "status": "stale", "stored_seq": 12,
                   "stored_ts": now - 2000}  # fmt: skip
    assert (await stored(inst, "d1"))[1]["seq"] == 12


@pytest.mark.parametrize(
    ("fixes", "code", "field"),
    [
        ([{**fix(1, 1), "lat": 91}, fix(2, 2)], "invalid_body", "/fixes/0/lat"),
        ([fix(1, 1), {**fix(2, 2), "speed": -1}], "invalid_body", "/fixes/1/speed"),
        ([fix(1, 1), {**fix(2, 2), "driver_id": "d2"}], "unknown_field", "/fixes/1/driver_id"),
        ([fix(1, 1), {"lat": 1, "lng": 1, "seq": 2}], "invalid_body", "/fixes/1/ts"),
        ([fix(1, 1)] * (MAX_FRAME_FIXES + 1), "invalid_body", "/fixes"),
        ([], "invalid_body", "/fixes"),
        ([fix(1, 1), fix(2, int(time.time() * 1000) + 3_600_000)], "invalid_request", None),
    ],
    ids=["lat", "speed", "unknown", "missing", "too-many", "empty", "future"],
)
async def test_a_burst_with_a_bad_fix_is_refused_whole(
    inst: Instance, fixes: list[dict[str, Any]], code: str, field: str | None
) -> None:
    async with await connect(inst, "d1") as ws:
        error = await send(ws, {"type": "locations", "id": "b", "fixes": fixes})
        assert (error["type"], error["id"], error["error"]) == ("error", "b", code)
        assert error.get("field") == field
        assert await send(ws, {"type": "ping"}) == {"type": "pong"}  # still open
    assert (await stored(inst, "d1"))[0] == 404  # not one fix of it stored


async def test_a_burst_takes_one_rate_token_per_fix() -> None:
    settings = Settings(instance_id="t", driver_rate_per_s=0.001, driver_rate_burst=5)
    now = int(time.time() * 1000)
    async with running(settings) as inst, await connect(inst, "d1") as ws:
        six = [fix(i, now - 100 + i) for i in range(1, 7)]
        error = await send(ws, {"type": "locations", "fixes": six})  # one above the burst
        assert (error["type"], error["error"]) == ("error", "rate_limited")
        ack = await send(ws, {"type": "locations", "fixes": six[:5]})  # refused: took none
        assert (ack["type"], ack["seq"], ack["status"]) == ("ack", 5, "accepted")
        error = await send(ws, {"type": "location", **fix(6, now)})  # the bucket is empty
        assert (error["type"], error["error"]) == ("error", "rate_limited")
        assert (await stored(inst, "d1"))[1]["seq"] == 5
