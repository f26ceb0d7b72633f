"""Batched matching's configuration and its store port: the pending requests of each
region and the lease on solving a region's window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from h3.api import basic_str as h3

from dispatch.domain.assignment import Objective
from dispatch.domain.geo import LatLng


@dataclass(frozen=True, slots=True)
class WindowConfig:
    window_ms: int = 2_000
    max_wait_ms: int = 10_000  # a ride still searching then ends no_driver (settings.py)
    candidates: int = 16  # drivers drawn per rider from the exact k-nearest index
    radius_m: float = 5_000.0
    lease_windows: int = 5  # the solving lease lives this many windows
    max_pending: int = 5_000  # riders of one region solved per window, oldest first
    objective: Objective = field(default_factory=Objective)

    def __post_init__(self) -> None:
        if self.window_ms <= 0 or self.max_wait_ms <= 0 or self.candidates < 1:
            raise ValueError("window, maximum wait and candidates must be positive")
        if self.lease_windows < 2:
            raise ValueError("the lease must outlive at least two windows")

    @property
    def lease_ms(self) -> int:
        return self.window_ms * self.lease_windows


@dataclass(frozen=True, slots=True)
class Pending:
    ride_id: str
    since_ms: int  # when it (re-)entered the queue


@dataclass(frozen=True, slots=True)
class Hold:
    """A driver a window chose for a ride, noted (under the window's lease fence) before
    the window reserves the driver and forgotten once the ride names it: what a window
    that died in between left reserved (see batching.free_stale_holds)."""

    ride_id: str
    driver_id: str
    fence: int


@dataclass(frozen=True, slots=True)
class Queued:
    entries: list[Pending]  # the region's oldest, oldest first
    holds: list[Hold]  # of windows not known to have settled


class PendingStore(Protocol):
    """Searching rides per region (on Redis Cluster: in the region's slot), so that any
    instance can take a request and the region's solver finds it."""

    async def add(self, region: int, ride_id: str, now_ms: int) -> None: ...

    async def pending(self, region: int, limit: int) -> Queued:
        """The region's oldest `limit` entries, and every hold noted."""
        ...

    async def hold(
        self, region: int, holder: str, fence: int, ttl_ms: int, chosen: Mapping[str, str]
    ) -> bool:
        """Renew the lease and note the `chosen` drivers (ride id -> driver id) as holds
        under `fence`, in one atomic step: False, noting nothing,
        unless the lease lives as `holder`'s at `fence`. Once another holder has taken
        the region, an older one can note no hold, so the holds its successor reads are
        all there are."""
        ...

    async def remove(self, region: int, ride_ids: Sequence[str], holds: Sequence[str] = ()) -> None:
        """Drop the queue entries of `ride_ids` and the holds of the rides `holds`."""
        ...

    async def regions(self, since_ms: int) -> list[int]:
        """Regions a request was added to since `since_ms`."""
        ...

    async def take_lease(
        self, region: int, holder: str, ttl_ms: int, resume: int = 0
    ) -> int | None:
        """Hold or renew the lease on solving the region's windows: its fencing token
        (the same while renewed, a larger one when taken over), or None while another
        holder's lease lives. `resume`: the fence this holder last held; a lapsed lease
        comes back with it when no one has taken the region since, so a round slower
        than the lease still commits."""
        ...

    async def drop_lease(self, region: int, holder: str, fence: int) -> None: ...


@runtime_checkable
class WindowObserver(Protocol):
    """An Observer that also watches solved windows (the metrics do)."""

    def window_solved(self, stats: WindowStats) -> None: ...


@dataclass(slots=True)
class WindowStats:
    region: int = 0
    pending: int = 0  # searching rides in the window
    candidates: int = 0  # (rider, driver) pairs offered to the solver
    matched: int = 0  # offered a driver
    refused: int = 0  # pairs whose reservation the driver's record refused
    carried: int = 0  # left for the next window
    gave_up: int = 0  # ended no_driver after the maximum wait
    freed: int = 0  # drivers an earlier window reserved and never named, freed
    widened: int = 0  # riders whose candidates all went to others, drawn again wider
    solve_s: float = 0.0  # the assignment's own time
    took_s: float = 0.0  # wall time from reading the queue to the last offer out


@dataclass(frozen=True, slots=True)
class Batching:
    config: WindowConfig
    store: PendingStore
    region_res: int

    def region_of(self, at: LatLng) -> int:
        """The geo index's region of a pickup: the pending request's partition."""
        return int(h3.str_to_int(h3.latlng_to_cell(at.lat, at.lng, self.region_res)))
