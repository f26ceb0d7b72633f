"""The geofence's compiled pass (_areaprobe.Seen.screen) against the per-fix Python it
replaced, kept here as the reference: on random walks of a few drivers in and out of
overlapping areas (dwell, SEEN_TTL_MS, a version change, drivers forgotten, single fixes
and batches naming a driver twice, as tuples or Positions, the remembered drivers
cleared past MAX_SEEN), both give the same crossings in the same order, log the same
events and leave the presence store in the same state."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.adapters.memory_area_events import MemoryAreaEventLog
from dispatch.adapters.memory_presence import MemoryPresenceStore
from dispatch.domain.areas import Area, AreaEvent, AreaKind, Crossing
from dispatch.service_layer import geofence
from dispatch.service_layer._areaprobe import Seen
from dispatch.service_layer.area_batch import cells_of, holding_near_many
from dispatch.service_layer.area_index import AreaIndex, CompiledArea, compile_area
from dispatch.service_layer.geofence import SEEN_TTL_MS, Geofence, area_event_json
from geoindex import Position

CENTRE = (52.50, 13.40)
M = 1 / 111_195  # a metre of latitude, in degrees


def _ring(lat: float, lng: float, r_m: float, n: int) -> tuple[tuple[float, float], ...]:
    stretch = 1 / math.cos(math.radians(lat))
    pts = [
        (lng + r_m * M * stretch * math.cos(a), lat + r_m * M * math.sin(a))
        for a in (2 * math.pi * i / n for i in range(n))
    ]
    return (*pts, pts[0])


def _areas() -> list[CompiledArea]:
    """Five overlapping areas within 300 m of CENTRE (one with a hole), dwells of 0, 1
    and 20 s: a walk of a few metres a fix crosses their boundaries often."""
    lat, lng = CENTRE
    shapes = [
        ("a", (_ring(lat, lng, 150, 40),), 0.0),
        (
            "b",
            (_ring(lat + 60 * M, lng, 120, 7), tuple(reversed(_ring(lat + 60 * M, lng, 40, 9)))),
            1.0,
        ),
        ("c", (_ring(lat - 50 * M, lng + 90 * M * 1.6, 100, 30),), 20.0),
        ("d", (_ring(lat, lng - 120 * M * 1.6, 80, 5),), 1.0),
        ("e", (_ring(lat + 10 * M, lng + 10 * M, 250, 60),), 20.0),
    ]
    kinds = [
        AreaKind.NO_PICKUP,
        AreaKind.AIRPORT,
        AreaKind.NO_PICKUP,
        AreaKind.AIRPORT,
        AreaKind.SERVICE_AREA,
    ]
    return [
        compile_area(Area(i, kind, f"area {i}", (rings,), dwell))
        for (i, rings, dwell), kind in zip(shapes, kinds, strict=True)
    ]


COMPILED = _areas()
INDEXES = [
    AreaIndex.build(COMPILED),
    AreaIndex.build([c for c in COMPILED if c.area.id in "ace"]),
    AreaIndex.build(()),
]


@dataclass
class Book:
    index: AreaIndex
    version: int


class _Seen(NamedTuple):
    ids: frozenset[str]
    due: int
    version: int
    cell: int
    lng: float
    lat: float
    near2: float


def _keeps(seen: _Seen, cell: int, lat: float, lng: float) -> bool:
    dx, dy = lng - seen.lng, lat - seen.lat
    return seen.cell == cell and dx * dx + dy * dy < seen.near2


class Reference:
    """Geofence.observe, observe_many and forget as they were in Python, per fix."""

    def __init__(self, book: Book, max_seen: int) -> None:
        self.book = book
        self.presence = MemoryPresenceStore()
        self.log = MemoryAreaEventLog(100_000)
        self.max_seen = max_seen
        self._seen: dict[str, _Seen] = {}

    async def observe(self, driver_id: str, lat: float, lng: float, now_ms: int) -> list[AreaEvent]:
        index, version = self.book.index, self.book.version
        if len(index) == 0 and driver_id not in self._seen:
            return []
        fresh = self._fresh(driver_id, version, now_ms)
        cell = index.cell_of(lat, lng)
        if fresh is not None and _keeps(fresh, cell, lat, lng):
            return []
        found, near = index.holding_near(cell, lat, lng) if len(index) else ((), math.inf)
        fix = _Seen(frozenset([c.area.id for c in found]), 0, version, cell, lng, lat, near * near)
        if self._unchanged(driver_id, fix, fresh):
            return []
        events = (await self._ask([(driver_id, found, fix)], now_ms)).get(driver_id, [])
        if events:
            await self.log.append([area_event_json(e) for e in events])
        return events

    async def observe_many(
        self, fixes: Sequence[tuple[str, float, float]], now_ms: int
    ) -> dict[str, list[AreaEvent]]:
        index, version = self.book.index, self.book.version
        last = {driver_id: (lat, lng) for driver_id, lat, lng in fixes}
        if len(index) == 0:
            last = {d: at for d, at in last.items() if d in self._seen}
        if not last:
            return {}
        ids = list(last)
        lats = np.fromiter((lat for lat, _ in last.values()), dtype=np.float64, count=len(ids))
        lngs = np.fromiter((lng for _, lng in last.values()), dtype=np.float64, count=len(ids))
        cells = cells_of(lats, lngs)
        look: list[int] = []
        fresh: list[_Seen | None] = []
        for i, (driver_id, cell) in enumerate(zip(ids, cells.tolist(), strict=True)):
            seen = self._fresh(driver_id, version, now_ms)
            if seen is None or not _keeps(seen, cell, float(lats[i]), float(lngs[i])):
                look.append(i)
                fresh.append(seen)
        if not look:
            return {}
        at = np.asarray(look, dtype=np.int64)
        offsets, held, near = holding_near_many(index, cells[at], lats[at], lngs[at])
        areas, bounds, places = index.areas, offsets.tolist(), held.tolist()
        changed = []
        for j, i in enumerate(look):
            found = [areas[k] for k in places[bounds[j] : bounds[j + 1]]]
            where = (int(cells[i]), float(lngs[i]), float(lats[i]), float(near[j]) ** 2)
            fix = _Seen(frozenset([c.area.id for c in found]), 0, version, *where)
            if not self._unchanged(ids[i], fix, fresh[j]):
                changed.append((ids[i], found, fix))
        out = await self._ask(changed, now_ms) if changed else {}
        if out:
            await self.log.append([area_event_json(e) for es in out.values() for e in es])
        return out

    def _fresh(self, driver_id: str, version: int, now_ms: int) -> _Seen | None:
        seen = self._seen.get(driver_id)
        if seen is not None and now_ms < seen.due and seen.version == version:
            return seen
        return None

    def _unchanged(self, driver_id: str, fix: _Seen, fresh: _Seen | None) -> bool:
        if fresh is None or fresh.ids != fix.ids:
            return False
        self._seen[driver_id] = fresh._replace(
            cell=fix.cell, lng=fix.lng, lat=fix.lat, near2=fix.near2
        )
        return True

    async def _ask(
        self, fixes: Sequence[tuple[str, Sequence[CompiledArea], _Seen]], now_ms: int
    ) -> dict[str, list[AreaEvent]]:
        steps: list[tuple[str, Mapping[str, int]]] = [
            (driver_id, {c.area.id: round(c.area.dwell_s * 1000) for c in found})
            for driver_id, found, _fix in fixes
        ]
        counted = await self.presence.step_many(steps, now_ms)
        if len(self._seen) + len(fixes) > self.max_seen:
            self._seen.clear()
        out: dict[str, list[AreaEvent]] = {}
        for (driver_id, _found, fix), (crossings, _areas, exit_due) in zip(
            fixes, counted, strict=True
        ):
            due = now_ms + SEEN_TTL_MS
            self._seen[driver_id] = fix._replace(
                due=due if exit_due is None else min(exit_due, due)
            )
            if crossings:
                out[driver_id] = [
                    AreaEvent(k, area_id, driver_id, now_ms) for k, area_id in crossings
                ]
        return out

    async def forget(self, driver_ids: Sequence[str], now_ms: int) -> None:
        for driver_id in driver_ids:
            self._seen.pop(driver_id, None)
        if not driver_ids:
            return
        cleared = await self.presence.clear(driver_ids)
        events = [
            AreaEvent(Crossing.EXIT, area_id, d, now_ms)
            for d, areas in cleared.items()
            for area_id in sorted(areas)
        ]
        if events:
            await self.log.append([area_event_json(e) for e in events])


DRIVERS = [f"d{i}" for i in range(10)]  # more than a screen keeps on its stack (8)
# One step: (kind, drivers named, metres moved each (north, east), ms passed, index):
# mostly small moves and little time (the same cell, the same areas: no look, or a look
# and nothing to ask), now and then a jump, a dwell or SEEN_TTL_MS passed.
small = st.floats(-4, 4)
move = st.one_of(small, small, small, st.floats(-150, 150))
steps_st = st.lists(
    st.tuples(
        st.sampled_from(["batch"] * 4 + ["positions"] * 2 + ["single"] * 2 + ["forget", "version"]),
        st.lists(st.integers(0, len(DRIVERS) - 1), min_size=1, max_size=14),
        st.lists(st.tuples(move, move), min_size=14, max_size=14),
        st.sampled_from([0, 0, 1, 40, 40, 600, 1_500, 21_000, 31_000]),
        st.integers(0, len(INDEXES) - 1),
    ),
    min_size=1,
    max_size=60,
)


def _events(out: Mapping[str, list[AreaEvent]]) -> list[tuple[str, list[tuple[str, str, int]]]]:
    return [(d, [(e.event.value, e.area_id, e.ts) for e in es]) for d, es in out.items()]


async def _run(steps: list, max_seen: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(geofence, "MAX_SEEN", max_seen)
    book = Book(INDEXES[0], 1)
    ours = Geofence(book, MemoryPresenceStore(), MemoryAreaEventLog(100_000), None)  # type: ignore[arg-type]
    theirs = Reference(book, max_seen)
    at = {d: [CENTRE[0] + (i % 4 - 1.5) * 40 * M, CENTRE[1] + i * M] for i, d in enumerate(DRIVERS)}
    now = 1_000_000
    for kind, named, moves, passed, which in steps:
        now += passed
        if kind == "version":
            book.index, book.version = INDEXES[which], book.version + 1
            continue
        drivers = [DRIVERS[i] for i in named]
        if kind == "forget":
            await ours.forget(drivers, now)
            await theirs.forget(drivers, now)
            continue
        fixes = []
        for d, (north, east) in zip(drivers, moves, strict=False):
            at[d][0] += north * M
            at[d][1] += east * M * 1.6
            fixes.append((d, at[d][0], at[d][1]))
        if kind == "single":
            d, lat, lng = fixes[0]
            assert [e for e in await ours.observe(d, lat, lng, now)] == [
                e for e in await theirs.observe(d, lat, lng, now)
            ]
        else:  # a fleet batch: as tuples, or the Positions themselves (track_fixes)
            given = fixes if kind == "batch" else [Position(d, y, x, now) for d, y, x in fixes]
            got = _events(await ours.observe_many(given, now))
            assert got == _events(await theirs.observe_many(fixes, now))
        for d in DRIVERS:
            assert await ours.presence.areas_of(d) == await theirs.presence.areas_of(d)
            mine = ours._seen.areas(d)
            assert (mine is None) == (d not in theirs._seen)
            if mine is not None and theirs._seen[d].version == book.version:
                names = frozenset(book.index.areas[k].area.id for k in mine)
                assert names == theirs._seen[d].ids
        assert len(ours._seen) == len(theirs._seen)
    assert await ours.log.recent(10_000) == await theirs.log.recent(10_000)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=steps_st, max_seen=st.sampled_from([2, 3, 200_000]))
def test_the_compiled_pass_answers_as_the_per_fix_python(
    steps: list, max_seen: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_run(steps, max_seen, monkeypatch))


def test_the_walks_cross_boundaries_and_skip_looks() -> None:
    """The property above is not vacuous: a walk like its own enters and leaves areas,
    and most of its fixes are answered without asking the presence store."""
    book = Book(INDEXES[0], 1)
    asked = []

    class Counting(MemoryPresenceStore):
        async def step_many(self, steps, now_ms):  # type: ignore[no-untyped-def]
            asked.extend(d for d, _ in steps)
            return await super().step_many(steps, now_ms)

    fence = Geofence(book, Counting(), MemoryAreaEventLog(1_000), None)  # type: ignore[arg-type]
    rng = np.random.default_rng(5)
    lat, lng = CENTRE[0] - 200 * M, CENTRE[1]
    events: list[AreaEvent] = []

    async def walk() -> None:
        nonlocal lat, lng
        for k in range(800):
            lat += float(rng.normal(0.6, 2.0)) * M
            lng += float(rng.normal(0, 2.0)) * M * 1.6
            out = await fence.observe_many([("d", lat, lng)], 1_000_000 + k * 10)
            events.extend(out.get("d", []))

    asyncio.run(walk())
    kinds = {(e.event.value, e.area_id) for e in events}
    assert ("enter", "a") in kinds and ("exit", "a") in kinds
    assert 0 < len(asked) < 800 // 4


def test_seen_remembers_forgets_and_refuses_what_screen_did_not_answer() -> None:
    index = INDEXES[0]
    seen = Seen()
    [(driver_id, found, look)] = seen.screen(
        index.probe, index.holds, [("d", *CENTRE)], 1, 0, False
    )
    assert driver_id == "d" and set(found) >= {"a", "e"}
    assert found["a"] == 0 and found["e"] == 20_000  # each area's dwell, in ms
    assert len(seen) == 0 and seen.areas("d") is None  # nothing known before remember
    seen.remember("d", look, 10_000)
    assert len(seen) == 1
    assert {index.areas[k].area.id for k in seen.areas("d")} == set(found)
    # Known, fresh and not moved: nothing to ask; past its due: asked again.
    assert seen.screen(index.probe, index.holds, [("d", *CENTRE)], 1, 9_999, False) == []
    assert len(seen.screen(index.probe, index.holds, [("d", *CENTRE)], 1, 10_000, False)) == 1
    # Another version or another index: asked again.
    assert len(seen.screen(index.probe, index.holds, [("d", *CENTRE)], 2, 0, False)) == 1
    assert len(seen.screen(INDEXES[1].probe, INDEXES[1].holds, [("d", *CENTRE)], 1, 0, False)) == 1
    seen.forget("d")
    assert len(seen) == 0 and seen.areas("d") is None
    # Only drivers it knows, when asked so (an index with no areas).
    assert seen.screen(INDEXES[2].probe, INDEXES[2].holds, [("d", *CENTRE)], 1, 0, True) == []
    with pytest.raises(ValueError):
        seen.remember("d", b"not a look", 1)
    with pytest.raises(TypeError):
        seen.screen(index.probe, index.holds, [("d", 1.0)], 1, 0, False)
    with pytest.raises(TypeError):  # holds of another index
        seen.screen(index.probe, INDEXES[1].holds, [("d", *CENTRE)], 1, 0, False)
    seen.remember("d", look, 10_000)
    seen.clear()
    assert len(seen) == 0 and seen.areas("d") is None
