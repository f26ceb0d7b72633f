"""What the ops map shows: the drivers in the watched area, each with a status and the
products it serves, and the rides in flight.

Positions come from the geo index (a bounded area read); whether a driver is reserved or
on a ride comes from the rides in flight, which each instance learns from the ride
notices every instance publishes on the ops topic, heard only while an ops page watches
there. That view is per instance and starts empty: a ride that has not changed since the
instance started hearing is not in it until it does (the stored rides stay the truth,
readable over HTTP)."""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dispatch.domain.rides import COMMITTED, TERMINAL, Ride, RideStatus
from dispatch.service_layer.deps import Deps

OPS_TOPIC = "ops"  # every ride change, for the instances where an ops page watches
# Notices are at most once: a ride whose final notice was lost would stay on the map for
# ever, so one unchanged this long leaves it (far longer than any offer or trip).
RIDE_SILENCE_MS = 2 * 3_600_000
STATS_WINDOW_MS = 5 * 60_000  # the side panel's figures cover this much


class MapStatus(enum.StrEnum):
    """A driver as the map colours it (the order is the wire's status code)."""

    AVAILABLE = "available"
    RESERVED = "reserved"  # holds an offer
    ON_RIDE = "on_ride"
    OFFLINE = "offline"  # fresh position, but not searchable (went offline)


STATUS_CODE = {status: code for code, status in enumerate(MapStatus)}


@dataclass(frozen=True, slots=True)
class Area:
    lat: float
    lng: float
    radius_m: float


@dataclass(frozen=True, slots=True)
class MapDriver:
    id: str
    lat: float
    lng: float
    status: MapStatus
    products: int = 0  # what it serves, as ProductBits numbers them


@dataclass(frozen=True, slots=True)
class Drivers:
    """The drivers of one look as columns (positions in degrees, statuses as their
    STATUS_CODE, products as ProductBits masks): the feed compares 10,000 of them a second
    with the last look in numpy, not one object at a time."""

    ids: list[str]
    lat: npt.NDArray[np.float64]
    lng: npt.NDArray[np.float64]
    status: npt.NDArray[np.int8]
    products: npt.NDArray[np.int32]

    @classmethod
    def of(cls, drivers: Sequence[MapDriver]) -> Drivers:
        return cls(
            [d.id for d in drivers],
            np.array([d.lat for d in drivers], np.float64),
            np.array([d.lng for d in drivers], np.float64),
            np.array([STATUS_CODE[d.status] for d in drivers], np.int8),
            np.array([d.products for d in drivers], np.int32),
        )

    def __len__(self) -> int:
        return len(self.ids)


class ProductBits:
    """The products a driver serves as one integer, bit i for the catalog's i-th product
    (at most 16 of them), so a page can filter 10,000 drivers by product from a column of
    small numbers. A product outside the catalog has no bit."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        self._bit = {name: 1 << i for i, name in enumerate(self.names)}
        self._masks: dict[tuple[str, ...], int] = {}  # few distinct sets in a fleet

    def mask(self, served: tuple[str, ...]) -> int:
        if (known := self._masks.get(served)) is None:
            known = self._masks[served] = sum(self._bit.get(p, 0) for p in served)
        return known

    def masks(self, served: Sequence[tuple[str, ...]]) -> npt.NDArray[np.int32]:
        return np.fromiter(map(self.mask, served), np.int32, len(served))


@dataclass(frozen=True, slots=True)
class RideFigures:
    """The last STATS_WINDOW_MS of ride requests; None where there is nothing to say."""

    requests_per_min: float
    match_rate: float | None  # accepted, of the requests whose first round is over
    p95_eta_s: int | None  # pickup ETA of the accepted ones


@dataclass(frozen=True, slots=True)
class World:
    drivers: Drivers
    rides: list[Ride]
    figures: RideFigures = field(default_factory=lambda: RideFigures(0.0, None, None))
    figures_by_product: dict[str, RideFigures] = field(default_factory=dict)


class RideStats:
    """Requests, matches and pickup ETAs over a sliding window, of every product or of
    one, from the same notices as the rides in flight (so also per instance, and starting
    empty)."""

    def __init__(self, window_ms: int = STATS_WINDOW_MS) -> None:
        self._window_ms = window_ms
        self._requested: dict[str, int] = {}  # ride id -> created_at
        self._product: dict[str, str | None] = {}  # ride id -> what its rider asked for
        self._matched: dict[str, bool] = {}  # ride id -> accepted, once its round is over
        self._etas: dict[str, tuple[int, int]] = {}  # ride id -> (created_at, eta_s)

    def apply(self, ride: Ride) -> None:
        self._requested.setdefault(ride.id, ride.created_at)
        self._product.setdefault(ride.id, ride.product)
        if ride.id in self._matched:
            return
        if ride.status in COMMITTED:
            self._matched[ride.id] = True
            if ride.eta_s is not None:
                self._etas[ride.id] = (ride.created_at, ride.eta_s)
        elif ride.status in (RideStatus.NO_DRIVER, RideStatus.CANCELLED):
            self._matched[ride.id] = False

    def _forget_old(self, now_ms: int) -> None:
        cutoff = now_ms - self._window_ms
        for ride_id in [i for i, at in self._requested.items() if at < cutoff]:
            del self._requested[ride_id]
            del self._product[ride_id]
            self._matched.pop(ride_id, None)
            self._etas.pop(ride_id, None)

    def figures(self, now_ms: int, product: str | None = None) -> RideFigures:
        """Of the rides asking for `product`, or of every ride for None."""
        self._forget_old(now_ms)
        if product is None:
            requested, matched, eta_of = self._requested, self._matched, self._etas
        else:
            requested = {i: at for i, at in self._requested.items() if self._product[i] == product}
            matched = {i: m for i, m in self._matched.items() if i in requested}
            eta_of = {i: e for i, e in self._etas.items() if i in requested}
        decided = list(matched.values())
        etas = sorted(eta for _, eta in eta_of.values())
        return RideFigures(
            round(len(requested) * 60_000 / self._window_ms, 1),
            round(sum(decided) / len(decided), 3) if decided else None,
            etas[math.ceil(0.95 * len(etas)) - 1] if etas else None,
        )


class RidesInFlight:
    """The rides between offered and completed, newest version of each; bounded."""

    def __init__(self, limit: int = 20_000, ended_memory: int = 20_000) -> None:
        self._rides: dict[str, Ride] = {}
        # Versions of rides seen ending, so a change delivered late cannot bring one back.
        self._ended: OrderedDict[str, int] = OrderedDict()
        self._limit = limit
        self._ended_memory = ended_memory

    def apply(self, ride: Ride) -> None:
        known = self._rides.get(ride.id)
        seen = known.version if known is not None else self._ended.get(ride.id, 0)
        if ride.version <= seen:
            return
        if ride.status in TERMINAL:
            self._rides.pop(ride.id, None)
            self._ended[ride.id] = ride.version
            while len(self._ended) > self._ended_memory:
                self._ended.popitem(last=False)
            return
        if known is None and len(self._rides) >= self._limit:
            return  # a map, not a ledger: past the bound new rides are not drawn
        self._rides[ride.id] = ride

    def rides(self) -> list[Ride]:
        return list(self._rides.values())

    def forget_silent(self, now_ms: int) -> None:
        cutoff = now_ms - RIDE_SILENCE_MS
        for ride_id in [r.id for r in self._rides.values() if r.updated_at < cutoff]:
            del self._rides[ride_id]

    def driver_statuses(self) -> dict[str, MapStatus]:
        statuses: dict[str, MapStatus] = {}
        for ride in self._rides.values():
            if ride.driver_id is None:
                continue
            if ride.status is RideStatus.OFFERED:
                statuses.setdefault(ride.driver_id, MapStatus.RESERVED)
            elif ride.status in COMMITTED:
                statuses[ride.driver_id] = MapStatus.ON_RIDE
        return statuses


async def look(
    deps: Deps,
    area: Area,
    limit: int,
    rides: RidesInFlight,
    bits: ProductBits,
) -> World:
    """One look at the area: at most `limit` fresh drivers (nearest first) and the rides."""
    columns = await deps.index.within_columns(area.lat, area.lng, area.radius_m, limit)
    ids, available = columns.ids, columns.available
    # The index knows for sure who is free (a reservation takes a driver out of search,
    # its release puts it back); the rides say why the others are not.
    status = np.where(available, STATUS_CODE[MapStatus.AVAILABLE], _OFFLINE).astype(np.int8)
    if busy := rides.driver_statuses():
        for i in np.flatnonzero(~available).tolist():
            if (why := busy.get(ids[i])) is not None:
                status[i] = STATUS_CODE[why]
    drivers = Drivers(ids, columns.lat, columns.lng, status, bits.masks(columns.products))
    return World(drivers, rides.rides())


_OFFLINE = STATUS_CODE[MapStatus.OFFLINE]
