"""The GeoIndex port: what every backend (embedded, Redis, Redis Cluster) promises."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from geoindex.columns import Columns
from geoindex.model import DriverState, Neighbor, Position, UpsertResult
from geoindex.supply import CellIds


@runtime_checkable
class GeoIndex(Protocol):
    """Exact k-nearest index of driver positions.

    Every method validates its input first and raises a subclass of InvalidInput without
    writing anything. Drivers not seen for `ttl_ms` (by their last accepted fix time) are
    never returned, whether or not `expire` has run.

    Availability outlives positions: set before a driver's first fix, or kept when the
    sweep drops a silent driver's position, it applies to the driver's next fixes (the
    Redis backend remembers it for a day). A driver the index has never heard of starts
    available, or unavailable if the backend was built with new_drivers_available=False.

    Products work the same way: a driver serves the products last set for it (kept like
    its availability), or the backend's `default_products` if none were ever set. A
    search for a product sees only the drivers serving it; a search without one, all.
    """

    ttl_ms: int

    async def upsert(self, positions: Sequence[Position]) -> list[UpsertResult]:
        """Store a batch of fixes; per item ACCEPTED, or STALE when its seq is not above the
        stored one or its ts_ms is not above the stored one (then nothing changes for it)."""
        ...

    async def upsert_valid(self, positions: Sequence[Position]) -> list[UpsertResult]:
        """upsert of positions the caller has already checked, not checked again: each as
        limits.check_position returns it (an id of the driver-id alphabet, finite float
        lat and lng in range, ts_ms and seq integers in [0, 2**53)), at most MAX_BATCH.
        For callers that validated them at their own edge (the service decodes fixes
        into its contract's types): one validation a fix instead of two."""
        ...

    async def remove(self, driver_ids: Sequence[str]) -> int:
        """Forget drivers entirely, availability included; returns how many had a position."""
        ...

    async def set_available(self, driver_id: str, available: bool) -> bool:
        """Include or exclude a driver from search. False if the driver has no position
        yet (or any more): then the availability waits for its next fix."""
        ...

    async def set_available_many(self, driver_ids: Sequence[str], available: bool) -> int:
        """set_available for each driver, in a few round trips whatever their number;
        how many had a position."""
        ...

    async def set_products(self, driver_id: str, products: Sequence[str]) -> bool:
        """Replace the products a driver serves (at most MAX_PRODUCTS names); in one atomic
        step per region, so no search sees it under a product it no longer serves. False
        if the driver has no position: then the products wait for its next fix."""
        ...

    async def get(self, driver_id: str) -> DriverState | None: ...

    async def nearest(
        self, lat: float, lng: float, k: int, radius_m: float, product: str | None = None
    ) -> list[Neighbor]:
        """The k nearest available, fresh drivers within radius_m, by distance then id;
        with `product`, only drivers serving it (the cost still follows k)."""
        ...

    async def nearest_many(
        self,
        points: Sequence[tuple[float, float]],
        k: int,
        radius_m: float,
        product: str | None = None,
    ) -> list[list[Neighbor]]:
        """nearest() of each (lat, lng), the searches side by side: on Redis each round
        of their scans is one pipeline, so the round trips follow the deepest search,
        not the number of points. Every point is checked before any is searched."""
        ...

    async def supply(
        self, lat: float, lng: float, radius_m: float, resolution: int
    ) -> dict[str, int]:
        """Available fresh drivers per H3 cell (hex string) of `resolution` for the cells
        whose centre lies within radius_m; cells with no drivers are left out."""
        ...

    async def supply_in(self, cells: Sequence[str], product: str | None = None) -> dict[str, int]:
        """Available fresh drivers in each named H3 cell (hex ids, from the region's
        resolution to 15; at most 5000 per call); cells with no drivers are left out.
        With `product`, only drivers serving it (read from its own sets)."""
        ...

    async def supply_table(
        self, cells: Sequence[str] | CellIds, products: Sequence[str]
    ) -> npt.NDArray[np.int64]:
        """supply_in(cells, p) of every product at once: a row per product and a column
        per cell, in the order given (0 where a cell has none). One read of every
        product's sets, in one script call per region on Redis: a caller pricing each
        product (the market's surge) names and checks the cells once. The cells may be
        hex ids or a uint64 numpy array of H3 ids (checked as numpy passes, no Python
        per cell: a caller that keeps its cells as ids, as the recompute does)."""
        ...

    async def within(
        self, lat: float, lng: float, radius_m: float, limit: int
    ) -> list[DriverState]:
        """Every fresh driver within radius_m, available or not, nearest first (ties by
        id), at most `limit` (1 to MAX_WITHIN); seq is None (a bulk read leaves it out).
        For maps and operators: its cost grows with the drivers in the area."""
        ...

    async def within_columns(self, lat: float, lng: float, radius_m: float, limit: int) -> Columns:
        """The same drivers as `within`, in the same order, with the same values and
        bounds, as numpy columns (ids, lat, lng, ts_ms, available, products): no object
        per driver, and distances and order computed in bulk. For reads of thousands of
        drivers a second (the ops map); its cost still grows with the drivers in the area."""
        ...

    async def expire(self, cutoff_ms: int) -> list[str]:
        """Drop the position of every driver whose last fix is older than cutoff_ms (its
        availability stays, see above); returns their ids."""
        ...

    async def close(self) -> None: ...
