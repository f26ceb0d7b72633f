"""A bounded ride workload through nginx for instance-fault tests: WebSocket drivers who
reconnect when their socket drops, and riders with Idempotency-Keys; every HTTP answer,
every socket drop and every reconnect is booked with its time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from dispatch.domain.rides import Ride, RideStatus
from dispatch.service_layer.ride_requests import new_ride_id

from .conftest import BERLIN, Client
from .redis_state import DriverRow, double_assignments, orphans

TERMINAL = {"completed", "cancelled", "no_driver"}


@dataclass
class Book:
    calls: int = 0
    errors: list[tuple[float, str]] = field(default_factory=list)  # (time, what)
    rides: dict[str, str] = field(default_factory=dict)  # ride id -> its rider key
    keys: set[tuple[str, str]] = field(default_factory=set)  # (rider, key) ever sent
    drops: list[tuple[float, int | None]] = field(default_factory=list)  # (time, close code)
    reconnects: list[float] = field(default_factory=list)  # seconds from drop to back
    offers_ignored: int = 0


def spot(i: int) -> dict[str, float]:
    return {"lat": BERLIN["lat"] + (i % 5 - 2) * 4e-4, "lng": BERLIN["lng"] + (i // 5 - 2) * 4e-4}


async def _call(client: Client, book: Book, method: str, path: str, who: str, **kw: Any) -> Any:
    book.calls += 1
    try:
        reply = await client.call(method, path, who, timeout=10, **kw)
    except (aiohttp.ClientError, TimeoutError) as exc:
        book.errors.append((time.monotonic(), f"{type(exc).__name__} {method} {path}"))
        return None
    if reply.status >= 500:
        book.errors.append((time.monotonic(), f"{reply.status} {path}"))
        return None
    return reply


async def _drive_ride(client: Client, book: Book, driver: str, ride_id: str) -> None:
    for step in ("arrived", "start", "complete"):
        await asyncio.sleep(0.2)
        await _call(client, book, "POST", f"/v1/rides/{ride_id}/{step}", f"driver:{driver}")


async def _driver_session(
    client: Client, book: Book, n: int, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event
) -> int | None:
    """One socket's life; returns its close code (None if we closed it)."""
    driver = f"dr{n}"
    seq = int(time.time() * 1000)
    tasks: set[asyncio.Task[None]] = set()
    next_fix = 0.0
    while not stop.is_set():
        if time.monotonic() >= next_fix:
            seq += 1
            await ws.send_json(
                {"type": "location", **spot(n), "ts": int(time.time() * 1000), "seq": seq}
            )
            next_fix = time.monotonic() + 1.0
        if ws.closed:
            return ws.close_code if ws.close_code is not None else -1
        try:
            msg = await ws.receive(timeout=0.25)
        except TimeoutError:
            continue
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.ERROR,
        ):
            return ws.close_code if ws.close_code is not None else -1
        if msg.type is not aiohttp.WSMsgType.TEXT:
            continue
        frame = orjson.loads(msg.data)
        if frame["type"] == "offer":
            if n % 4 == 0:
                book.offers_ignored += 1  # this driver lets offers run out
                continue
            await ws.send_json({"type": "accept", "ride_id": frame["ride"]["id"]})
        elif frame["type"] == "ride":
            ride = frame["ride"]
            if ride["status"] == "accepted" and ride["driver_id"] == driver:
                task = asyncio.create_task(_drive_ride(client, book, driver, ride["id"]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks, return_exceptions=True)
    return None


async def driver(client: Client, book: Book, n: int, stop: asyncio.Event) -> None:
    who = f"driver:dr{n}"
    url = client.base + f"/v1/drivers/dr{n}/stream"
    dropped_at: float | None = None
    while not stop.is_set():
        try:
            ws = await client.session.ws_connect(url, headers=client.auth(who), heartbeat=None)
        except (aiohttp.ClientError, TimeoutError):
            await asyncio.sleep(0.1)
            continue
        if dropped_at is not None:
            book.reconnects.append(time.monotonic() - dropped_at)
        try:
            code = await _driver_session(client, book, n, ws, stop)
        except (aiohttp.ClientError, ConnectionError, TimeoutError):
            code = -1
        finally:
            with contextlib.suppress(Exception):
                await ws.close()
        if code is not None:
            dropped_at = time.monotonic()
            book.drops.append((dropped_at, code))


async def rider(client: Client, book: Book, n: int, stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        rider_id, key = f"ri{n}", f"k{n}-{i}"
        book.keys.add((rider_id, key))
        reply = await _call(
            client,
            book,
            "POST",
            "/v1/rides",
            f"rider:{rider_id}",
            json={"pickup": spot(n * 3)},
            headers={"Idempotency-Key": key},
        )
        if reply is None or reply.status != 201:
            await asyncio.sleep(0.2)
            continue
        ride = reply.body
        book.rides[ride["id"]] = key
        deadline = time.monotonic() + 8
        while ride["status"] not in TERMINAL and time.monotonic() < deadline and not stop.is_set():
            await asyncio.sleep(0.5)
            got = await _call(client, book, "GET", f"/v1/rides/{ride['id']}", f"rider:{rider_id}")
            if got is not None and got.status == 200:
                ride = got.body
        await asyncio.sleep(0.3)


async def go_online(client: Client, drivers: int) -> None:
    for n in range(drivers):
        reply = await client.call(
            "PUT", f"/v1/drivers/dr{n}/status", f"driver:dr{n}", json={"status": "available"}
        )
        assert reply.status == 200, reply.body


def check_rides(
    book: Book, rides: dict[str, Ride], drivers: dict[str, DriverRow], leased_ok: bool = False
) -> dict[str, Any]:
    """No acknowledged ride lost, none stored twice (a ride no key accounts for), no
    double assignment, and every offer answered or run out with its driver freed.
    leased_ok: a driver reserved for a ride never stored is allowed while its lease runs
    (a partitioned instance can neither store the ride nor give the driver back)."""
    lost = set(book.rides) - set(rides)
    expected_ids = {new_ride_id(r, k) for r, k in book.keys}
    strays = set(rides) - expected_ids  # a ride no key accounts for: a duplicate
    report = double_assignments(rides, drivers)
    assert not lost and not strays
    assert report["drivers_in_two_active_rides"] == {}
    assert report["committed_rides_not_held_by_their_driver"] == []
    # Every offer ran out or was answered, and freed its driver when it ran out.
    now_ms = int(time.time() * 1000)
    stuck = [
        r.id
        for r in rides.values()
        if r.status is RideStatus.OFFERED and (r.offer_expires_at or 0) < now_ms - 6_000
    ]
    held = orphans(rides, drivers)
    reserved_for_nothing = [d for d, row in held.items() if not leased_ok or row.lease < now_ms]
    assert not stuck and not reserved_for_nothing, (stuck, reserved_for_nothing)
    return report | {"held_by_lease": len(held)}
