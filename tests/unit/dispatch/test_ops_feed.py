"""The ops feed of one instance: every page starts from a snapshot and then gets the same
deltas; a page too slow to keep up starts over; rides come from the ops topic."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import orjson

from dispatch.adapters.fanout import MemoryNotifier
from dispatch.domain.geo import LatLng
from dispatch.domain.products import DEFAULT_CATALOG
from dispatch.domain.rides import Ride, RideStatus
from dispatch.entrypoints.ops_feed import PAGE_QUEUE, OpsFeed, Page
from dispatch.service_layer.notices import NoticeKind, RideNotice
from dispatch.service_layer.ops_view import OPS_TOPIC, Area
from geoindex import BackendUnavailable, MemoryGeoIndex, Position
from tests.waiting import eventually

NOW = 1_800_000_000_000
AREA = Area(52.52, 13.405, 5_000)


def feed_over(index: MemoryGeoIndex, notifier: Any = None) -> OpsFeed:
    deps: Any = SimpleNamespace(
        index=index, notifier=notifier or MemoryNotifier(), products=DEFAULT_CATALOG
    )
    return OpsFeed(deps, AREA, limit=1_000, interval_s=0.01, now_ms=lambda: NOW)


def frames(page: Page) -> list[tuple[str, dict[str, Any]]]:
    out = []
    while not page.frames.empty():
        head, _, data = page.frames.get_nowait().partition(b"\ndata: ")
        out.append((head.removeprefix(b"event: ").decode(), orjson.loads(data)))
    return out


async def test_pages_start_from_a_snapshot_then_share_the_same_deltas() -> None:
    index = MemoryGeoIndex(clock=lambda: NOW)
    await index.upsert([Position("d1", 52.52, 13.405, NOW - 10)])
    feed = feed_over(index)
    with feed.watch() as first:
        await feed.tick()
        [(kind, snap)] = frames(first)
        assert kind == "snapshot" and snap["drivers"]["id"] == ["d1"]
        # A page joining a live feed gets the current view at once, not a look later.
        with feed.watch() as second:
            [(kind, _)] = frames(second)
            assert kind == "snapshot"
            await index.upsert([Position("d1", 52.521, 13.405, NOW - 5)])
            await feed.tick()
            [(kind, a)], [(_, b)] = frames(first), frames(second)
            assert kind == "delta" and a == b and a["moved"]["dlat"] == [100]
            await feed.tick()  # nothing changed: nothing sent
            assert frames(first) == []


async def test_a_page_too_slow_to_keep_up_starts_over_from_a_snapshot() -> None:
    index = MemoryGeoIndex(clock=lambda: NOW)
    feed = feed_over(index)
    with feed.watch() as page:
        for i in range(PAGE_QUEUE + 1):
            await index.upsert([Position("d1", 52.52 + i * 1e-3, 13.405, NOW - 100 + i)])
            await feed.tick()
        assert page.fresh and page.frames.empty()
        await feed.tick()
        [(kind, snap)] = frames(page)
        assert kind == "snapshot" and snap["drivers"]["id"] == ["d1"]


async def test_rides_published_on_the_ops_topic_colour_their_drivers() -> None:
    index = MemoryGeoIndex(clock=lambda: NOW)
    await index.upsert([Position("d1", 52.52, 13.405, NOW - 10)])
    await index.set_available("d1", False)  # as its reservation does
    notifier = MemoryNotifier()
    feed = feed_over(index, notifier)
    running = asyncio.create_task(feed.run())
    try:
        with feed.watch() as page:
            seen: list[tuple[str, dict[str, Any]]] = []
            await eventually(lambda: seen.extend(frames(page)) or seen, what="a snapshot")
            ride = Ride(
                "r_1", "u1", LatLng(52.52, 13.405), None, RideStatus.ACCEPTED, NOW, NOW, "d1"
            )
            await notifier.publish(OPS_TOPIC, RideNotice(NoticeKind.RIDE, ride))

            def on_ride() -> bool:
                seen.extend(frames(page))
                deltas = [d for kind, d in seen if kind == "delta"]
                return any(
                    d.get("rides", {}).get("id") == ["r_1"] and d["status"]["status"] == [2]
                    for d in deltas
                )

            await eventually(on_ride, what="the ride, and its driver on_ride")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_backend_outage_is_logged_once_and_the_feed_resumes(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="dispatch.entrypoints.ops_feed")
    index = MemoryGeoIndex(clock=lambda: NOW)
    await index.upsert([Position("d1", 52.52, 13.405, NOW - 10)])
    real_look, calls = index.within_columns, {"n": 0}

    async def flaky_look(*args: Any) -> Any:
        calls["n"] += 1
        if 2 <= calls["n"] <= 5:
            raise BackendUnavailable("redis unavailable")
        return await real_look(*args)

    index.within_columns = flaky_look  # type: ignore[method-assign]
    feed = feed_over(index)
    running = asyncio.create_task(feed.run())
    try:
        with feed.watch() as page:
            await eventually(lambda: calls["n"] >= 7, what="looks past the outage")
            assert [k for k, _ in frames(page)] == ["snapshot"]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 1
    assert any("again" in r.getMessage() for r in caplog.records)


async def test_the_ops_topic_is_heard_only_while_a_page_watches(monkeypatch: Any) -> None:
    monkeypatch.setattr("dispatch.entrypoints.ops_feed.LISTEN_AFTER_LAST_PAGE_S", 0.05)
    notifier = MemoryNotifier()
    feed = feed_over(MemoryGeoIndex(clock=lambda: NOW), notifier)
    ride = Ride("r_1", "u1", LatLng(52.52, 13.405), None, RideStatus.ACCEPTED, NOW, NOW, "d1")
    running = asyncio.create_task(feed.run())
    try:
        await asyncio.sleep(0.05)
        assert notifier._fanout._subscribers == {}  # nobody watches: not subscribed
        with feed.watch():
            await eventually(lambda: OPS_TOPIC in notifier._fanout._subscribers)
            await notifier.publish(OPS_TOPIC, RideNotice(NoticeKind.RIDE, ride))
            await eventually(lambda: [r.id for r in feed.rides.rides()] == ["r_1"])
        # The last page left: a while later the topic is let go and its rides forgotten.
        await eventually(
            lambda: notifier._fanout._subscribers == {} and feed.rides.rides() == [],
            what="the topic let go and the rides forgotten",
        )
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
