"""A simulated driver app: streams its position over the WebSocket, answers offers (most
accepted, some declined, a few ignored until they time out), drives to the pickup and
the drop-off, and reports arrived / start / complete over HTTP. An airport driver drives
back to the airport between rides and waits there (in its queue: the service tells it
its place)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import aiohttp
import orjson

from dispatch.demo.areas import in_airport
from dispatch.demo.city import City, step_towards
from dispatch.demo.stats import Stats
from dispatch.domain.geo import LatLng

TICK_S = 0.5
SPEED_MPS = 150.0  # a time-lapse: cars move about 10x real speed so rides finish in the demo


class SimDriver:
    def __init__(
        self, ident: str, base: str, token: str, session: aiohttp.ClientSession,
        city: City, rng: random.Random, stats: Stats,
    ) -> None:  # fmt: skip
        self.id, self.base, self.session = ident, base, session
        self.headers = {"Authorization": f"Bearer {token}"}
        self.city, self.rng, self.stats = city, rng, stats
        self.home: LatLng | None = None  # an airport driver waits here between rides
        self.queue_place: int | None = None  # its place in the airport queue, if waiting
        self.queue_ride: str | None = None  # the last airport ride offered from the queue
        self.pos = city.random_point(rng)
        self.target = city.random_point(rng)
        self.seq = 0
        self.ride: dict[str, Any] | None = None
        self.phase = "idle"  # idle | to_pickup | to_dropoff
        self._answers: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        url = f"{self.base}/v1/drivers/{self.id}/stream"
        async with self.session.ws_connect(url, headers=self.headers, heartbeat=20) as ws:
            reader = asyncio.create_task(self._read(ws))
            try:
                while not stop.is_set():
                    await self._tick(ws)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), TICK_S * self.rng.uniform(0.9, 1.1))
            finally:
                for task in (reader, *self._answers):
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _tick(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.pos, reached = step_towards(self.pos, self.target, SPEED_MPS * TICK_S)
        self.seq += 1
        frame = {
            "type": "location",
            "lat": self.pos.lat,
            "lng": self.pos.lng,
            "ts": int(time.time() * 1000),
            "seq": self.seq,
        }
        await ws.send_str(orjson.dumps(frame).decode())
        if reached:
            await self._arrive()

    async def _arrive(self) -> None:
        if self.phase == "idle" or self.ride is None:
            self.target = self.home or self.city.random_point(self.rng)
            return
        ride_id = self.ride["id"]
        if self.phase == "to_pickup":
            if await self._step(ride_id, "arrived") and await self._step(ride_id, "start"):
                self.phase = "to_dropoff"
                drop = self.ride.get("dropoff")
                self.target = (
                    LatLng(drop["lat"], drop["lng"])
                    if drop
                    else self.city.point_near(self.rng, self.pos, 500, 2_000)
                )
                return
        elif self.phase == "to_dropoff" and await self._step(ride_id, "complete"):
            self.stats.completed += 1
        self._idle()

    def _idle(self) -> None:
        self.ride, self.phase = None, "idle"
        self.target = self.home or self.city.random_point(self.rng)

    async def _step(self, ride_id: str, step: str) -> bool:
        url = f"{self.base}/v1/rides/{ride_id}/{step}"
        async with self.session.post(url, headers=self.headers) as resp:
            if resp.status != 200:
                await resp.read()
                if resp.status != 409:  # 409: the rider cancelled meanwhile
                    self.stats.errors += 1
                return False
            return True

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = orjson.loads(msg.data)
            if frame["type"] == "offer" and self.phase == "idle":
                self._from_queue(frame["ride"])
                task = asyncio.create_task(self._answer(ws, frame["ride"]))
                self._answers.add(task)
                task.add_done_callback(self._answers.discard)
            elif frame["type"] == "ride":
                self._ride_update(frame["ride"])
            elif frame["type"] == "queue" and frame.get("driver_id") == self.id:
                self.queue_place = frame["position"]
                self.stats.queued_peak = max(self.stats.queued_peak, frame["length"])
            elif frame["type"] == "ack":
                self.stats.locations += 1
            elif frame["type"] == "error":
                self.stats.errors += 1

    def _from_queue(self, ride: dict[str, Any]) -> None:
        """An airport ride offered while this driver waits in the airport's queue."""
        pickup = LatLng(ride["pickup"]["lat"], ride["pickup"]["lng"])
        if self.queue_place is not None and in_airport(pickup):
            self.queue_ride = ride["id"]
            self.stats.queue_offers += 1
            self.stats.queue_offers_at_head += self.queue_place == 1

    async def _answer(self, ws: aiohttp.ClientWebSocketResponse, ride: dict[str, Any]) -> None:
        roll = self.rng.random()
        await asyncio.sleep(self.rng.uniform(0.2, 1.2))  # the driver looks at the phone
        if roll < 0.03:
            self.stats.timeouts += 1  # never answers: the offer times out
            return
        kind = "decline" if roll < 0.12 else "accept"
        if kind == "decline":
            self.stats.declines += 1
        with contextlib.suppress(ConnectionError):
            await ws.send_str(orjson.dumps({"type": kind, "ride_id": ride["id"]}).decode())

    def _ride_update(self, ride: dict[str, Any]) -> None:
        mine = ride.get("driver_id") == self.id
        if ride["status"] == "accepted" and mine and self.phase == "idle":
            self.stats.queue_accepted += ride["id"] == self.queue_ride
            self.ride, self.phase = ride, "to_pickup"
            self.target = LatLng(ride["pickup"]["lat"], ride["pickup"]["lng"])
        elif ride["status"] in ("cancelled", "no_driver", "completed") or not mine:
            if self.ride is not None and self.ride["id"] == ride["id"]:
                self._idle()
