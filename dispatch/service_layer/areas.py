"""Areas for the rest of the service: every instance's compiled copy of the stored areas
(AreaBook), kept fresh by polling one version number, and the use cases operators call
(ops tokens only)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from dispatch.domain.areas import MAX_AREAS, Area, AreaKind
from dispatch.domain.principals import Principal, Role
from dispatch.service_layer.area_index import AreaIndex, CompiledArea, compile_area
from dispatch.service_layer.errors import Forbidden, InvalidRequest, NotFound
from geoindex import Neighbor


class AreaStore(Protocol):
    """Every area, and a version that changes with every change to any of them."""

    async def put(self, area: Area, max_areas: int) -> int | None:
        """The new version; None (nothing stored) if the area is new and max_areas are
        stored already."""
        ...

    async def delete(self, area_id: str) -> int | None:
        """The new version; None if there was no such area."""
        ...

    async def version(self) -> int: ...

    async def load(self) -> tuple[int, list[Area]]: ...


@dataclass(frozen=True, slots=True)
class Zone:
    """The service areas holding a pickup: a driver is offered its ride only if one of
    them holds the driver too. `open`: no service area is defined, everyone is in."""

    ids: frozenset[str]
    open: bool


class AreaBook:
    """This instance's compiled areas. Reads never wait: they see the last refresh."""

    def __init__(self, store: AreaStore) -> None:
        self.store = store
        self.index = AreaIndex.build(())
        self.version = -1  # nothing loaded yet
        self._compiled: dict[str, CompiledArea] = {}
        self._lock = asyncio.Lock()

    async def refresh(self) -> bool:
        """Load and compile the stored areas if their version moved; True if it did.
        Areas unchanged since the last load keep their compiled form."""
        async with self._lock:
            if await self.store.version() == self.version:
                return False
            version, areas = await self.store.load()
            known = self._compiled
            fresh = [a for a in areas if a.id not in known or known[a.id].area != a]
            compiled = {a.id: known[a.id] for a in areas if a.id in known and known[a.id].area == a}

            def build() -> AreaIndex:
                compiled.update((c.area.id, c) for c in map(compile_area, fresh))
                return AreaIndex.build(compiled[k] for k in sorted(compiled))

            # Compiling is CPU work: off the event loop, so requests keep flowing.
            index = await asyncio.to_thread(build)
            self._compiled, self.index = compiled, index
            self.version = version
            return True

    def get(self, area_id: str) -> CompiledArea | None:
        return self._compiled.get(area_id)

    def all(self) -> list[CompiledArea]:
        return [self._compiled[k] for k in sorted(self._compiled)]

    def has(self, kind: AreaKind) -> bool:
        return any(c.area.kind is kind for c in self._compiled.values())

    def holding(self, lat: float, lng: float) -> Sequence[CompiledArea]:
        return self.index.holding(lat, lng)

    def zone(self, lat: float, lng: float) -> Zone:
        if not self.has(AreaKind.SERVICE_AREA):
            return Zone(frozenset(), True)
        ids = frozenset(
            c.area.id for c in self.holding(lat, lng) if c.area.kind is AreaKind.SERVICE_AREA
        )
        return Zone(ids, False)

    def admits(self, zone: Zone, lat: float, lng: float) -> bool:
        if zone.open:
            return True
        return any(c.area.id in zone.ids for c in self.holding(lat, lng))


def in_zone(
    book: AreaBook, zone: Zone, found: Sequence[Neighbor], passed: set[str]
) -> Iterator[Neighbor]:
    """The hits a pickup in `zone` may be offered to; the others go into `passed`, so a
    wider search looks past them and never tries them."""
    for n in found:
        if book.admits(zone, n.lat, n.lng):
            yield n
        else:
            passed.add(n.driver_id)


async def run_refresher(book: AreaBook, interval_s: float) -> None:
    """Keep the book fresh: one version read per interval; a failure waits for the next."""
    task = asyncio.current_task()
    while True:
        try:
            await book.refresh()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the backend is down or an area is broken: retry
            pass
        # redis-py can swallow a cancel that lands in a read: stop all the same.
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        await asyncio.sleep(interval_s)


# -- use cases (ops tokens) -----------------------------------------------------------------
def _ops_only(actor: Principal) -> None:
    if actor.role is not Role.OPS:
        raise Forbidden("areas are managed by ops tokens")


async def put_area(book: AreaBook, actor: Principal, area: Area, now_ms: int) -> CompiledArea:
    """Store (or replace) an area; InvalidArea (422) names what is wrong with it."""
    _ops_only(actor)
    area = replace(area, updated_at=now_ms)
    compiled = await asyncio.to_thread(compile_area, area)  # validates, off the loop
    if await book.store.put(area, MAX_AREAS) is None:
        raise InvalidRequest(f"at most {MAX_AREAS} areas; delete one first")
    await book.refresh()
    return book.get(area.id) or compiled


async def delete_area(book: AreaBook, actor: Principal, area_id: str) -> None:
    _ops_only(actor)
    if await book.store.delete(area_id) is None:
        raise NotFound(f"no area {area_id}")
    await book.refresh()


async def get_area(book: AreaBook, actor: Principal, area_id: str) -> CompiledArea:
    _ops_only(actor)
    await book.refresh()  # read-your-writes across instances: one version read
    found = book.get(area_id)
    if found is None:
        raise NotFound(f"no area {area_id}")
    return found


async def list_areas(book: AreaBook, actor: Principal) -> Iterable[CompiledArea]:
    _ops_only(actor)
    await book.refresh()
    return book.all()
