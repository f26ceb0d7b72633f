"""Geofence events: per accepted fix, which areas a driver entered or (after the area's
dwell) left; the events go to a bounded log every instance follows (a Redis Stream on
Redis), and from there to the driver's WebSocket and the ops event stream.

The hot path stays cheap: a fix in the same cell as the driver's last one and closer to
it than any boundary crossing that cell has the same areas (no lookup); else the areas
come from the compiled index (a few microseconds); the backend is asked only when they
differ from what this instance last saw for the driver, or that is older than
SEEN_TTL_MS (fixes of one driver may reach several instances: an event can then come up
to that late, never twice; a driver app on its WebSocket stays on one instance). All of
that runs compiled, one call a batch of fixes (_areaprobe.Seen): Python touches only the
fixes the backend is asked about."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

import orjson

from dispatch.domain.areas import AreaEvent, AreaKind, Crossing, QueueChange
from dispatch.service_layer._areaprobe import Seen
from dispatch.service_layer.areas import AreaBook
from geoindex import Position

SEEN_TTL_MS = 30_000
MAX_SEEN = 200_000  # drivers remembered per instance; past it, forget and ask again
LISTENER_QUEUE = 256
OPS_TOPIC = "ops"


# What a presence step answers: the crossings, every area the driver is now counted in
# (those it is out of within their dwell too), and when the first of those exits matures
# (ms), if one is pending.
Step = tuple[list[tuple[Crossing, str]], frozenset[str], int | None]


class PresenceStore(Protocol):
    async def step_many(
        self, steps: Sequence[tuple[str, Mapping[str, int]]], now_ms: int
    ) -> list[Step]:
        """Apply a fix of each driver (each named once), held by `holding` (area id ->
        dwell ms): each driver's Step, in order."""
        ...

    async def areas_of(self, driver_id: str) -> frozenset[str]: ...

    async def clear(self, driver_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        """Each driver out of every area at once: the areas each was counted in (drivers
        in none left out; a second caller gets none)."""
        ...


class AreaEventLog(Protocol):
    async def append(self, events: list[bytes]) -> None: ...

    async def tail(self) -> str:
        """The id of the newest entry: read after it for what comes next."""
        ...

    async def read(self, after: str, block_ms: int) -> tuple[str, list[bytes]]: ...

    async def recent(self, count: int) -> list[bytes]: ...


class QueueStore(Protocol):
    """The airport queues (service_layer.airport)."""

    async def join(
        self, area_id: str, driver_id: str, now_ms: int, max_len: int
    ) -> tuple[bool, list[str]]:
        """(changed, the order after, head first), as every change below answers."""
        ...

    async def leave(self, area_id: str, driver_id: str) -> tuple[bool, list[str]]: ...

    async def claim(self, area_id: str, ride_id: str, excluded: Sequence[str]) -> str | None:
        """The first queued driver not out on an offer from the queue and not excluded,
        marked as offered `ride_id`; None if there is none."""
        ...

    async def settle(
        self, area_id: str, driver_id: str, ride_id: str, how: str, now_ms: int
    ) -> tuple[bool, list[str]]:
        """how: back (declined, timed out), keep (the rider cancelled the offer),
        served (accepted), gone (not reservable), restore (the rider cancelled the
        accepted ride: the head again), forget (it ended otherwise)."""
        ...

    async def order(self, area_id: str) -> list[str]: ...

    async def held(self, area_id: str) -> dict[str, str]: ...


def area_event_json(e: AreaEvent) -> bytes:
    return orjson.dumps(
        {
            "type": "area",
            "event": e.event.value,
            "area_id": e.area_id,
            "driver_id": e.driver_id,
            "ts": e.ts,
        }
    )


def queue_change_json(q: QueueChange) -> bytes:
    return orjson.dumps(
        {"type": "queue", "area_id": q.area_id, "drivers": list(q.drivers), "ts": q.ts}
    )


class Geofence:
    def __init__(
        self, book: AreaBook, presence: PresenceStore, log: AreaEventLog, queues: QueueStore
    ) -> None:
        self.book = book
        self.presence = presence
        self.log = log
        self.queues = queues
        self.hub = EventHub()  # this instance's listeners
        # What this instance last found for each driver's fix (_areaprobe.Seen, in C):
        # the areas holding it, the areas' version then, until when that is trusted
        # (SEEN_TTL_MS, or a pending exit's dwell), and where the fix was: its cell, and
        # how far it may move in that cell and keep those areas.
        self._seen = Seen()

    def idle(self) -> bool:
        """No areas, and no driver remembered in one: no fix can cross anything."""
        return len(self._seen) == 0 and len(self.book.index) == 0

    async def observe(self, driver_id: str, lat: float, lng: float, now_ms: int) -> list[AreaEvent]:
        """The crossings of one accepted fix (most fixes: none, and no backend call): the
        steps of observe_many, for that one fix."""
        if self.idle():
            return []  # no areas, and no driver to leave one
        looks = self._screen(((driver_id, lat, lng),), now_ms)
        if not looks:
            return []
        return (await self._settle(looks, now_ms)).get(driver_id, [])

    async def observe_many(
        self, fixes: Sequence[tuple[str, float, float]] | Sequence[Position], now_ms: int
    ) -> dict[str, list[AreaEvent]]:
        """observe() for a fleet batch of accepted fixes ((driver, lat, lng) tuples or
        the Positions themselves), a driver's last fix only (its areas are where it is
        now, as update_location_burst keeps only the newest). One compiled pass over the
        batch (Seen.screen): each fix's cell; a fix in the same cell as the driver's last
        look and closer to it than any boundary crossing that cell keeps its areas (no
        look); else its areas from the index; those equal to the areas last found (not
        older than SEEN_TTL_MS, same version) are remembered where they are, nothing to
        ask. The backend is asked in one call (PresenceStore.step_many) for the others
        only, and their crossings logged in one append. The drivers with crossings, and
        theirs."""
        looks = self._screen(fixes, now_ms)
        if not looks:
            return {}
        return await self._settle(looks, now_ms)

    def _screen(
        self, fixes: Sequence[tuple[str, float, float]] | Sequence[Position], now_ms: int
    ) -> list[tuple[str, dict[str, int], bytes]]:
        """The fixes whose areas the backend must be asked about (Seen.screen). With no
        areas, only drivers remembered in some are looked at (to leave them)."""
        index, version = self.book.index, self.book.version
        empty = len(index) == 0
        if empty and len(self._seen) == 0:
            return []
        return self._seen.screen(index.probe, index.holds, fixes, version, now_ms, empty)

    async def _settle(
        self, looks: list[tuple[str, dict[str, int], bytes]], now_ms: int
    ) -> dict[str, list[AreaEvent]]:
        """The screened fixes through the backend (_ask), their crossings logged."""
        out = await self._ask(looks, now_ms)
        if out:
            await self.log.append([area_event_json(e) for es in out.values() for e in es])
        return out

    async def _ask(
        self, looks: Sequence[tuple[str, dict[str, int], bytes]], now_ms: int
    ) -> dict[str, list[AreaEvent]]:
        """The backend's count of each driver in the areas a look found (as Seen.screen
        answers them: area id -> dwell ms), in one call: the drivers with crossings, and
        theirs."""
        counted = await self.presence.step_many([look[:2] for look in looks], now_ms)
        seen = self._seen
        if len(seen) + len(looks) > MAX_SEEN:
            seen.clear()
        out: dict[str, list[AreaEvent]] = {}
        for (driver_id, _found, look), (crossings, _areas, exit_due) in zip(
            looks, counted, strict=True
        ):
            # Out of an area within its dwell: nothing can happen before that exit
            # matures unless the fix moves to other areas, which asks at once.
            due = now_ms + SEEN_TTL_MS
            seen.remember(driver_id, look, due if exit_due is None else min(exit_due, due))
            if crossings:
                out[driver_id] = [
                    AreaEvent(k, area_id, driver_id, now_ms) for k, area_id in crossings
                ]
        return out

    async def forget(self, driver_ids: Sequence[str], now_ms: int) -> dict[str, list[AreaEvent]]:
        """Drivers gone silent (swept from the geo index) exit every area they were
        counted in now, dwell or not: they can no longer be dispatched from any of them."""
        for driver_id in driver_ids:
            self._seen.forget(driver_id)
        if not driver_ids:
            return {}
        cleared = await self.presence.clear(driver_ids)
        events = {
            d: [AreaEvent(Crossing.EXIT, area_id, d, now_ms) for area_id in sorted(areas)]
            for d, areas in cleared.items()
        }
        if events:
            await self.log.append([area_event_json(e) for es in events.values() for e in es])
        return events

    def airports_of(self, events: list[AreaEvent]) -> list[AreaEvent]:
        out = []
        for e in events:
            c = self.book.get(e.area_id)
            if c is not None and c.area.kind is AreaKind.AIRPORT:
                out.append(e)
        return out


class EventHub:
    """This instance's listeners of area and queue events, by topic: `ops`, and
    `driver:<id>` (its area crossings and its place in any airport queue)."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._places: dict[tuple[str, str], int] = {}  # (area, driver) -> last place sent

    @contextlib.asynccontextmanager
    async def listen(self, topic: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(LISTENER_QUEUE)
        self._listeners.setdefault(topic, set()).add(queue)
        try:
            yield queue
        finally:
            subs = self._listeners.get(topic)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    del self._listeners[topic]

    def _send(self, topic: str, event: dict[str, Any]) -> None:
        for queue in self._listeners.get(topic, ()):
            with contextlib.suppress(asyncio.QueueFull):  # too slow a listener loses some
                queue.put_nowait(event)

    def deliver(self, raw: bytes) -> None:
        event = orjson.loads(raw)
        self._send(OPS_TOPIC, event)
        if event["type"] == "area":
            self._send(f"driver:{event['driver_id']}", event)
            return
        area_id, drivers = event["area_id"], event["drivers"]
        # Each queued driver hears of its place when it changes, and of leaving.
        places = {d: i + 1 for i, d in enumerate(drivers)}
        for d, place in places.items():
            if self._places.get((area_id, d)) != place:
                self._places[(area_id, d)] = place
                self._send(f"driver:{d}", _place(area_id, d, place, len(drivers), event["ts"]))
        for key in [k for k in self._places if k[0] == area_id and k[1] not in places]:
            del self._places[key]
            self._send(f"driver:{key[1]}", _place(area_id, key[1], None, len(drivers), event["ts"]))


def _place(area_id: str, driver_id: str, place: int | None, length: int, ts: int) -> dict[str, Any]:
    return {
        "type": "queue",
        "area_id": area_id,
        "driver_id": driver_id,
        "position": place,
        "length": length,
        "ts": ts,
    }


async def follow(log: AreaEventLog, hub: EventHub, block_ms: int = 1_000) -> None:
    """Deliver every new entry of the log to this instance's listeners, forever."""
    after: str | None = None
    task = asyncio.current_task()
    while True:
        try:
            if after is None:
                after = await log.tail()
            after, events = await log.read(after, block_ms)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the backend is away: try again shortly
            # redis-py can swallow a cancel that lands in a read (raising a timeout
            # instead): stop all the same, or shutting down would wait for ever.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None
            await asyncio.sleep(0.5)
            continue
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        for raw in events:
            hub.deliver(raw)
