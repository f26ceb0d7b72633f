"""Hot regions split: which regions index their drivers at a finer resolution.

A region is normally the cell of a position at `region_res` (its parent). A listed parent
is split: its drivers live in regions at a finer resolution (region_res + 1 or + 2), each
a key group and slot of its own, so a dense centre's writes and searches spread over as
many slots (and masters) as it has busy children.

The list is shared through the backend and versioned (RedisSplitStore: one hash; the
embedded backend holds it itself), and every instance reads the same version: an index
checks the version at most every `refresh_s` before an operation and reloads the list
when it changed.

Changing a parent's resolution is online and takes two phases, each given `settle_s`
(longer than one refresh plus the longest operation) to reach every instance:
  1. "read both": searches read the old and the new regions, writes still go to the old;
  2. "write new": writes go to the new regions (a driver's next fix moves it there and
     leaves a tombstone in the old one); then a migration re-homes every driver still in
     an old region, by the same versioned move a fix makes;
then the entry becomes stable and searches read the new regions only. A search never
misses a driver: while any instance may still write the old regions, every instance
reads both; a driver found in both is counted once (by id, newest fix or version).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from h3.api import basic_int as h3

from geoindex.cells import SCORE_MASK, score_to_cell
from geoindex.errors import GeoIndexError, InvalidQuery
from geoindex.redis_edge import Script, ScriptRunner, translated
from geoindex.search import Step
from geoindex.supply import SupplyCell
from geoindex.within import regions_within

MAX_SPLIT_DEPTH = 2  # a split parent's regions are at most 2 resolutions finer (49 children)
MAX_SPLIT_PARENTS = 10_000


@dataclass(frozen=True, slots=True)
class Entry:
    """A listed parent: its drivers' resolution, and while migrating the one before."""

    res: int
    prev: int | None = None
    writes_new: bool = True  # phase 2 of a migration (phase 1: writes still at prev)

    @property
    def write_res(self) -> int:
        return self.prev if self.prev is not None and not self.writes_new else self.res

    @property
    def read_res(self) -> tuple[int, ...]:
        return (self.res,) if self.prev is None else (self.prev, self.res)

    def encode(self) -> str:
        if self.prev is None:
            return str(self.res)
        return f"{self.prev}>{self.res}{'w' if self.writes_new else 'r'}"

    @classmethod
    def decode(cls, raw: str) -> Entry:
        if ">" not in raw:
            return cls(int(raw))
        prev, rest = raw.split(">")
        return cls(int(rest[:-1]), int(prev), rest[-1] == "w")


@dataclass(frozen=True, slots=True)
class Layout:
    """One version of the list: where each position is written, which regions a read of
    an area or a cell must visit."""

    region_res: int
    version: int = 0
    parents: Mapping[int, Entry] = field(default_factory=dict)

    def write_region(self, score: int) -> int:
        cell = score_to_cell(score)
        parent = int(h3.cell_to_parent(cell, self.region_res))
        entry = self.parents.get(parent)
        if entry is None or entry.write_res == self.region_res:
            return parent
        return int(h3.cell_to_parent(cell, entry.write_res))

    def cell_regions(self, cell: int) -> list[int]:
        """Every region that may hold a driver inside `cell` (at region_res or finer)."""
        parent = int(h3.cell_to_parent(cell, self.region_res))
        entry = self.parents.get(parent)
        if entry is None:
            return [parent]
        res = int(h3.get_resolution(cell))
        out: list[int] = []
        for r in entry.read_res:
            if r == self.region_res:
                out.append(parent)
            elif res >= r:
                out.append(int(h3.cell_to_parent(cell, r)))
            else:
                out += (int(c) for c in h3.cell_to_children(cell, r))
        return out

    def old_regions(self, parent: int) -> list[int]:
        """While `parent` migrates: the regions it is leaving."""
        entry = self.parents[parent]
        assert entry.prev is not None
        return _regions_at(parent, entry.prev)

    def scans(self, step: Step) -> dict[int, np.ndarray]:
        """A step's per-region scans with split parents' rows handed to their regions.

        A row is one cell of the step (with its own bound): it goes to each region that
        may hold drivers in it, in the parent's scan order."""
        if not self.parents or not any(r in self.parents for r in step.scans):
            return step.scans
        out: dict[int, np.ndarray] = {}
        for parent, rows in step.scans.items():
            if parent not in self.parents:
                out[parent] = rows
                continue
            owners: dict[int, list[int]] = {}
            for i, cell in enumerate(_row_cells(rows, step.res)):
                for region in self.cell_regions(cell):
                    owners.setdefault(region, []).append(i)
            for region, idx in owners.items():
                out[region] = rows[idx]
        return out

    def area_regions(self, lat: float, lng: float, radius_m: float) -> list[int]:
        """Every region that may hold a position within radius_m (see regions_within)."""
        base = regions_within(lat, lng, radius_m, self.region_res)
        split = [p for p in base if p in self.parents]
        if not split:
            return base
        out = [p for p in base if p not in self.parents]
        finer = {r for p in split for r in self.parents[p].read_res if r != self.region_res}
        out += (p for p in split if self.region_res in self.parents[p].read_res)
        for r in sorted(finer):
            for c in regions_within(lat, lng, radius_m, r):
                entry = self.parents.get(int(h3.cell_to_parent(c, self.region_res)))
                if entry is not None and r in entry.read_res:
                    out.append(c)
        return out

    def supply_cells(self, cells: Iterable[SupplyCell]) -> list[SupplyCell]:
        """The cells of a supply count, one row per region that may hold drivers in it
        (count_supply adds a cell's rows up)."""
        cells = list(cells)
        if not self.parents:
            return cells
        return [
            (cell, region, lo, hi)
            for cell, parent, lo, hi in cells
            for region in (self.cell_regions(cell) if parent in self.parents else (parent,))
        ]

    def check_change(self, parent_hex: str, res: object) -> tuple[int, int]:
        """A requested change, validated: (parent cell, resolution)."""
        try:
            parent = int(parent_hex, 16) if isinstance(parent_hex, str) else -1
        except ValueError:
            parent = -1
        if (
            not isinstance(parent_hex, str)
            or len(parent_hex) != 15
            or parent <= 0
            or not h3.is_valid_cell(parent)
            or h3.get_resolution(parent) != self.region_res
        ):
            raise InvalidQuery(f"parent must be an H3 cell of resolution {self.region_res}")
        top = self.region_res + MAX_SPLIT_DEPTH
        if isinstance(res, bool) or not isinstance(res, int) or not self.region_res <= res <= top:
            raise InvalidQuery(f"res must be an integer in [{self.region_res}, {top}]")
        if parent not in self.parents and len(self.parents) >= MAX_SPLIT_PARENTS:
            raise InvalidQuery(f"at most {MAX_SPLIT_PARENTS} split parents")
        return parent, res

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "region_res": self.region_res,
            "parents": {
                f"{p:x}": {
                    "res": e.res,
                    "migrating_from": e.prev,
                    "writes": e.write_res,
                    "reads": list(e.read_res),
                }
                for p, e in sorted(self.parents.items())
            },
        }


def _regions_at(parent: int, res: int) -> list[int]:
    if res == int(h3.get_resolution(parent)):
        return [parent]
    return [int(c) for c in h3.cell_to_children(parent, res)]


_RES15_HEADER = score_to_cell(0)


def _row_cells(rows: np.ndarray, res: int) -> list[int]:
    """The cell of each row of a step at `res`: its low score is the cell's first res-15
    descendant; set the resolution and fill the finer digits with 7s (as cell_to_parent)."""
    lo = rows[:, 0].astype(np.uint64) & np.uint64(SCORE_MASK)
    keep = np.uint64(~(0xF << 52) & (2**64 - 1))
    fill = np.uint64((res << 52) | ((1 << (3 * (15 - res))) - 1))
    return [int(c) for c in ((lo | np.uint64(_RES15_HEADER)) & keep) | fill]


class LayoutCache:
    """The current layout, its version checked at most every `refresh_s`; concurrent
    callers share one check."""

    def __init__(
        self,
        region_res: int,
        load_version: Callable[[], Awaitable[int]],
        load: Callable[[], Awaitable[Layout]],
        refresh_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.layout = Layout(region_res)
        self._load_version = load_version
        self._load = load
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._checked = -float("inf")
        self._pending: asyncio.Future[Layout] | None = None

    async def get(self) -> Layout:
        if self._monotonic() - self._checked < self._refresh_s:
            return self.layout
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._check())
            # Its callers may all be cancelled before it fails: the error is theirs, not
            # an unretrieved task's.
            self._pending.add_done_callback(lambda f: f.cancelled() or f.exception())
        pending = self._pending
        try:
            return await asyncio.shield(pending)
        finally:
            if pending.done() and self._pending is pending:
                self._pending = None

    async def _check(self) -> Layout:
        started = self._monotonic()
        if await self._load_version() != self.layout.version:
            self.layout = await self._load()
        # The layout is as new as the moment the check was sent, not when it returned.
        self._checked = started
        return self.layout


class SplitConflict(GeoIndexError):
    """The split list changed under a change, or a parent migrates to another resolution."""


@runtime_checkable
class RegionSplitting(Protocol):
    """What the backends offer besides GeoIndex: the split list, and changing it."""

    async def region_split(self) -> Layout: ...

    async def split_region(
        self, parent: str, res: int, settle_s: float | None = None
    ) -> Layout: ...


class SplitStore(Protocol):
    async def load(self) -> Layout: ...

    async def change(self, version: int, parent: int, entry: Entry | None) -> bool: ...


# Re-home the drivers still in the given (old) regions per the layout; returns how many.
Rehome = Callable[[list[int], Layout], Awaitable[int]]
MAX_REHOME_PASSES = 5


async def migrate(
    store: SplitStore,
    parent_hex: str,
    res: int,
    rehome: Rehome,
    settle_s: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Layout:
    """Bring `parent` to resolution `res` (region_res itself unsplits it), through the two
    phases above; resumes a migration to `res` left half done."""
    layout = await store.load()
    parent, res = layout.check_change(parent_hex, res)
    entry = layout.parents.get(parent)
    if entry is None or entry.prev is None:
        current = layout.region_res if entry is None else entry.res
        if current == res:
            return layout
        entry, old = Entry(res, current, writes_new=False), entry
        layout = await _replace(store, parent, old, entry)
        await sleep(settle_s)
    elif entry.res != res:
        raise SplitConflict(f"{parent_hex} is migrating to resolution {entry.res}; finish that")
    if not entry.writes_new:
        entry, old = Entry(res, entry.prev, writes_new=True), entry
        layout = await _replace(store, parent, old, entry)
        await sleep(settle_s)
    # No instance writes the old regions any more: move the drivers left in them. A pass
    # may race a driver's own fix (which moves it too); the next pass finds none.
    for _ in range(MAX_REHOME_PASSES):
        if not await rehome(layout.old_regions(parent), layout):
            break
    return await _replace(store, parent, entry, None if res == layout.region_res else Entry(res))


async def _replace(store: SplitStore, parent: int, old: Entry | None, new: Entry | None) -> Layout:
    """Swap one parent's entry (other parents may change meanwhile; this one may not)."""
    while True:
        layout = await store.load()
        if layout.parents.get(parent) != old:
            raise SplitConflict(f"{parent:x} was changed by another migration")
        if await store.change(layout.version, parent, new):
            return await store.load()


SPLIT_SET = Script("split_set")


class RedisSplitStore:
    """The list in one hash, `<prefix>:split`: field `ver` (bumped by every change) and
    one field per listed parent (hex) -> Entry.encode()."""

    def __init__(self, scripts: ScriptRunner, prefix: str, region_res: int) -> None:
        self._redis = scripts.client
        self._scripts = scripts
        self._key = f"{prefix}:split"
        self._region_res = region_res

    async def version(self) -> int:
        with translated():
            raw = await self._redis.hget(self._key, "ver")
        return int(raw or 0)

    async def load(self) -> Layout:
        with translated():
            raw = await self._redis.hgetall(self._key)
        fields = {_s(k): _s(v) for k, v in raw.items()}
        version = int(fields.pop("ver", 0))
        parents = {int(p, 16): Entry.decode(e) for p, e in fields.items()}
        return Layout(self._region_res, version, parents)

    async def change(self, version: int, parent: int, entry: Entry | None) -> bool:
        """Set (or with None drop) one parent's entry if the list is still at `version`."""
        value = "" if entry is None else entry.encode()
        (reply,) = await self._scripts.run(
            [(SPLIT_SET, [self._key], [version, f"{parent:x}", value])]
        )
        return bool(int(reply))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
