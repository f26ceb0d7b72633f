"""Areas operators draw on the map: where the service runs, where pickups are forbidden,
and airports whose drivers wait in a queue. Plain values here; their geometry (checks,
the antimeridian, the cell index) is in dispatch.service_layer.area_shapes/area_index."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from dispatch.domain.errors import DomainError
from dispatch.domain.fares import FareTable
from dispatch.domain.geo import LatLng

MAX_VERTICES = 2_000  # per area, every ring of every polygon counted
MAX_AREAS = 5_000  # in one backend
MAX_NAME_CHARS = 100
MAX_ABS_LAT = 85.0  # no area beyond: nobody hails a ride there, and cells get huge
MAX_SPAN_DEG = 10.0  # an area spans at most this much latitude and longitude
DEFAULT_DWELL_S = 60.0
MAX_DWELL_S = 3_600.0

# (lng, lat), the GeoJSON order
Position = tuple[float, float]
Ring = tuple[Position, ...]
Polygon = tuple[Ring, ...]  # the outer ring, then its holes


class AreaKind(enum.StrEnum):
    SERVICE_AREA = "service_area"  # rides start and end inside one (once any exists)
    NO_PICKUP = "no_pickup"  # no ride starts inside
    AIRPORT = "airport"  # drivers inside wait in a first-in-first-out queue


@dataclass(frozen=True, slots=True)
class Area:
    id: str
    kind: AreaKind
    name: str
    polygons: tuple[Polygon, ...]
    # Airports: a driver out of the area and back within this keeps its place in the
    # queue (GPS jitter at the edge); other kinds: the same for geofence exit events.
    dwell_s: float = DEFAULT_DWELL_S
    updated_at: int = 0  # ms
    fare: FareTable | None = None  # service areas: quotes with a pickup inside use it

    @property
    def vertex_count(self) -> int:
        return sum(len(ring) for polygon in self.polygons for ring in polygon)


class InvalidArea(DomainError):
    """An area that cannot be stored: the message says which ring and why."""

    code = "invalid_area"


class OutsideServiceArea(DomainError):
    code = "outside_service_area"

    def __init__(self, which: str) -> None:
        super().__init__(f"the {which} is outside every service area")
        self.which = which  # "pickup" or "dropoff"


class PickupNotAllowed(DomainError):
    code = "pickup_not_allowed"

    def __init__(self, area_id: str, name: str, nearest: LatLng | None) -> None:
        super().__init__(f"no pickups inside {name!r} ({area_id})")
        self.area_id = area_id
        self.nearest = nearest  # an allowed point just outside the area, if one was found


def check_ring(ring: Ring, where: str) -> None:
    """A ring as GeoJSON requires it: closed, at least 4 positions, finite coordinates
    within range. Winding is not checked: either way round is accepted (documented)."""
    if len(ring) < 4:
        raise InvalidArea(f"{where}: a ring needs at least 4 positions, got {len(ring)}")
    if ring[0] != ring[-1]:
        raise InvalidArea(
            f"{where}: the ring is not closed (the last position must repeat the first)"
        )
    for i, (lng, lat) in enumerate(ring):
        if not (math.isfinite(lng) and math.isfinite(lat)):
            raise InvalidArea(f"{where}, position {i}: coordinates must be finite")
        if not -180.0 <= lng <= 180.0:
            raise InvalidArea(f"{where}, position {i}: longitude {lng} is not in [-180, 180]")
        if not -MAX_ABS_LAT <= lat <= MAX_ABS_LAT:
            raise InvalidArea(
                f"{where}, position {i}: latitude {lat} is not in "
                f"[-{MAX_ABS_LAT:g}, {MAX_ABS_LAT:g}]"
            )
    if len(set(ring)) < 3:
        raise InvalidArea(f"{where}: a ring needs at least 3 distinct positions")


def check_area(area: Area) -> None:
    """Everything about an area that needs no geometry library; the rest (self-
    intersections, holes outside their polygon) is checked where it is built."""
    if not area.name.strip() or len(area.name) > MAX_NAME_CHARS:
        raise InvalidArea(f"name must be 1-{MAX_NAME_CHARS} characters, not only spaces")
    if not area.polygons:
        raise InvalidArea("an area needs at least one polygon")
    if area.vertex_count > MAX_VERTICES:
        raise InvalidArea(f"at most {MAX_VERTICES} positions per area, got {area.vertex_count}")
    if not 0 <= area.dwell_s <= MAX_DWELL_S:
        raise InvalidArea(f"dwell_s must be from 0 to {MAX_DWELL_S:g}")
    if area.fare is not None and area.kind is not AreaKind.SERVICE_AREA:
        raise InvalidArea("only a service_area has a fare")
    for p, polygon in enumerate(area.polygons):
        if not polygon:
            raise InvalidArea(f"polygon {p}: no rings")
        for r, ring in enumerate(polygon):
            check_ring(ring, f"polygon {p}, ring {r}")


class Crossing(enum.StrEnum):
    ENTER = "enter"
    EXIT = "exit"  # only once out longer than the area's dwell_s


@dataclass(frozen=True, slots=True)
class AreaEvent:
    """A driver crossed an area's boundary (geofence)."""

    event: Crossing
    area_id: str
    driver_id: str
    ts: int  # ms


@dataclass(frozen=True, slots=True)
class QueueChange:
    """An airport queue's order after a change, head first."""

    area_id: str
    drivers: tuple[str, ...]
    ts: int  # ms


# A driver's presence: area id -> (out since (ms) or None while inside, the dwell in ms).
Presence = dict[str, tuple[int | None, int]]


def presence_step(
    state: Presence, holding: dict[str, int], now_ms: int
) -> tuple[Presence, list[tuple[Crossing, str]]]:
    """After a fix held by `holding` (area id -> dwell ms): enter at once, exit once out
    for the dwell; back inside within it, nothing happened. The Redis store's Lua script
    (area_presence.lua) applies the same rule."""
    new: Presence = {}
    crossings: list[tuple[Crossing, str]] = []
    for area_id, dwell in holding.items():
        if area_id not in state:
            crossings.append((Crossing.ENTER, area_id))
        new[area_id] = (None, dwell)
    for area_id, (since, dwell) in state.items():
        if area_id in holding:
            continue
        out_since = now_ms if since is None else since
        if now_ms - out_since >= dwell:
            crossings.append((Crossing.EXIT, area_id))
        else:
            new[area_id] = (out_since, dwell)
    return new, crossings
