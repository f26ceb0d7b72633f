"""The ops stream's source on this instance: while at least one page watches, one loop
looks at the area about once a second and hands every page the same encoded frames, so a
page costs a queue and its writes, not a look of its own. The rides in flight are learned
from the ops topic while pages watch (the topic carries every ride change of the fleet,
so an instance nobody watches does not hear it). The market and area layers (ops_layers.py)
are looked at in the same tick and travel in the same frames."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from dispatch.entrypoints import appkeys, background
from dispatch.entrypoints.ops_layer_wire import LayerView
from dispatch.entrypoints.ops_layers import LayerLook, LayerSource
from dispatch.entrypoints.ops_wire import View
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.ops_view import (
    OPS_TOPIC,
    Area,
    ProductBits,
    RidesInFlight,
    RideStats,
    look,
)

log = logging.getLogger(__name__)

PAGE_QUEUE = 8  # frames a page may fall behind before it is sent a new snapshot instead
LISTEN_AFTER_LAST_PAGE_S = 60.0  # the ride changes are still heard this long after
RENUMBER_HOLES = 1_000  # empty slots tolerated (and at most half the view) before renumbering


def frame(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Page:
    """One watching page: the frames it has yet to write."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[bytes] = asyncio.Queue(PAGE_QUEUE)
        self.fresh = True  # owes a snapshot before any delta

    def send(self, data: bytes) -> None:
        try:
            self.frames.put_nowait(data)
        except asyncio.QueueFull:
            # Too slow to keep up: drop what it has not written and start it over.
            while not self.frames.empty():
                self.frames.get_nowait()
            self.fresh = True


class OpsFeed:
    def __init__(
        self,
        deps: Deps,
        area: Area,
        limit: int,
        interval_s: float = 1.0,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        layers: LayerSource | None = None,  # None: drivers and rides only
    ) -> None:
        self.rides = RidesInFlight()
        self.stats = RideStats()
        self._deps = deps
        self._area = area
        self._limit = limit
        self._interval_s = interval_s
        self._now_ms = now_ms
        self._bits = ProductBits(deps.products.products)  # the catalog, read once
        self._view = View(area, self._bits.names)
        self._view_t = now_ms()  # when the view was last advanced
        self._snapshot_bytes: bytes | None = None  # its snapshot frame, once encoded
        self._layers = layers
        self._layer_view = LayerView()
        self._pages: set[Page] = set()
        self._wake = asyncio.Event()
        self._live = False  # the view is current: the loop is looking for some page

    @property
    def watching(self) -> int:
        return len(self._pages)

    @contextlib.contextmanager
    def watch(self) -> Iterator[Page]:
        page = Page()
        if self._live:
            # The view is what the other pages hold: this one starts from it at once.
            page.send(self._snapshot_frame())
            page.fresh = False
        self._pages.add(page)
        self._wake.set()
        try:
            yield page
        finally:
            self._pages.discard(page)

    async def run(self) -> None:
        listener: asyncio.Task[None] | None = None
        failing = False
        try:
            while True:
                if not self._pages:
                    self._live = False
                    self._wake.clear()
                    # The ops topic carries every ride change of the fleet: heard only
                    # while someone watches here (and for a while after, so a page that
                    # reconnects keeps what it had).
                    idle_s = LISTEN_AFTER_LAST_PAGE_S if listener is not None else None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), idle_s)
                    if not self._pages:
                        await _stop(listener)
                        listener = None
                        self.rides, self.stats = RidesInFlight(), RideStats()
                        continue
                if listener is None:
                    listener = await self._listening()
                started = time.monotonic()
                try:
                    await self.tick()
                    if failing:
                        log.info("ops feed: looking at the area again")
                    failing = False
                except Exception:
                    # The backend is down or slow: pages keep what they have, and hear
                    # again once a look succeeds. Said once, not every second.
                    if not failing:
                        log.warning("ops feed: a look at the area failed", exc_info=True)
                    failing = True
                await asyncio.sleep(max(0.0, self._interval_s - (time.monotonic() - started)))
        finally:
            await _stop(listener)

    async def tick(self) -> None:
        before = self._now_ms()
        self.rides.forget_silent(before)
        figures = self.stats.figures(before)
        by_product = {p: self.stats.figures(before, p) for p in self._bits.names}
        drivers = look(self._deps, self._area, self._limit, self.rides, self._bits)
        if self._layers is None:
            world, layers = await drivers, None
        else:  # both at once: the tick costs one look's time
            world, layers = await asyncio.gather(drivers, self._layers.look(before))
        world = replace(world, figures=figures, figures_by_product=by_product)
        # From here to the last send nothing awaits: every page sees one sequence of frames.
        now = self._now_ms()
        self._view_t, self._snapshot_bytes = now, None
        delta = self._view.advance(world, now)
        if layers is not None and (changed := self._layer_view.advance(layers)):
            delta = {**(delta or {}), **changed, "t": now}
        if self._view.holes > max(RENUMBER_HOLES, len(world.drivers)):
            self._view.renumber()
            for page in self._pages:
                page.fresh = True
        # Encoded once, whatever the number of pages.
        delta_frame = frame("delta", delta) if delta is not None else None
        for page in list(self._pages):
            if page.fresh:
                page.fresh = False
                page.send(self._snapshot_frame())
            elif delta_frame is not None:
                page.send(delta_frame)
        self._live = True

    def _snapshot_frame(self) -> bytes:
        """The view as of the last tick, encoded once for every page that needs it (many
        pages joining at once cost one encoding of 10,000 drivers, not one each)."""
        if self._snapshot_bytes is None:
            snapshot = {**self._view.snapshot(self._view_t), **self._layer_view.snapshot()}
            self._snapshot_bytes = frame("snapshot", snapshot)
        return self._snapshot_bytes

    async def _listening(self) -> asyncio.Task[None]:
        """A task applying the ops topic's ride changes, subscribed before it returns."""
        subscribed = asyncio.Event()

        async def listen() -> None:
            async with self._deps.notifier.subscribe(OPS_TOPIC) as subscription:
                subscribed.set()
                while True:
                    notice = await subscription.get()
                    self.rides.apply(notice.ride)
                    self.stats.apply(notice.ride)

        task = asyncio.create_task(listen(), name="ops-rides")
        waiting = asyncio.create_task(subscribed.wait())
        await asyncio.wait((task, waiting), return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        return task


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


FEED = web.AppKey("ops_feed", OpsFeed)


async def run_feed(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the feed of this instance, over the backend's deps."""
    settings = app[appkeys.SETTINGS]
    area = Area(settings.ops_lat, settings.ops_lng, settings.ops_radius_m)
    deps = app[appkeys.RUNTIME].deps
    feed = OpsFeed(
        deps,
        area,
        settings.ops_max_drivers,
        settings.ops_interval_s,
        layers=LayerLook(deps, area),
    )
    app[FEED] = feed
    async with background.running(("ops-feed", feed.run())):
        yield
