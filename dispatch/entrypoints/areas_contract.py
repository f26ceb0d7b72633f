"""The areas' part of the HTTP contract: an area is a GeoJSON Feature (RFC 7946) whose
geometry is a Polygon or MultiPolygon in [longitude, latitude] positions, declared as
msgspec Structs like the rest of contract.py."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from dispatch.domain.areas import MAX_DWELL_S, MAX_NAME_CHARS, MAX_VERTICES
from dispatch.domain.fares import MAX_AMOUNT
from dispatch.entrypoints.contract import Latitude, LatLng, Longitude, Shape
from geoindex import DRIVER_ID_PATTERN

# Area ids share the driver ids' alphabet: they end up in Redis keys and URLs.
AreaId = Annotated[str, Meta(pattern=f"^{DRIVER_ID_PATTERN.pattern}$")]
# [longitude, latitude]; a third number (altitude) is refused.
GeoPosition = tuple[Longitude, Latitude]
GeoRing = Annotated[list[GeoPosition], Meta(min_length=4, max_length=MAX_VERTICES)]
GeoPolygon = Annotated[list[GeoRing], Meta(min_length=1, max_length=100)]
Kind = Literal["service_area", "no_pickup", "airport"]


class PolygonGeometry(Shape, tag_field="type", tag="Polygon"):
    coordinates: GeoPolygon


class MultiPolygonGeometry(Shape, tag_field="type", tag="MultiPolygon"):
    coordinates: Annotated[list[GeoPolygon], Meta(min_length=1, max_length=100)]


FareAmount = Annotated[float, Meta(ge=0, le=MAX_AMOUNT)]


class AreaFare(Shape):
    """A service area's fare table: quotes with a pickup inside use it (the same rules as
    the default table's settings)."""

    currency: Annotated[str, Meta(pattern="^[A-Z]{3}$")]
    base: FareAmount
    per_km: FareAmount
    per_min: FareAmount
    minimum: FareAmount


class AreaProperties(Shape):
    kind: Kind
    name: Annotated[str, Meta(min_length=1, max_length=MAX_NAME_CHARS)]
    # Airports: out and back within this keeps a driver's place in the queue; every kind:
    # an exit is an event only once the driver has been out this long.
    dwell_s: Annotated[float, Meta(ge=0, le=MAX_DWELL_S)] | UnsetType = UNSET
    fare: AreaFare | UnsetType = UNSET  # service_area only


class AreaFeature(Shape):
    """PUT /v1/areas/{area_id}'s body. A Feature's own `id`, if given, must be the path's."""

    type: Literal["Feature"]
    geometry: PolygonGeometry | MultiPolygonGeometry
    properties: AreaProperties
    id: AreaId | UnsetType = UNSET


# -- answers -------------------------------------------------------------------------------
class StoredProperties(Shape):
    kind: Kind
    name: str
    dwell_s: float
    updated_at: int  # ms
    res: int  # the H3 resolution it is compiled at
    inside_cells: int  # compacted cells answered at once
    edge_cells: int  # cells answered by the exact test
    fare: AreaFare | UnsetType = UNSET  # left out when the area has none


class StoredArea(Shape):
    type: Literal["Feature"]
    id: str
    geometry: PolygonGeometry | MultiPolygonGeometry
    properties: StoredProperties


class AreaList(Shape):
    version: int  # changes with every change to any area
    areas: list[StoredArea]


class PickupRefused(Struct, kw_only=True):
    """422 pickup_not_allowed: the error, the area and an allowed pickup just outside
    it (null if none was found within 100 m of its boundary)."""

    error: str
    message: str
    area_id: str
    nearest_allowed: LatLng | None


class QueuedDriver(Shape):
    driver_id: str
    position: int  # 1: the head
    offered_ride: str | None  # the ride offered to it out of the queue, if one is


class AirportQueue(Shape):
    area_id: str
    drivers: list[QueuedDriver]


class AreaEventFrame(Shape):
    """On the driver's WebSocket and the ops stream: a driver entered or left an area."""

    type: Literal["area"]
    event: Literal["enter", "exit"]
    area_id: str
    driver_id: str
    ts: int


class QueuePlaceFrame(Shape):
    """On the driver's WebSocket: its place in an airport queue changed (null: out)."""

    type: Literal["queue"]
    area_id: str
    driver_id: str
    position: int | None
    length: int
    ts: int


class QueueOrderEvent(Shape):
    """On the ops stream: an airport queue's order after a change, head first."""

    type: Literal["queue"]
    area_id: str
    drivers: list[str]
    ts: int
