"""The HTTP and WebSocket contract, declared once: every request body, query, client
frame and answer as a msgspec Struct. Validation decodes into these (schemas.py) and
/openapi.json is generated from them (openapi.py), so the two cannot drift.

Request shapes refuse unknown fields (nobody can slip in `status` or `driver_id`), and
msgspec refuses NaN/Infinity and does not take a bool for a number."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from dispatch.domain.drivers import DriverStatus
from dispatch.domain.rides import RideStatus
from geoindex import DRIVER_ID_PATTERN, MAX_K
from geoindex.limits import PRODUCT_PATTERN

# Sequence numbers and times pass through Lua, whose numbers are doubles.
MAX_INT = 2**53 - 1
NEARBY_MAX_K = min(MAX_K, 50)
NEARBY_MAX_RADIUS_M = 10_000.0

Latitude = Annotated[float, Meta(ge=-90, le=90)]
Longitude = Annotated[float, Meta(ge=-180, le=180)]
Millis = Annotated[int, Meta(ge=0, le=MAX_INT, description="ms since the epoch")]
Seq = Annotated[int, Meta(ge=0, le=MAX_INT, description="increases with every fix")]
DriverId = Annotated[str, Meta(pattern=f"^{DRIVER_ID_PATTERN.pattern}$")]
# Minted plain (32 hex digits), or with five more that put it in its rider's slot.
RideId = Annotated[str, Meta(pattern="^r_[0-9a-f]{32}([0-9a-f]{5})?$")]
IdempotencyKey = Annotated[str, Meta(pattern="^[\\x21-\\x7e]{1,128}$")]  # printable, no space
# A WebSocket client's own name for a frame, echoed in the reply to it.
FrameId = Annotated[str, Meta(max_length=64)]
# One of GET /v1/products' names (the configured catalog decides which exist).
ProductName = Annotated[str, Meta(pattern=f"^{PRODUCT_PATTERN.pattern}$")]


class Shape(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Every object of the contract: exactly its fields (additionalProperties: false).
    kw_only is not inherited: a subclass adding required fields after optional ones
    states it again."""


# -- requests ------------------------------------------------------------------------------
class LatLng(Shape):
    lat: Latitude
    lng: Longitude


class Location(Shape):
    """A position fix. heading, speed and accuracy are checked, then not stored."""

    lat: Latitude
    lng: Longitude
    ts: Millis
    seq: Seq
    heading: Annotated[float, Meta(ge=0, le=360)] | UnsetType = UNSET
    speed: Annotated[float, Meta(ge=0, le=150, description="m/s")] | UnsetType = UNSET
    accuracy: Annotated[float, Meta(ge=0, le=100_000, description="m")] | UnsetType = UNSET


class BatchItem(Location, kw_only=True):
    driver_id: DriverId


class LocationBatch(Shape):
    # Each item is checked on its own: one that is not a BatchItem is answered "invalid"
    # and the others go on, so any JSON value is a valid item here.
    updates: list[msgspec.Raw]


class Vehicle(Shape):
    """A driver's car: it serves `products`, each of which it must fit (seats, flags)."""

    seats: Annotated[int, Meta(ge=1, le=20)]
    products: Annotated[list[ProductName], Meta(min_length=1, max_length=16)]
    flags: Annotated[list[ProductName], Meta(max_length=16)] = []  # e.g. "accessible"


class StatusChange(Shape):
    status: Literal["available", "offline"]
    vehicle: Vehicle | None = None  # given: from now on the driver serves its products


class RideRequest(Shape):
    pickup: LatLng
    dropoff: LatLng | None = None
    # A fare quote (POST /v1/quotes) whose multiplier the ride keeps.
    quote_id: Annotated[str, Meta(pattern="^q_[0-9a-f]{32}$")] | None = None
    product: ProductName | None = None  # default: the configured default product


class NoFields(Shape):
    """The body of a ride step: nothing, or `{}`."""


class NearbyQuery(Shape):
    """GET /v1/nearby's query string (plain decimal numbers only)."""

    lat: Latitude
    lng: Longitude
    k: Annotated[int, Meta(ge=1, le=NEARBY_MAX_K)] = 10
    radius_m: Annotated[float, Meta(ge=0, le=NEARBY_MAX_RADIUS_M)] = 2000.0


# -- answers -------------------------------------------------------------------------------
class Error(Shape):
    error: str
    message: str
    # A JSON pointer (RFC 6901) to the one field at fault, when there is one.
    field: str | UnsetType = UNSET
    # The request's X-Request-Id, as in the response header and the service's logs.
    request_id: str | UnsetType = UNSET


class StaleFix(Shape):
    """409 stale: the fix the driver has stored, to resync from without another call."""

    error: Literal["stale"]
    message: str
    seq: int | None
    ts: int | None
    request_id: str | UnsetType = UNSET  # the request's X-Request-Id


class Accepted(Shape):
    status: Literal["accepted"]
    seq: Seq


class BatchResult(Shape):
    driver_id: str | None
    status: Literal["accepted", "stale", "invalid"]
    error: str | UnsetType = UNSET


class BatchResults(Shape):
    results: list[BatchResult]


class Driver(Shape):
    id: str
    status: DriverStatus
    lat: float | None
    lng: float | None
    ts: int | None
    seq: int | None
    ride_id: str | None
    products: list[str] | None = None  # what the driver serves; null without a position


class Ride(Shape):
    id: str
    status: RideStatus
    rider_id: str
    driver_id: str | None
    pickup: LatLng
    dropoff: LatLng | None
    pickup_distance_m: float | None
    eta_s: int | None
    offer_expires_at: int | None
    created_at: int
    updated_at: int
    surge: float | None = None  # the multiplier a quote locked in (POST /v1/quotes)
    product: str | None = None  # what the rider asked for


class Car(Shape):
    lat: float
    lng: float
    distance_m: float


class Nearby(Shape):
    cars: list[Car]


class Health(Shape):
    status: Literal["ok"]


class Ready(Shape):
    status: Literal["ready"]
    backend: str


class Event(Shape):
    """One server-sent event, as OpenAPI 3.2 describes event streams: data is a Ride."""

    data: str
    event: str | UnsetType = UNSET
    id: str | UnsetType = UNSET


# -- driver WebSocket frames (docs/api.md) -------------------------------------------------
class ClientFrame(Shape, tag_field="type"):
    id: FrameId | UnsetType = UNSET


class LocationFrame(Location, tag_field="type", tag="location", kw_only=True):
    # A Location with the frame's id (Structs take one base with fields only).
    id: FrameId | UnsetType = UNSET


# Fixes in one `locations` frame: the per-driver rate's default burst (each fix takes a
# token), and 20 fixes with every optional field fit the 4 KiB message limit.
MAX_FRAME_FIXES = 20


class LocationsFrame(ClientFrame, tag="locations", kw_only=True):
    """Fixes the app buffered while its network was down, oldest first, sent at once."""

    fixes: Annotated[list[Location], Meta(min_length=1, max_length=MAX_FRAME_FIXES)]


class AcceptFrame(ClientFrame, tag="accept", kw_only=True):
    ride_id: str  # one that cannot exist is answered not_found, as over HTTP


class DeclineFrame(ClientFrame, tag="decline", kw_only=True):
    ride_id: str


class PingFrame(ClientFrame, tag="ping"):
    pass


AnyClientFrame = LocationFrame | LocationsFrame | AcceptFrame | DeclineFrame | PingFrame


class ServerFrame(Shape, tag_field="type"):
    pass


class Reply(ServerFrame):
    """An answer to a client frame: it carries the frame's id, if the frame had one."""

    id: FrameId | UnsetType = UNSET


class AckFrame(Reply, tag="ack", kw_only=True):
    seq: int  # the fix's own seq
    status: Literal["accepted", "stale"]
    # On stale: the fix the driver has stored (null if it expired meanwhile).
    stored_seq: int | None | UnsetType = UNSET
    stored_ts: int | None | UnsetType = UNSET


class ResultFrame(Reply, tag="result", kw_only=True):
    """The answer to accept or decline (a pushed change is a RideFrame)."""

    ride: Ride


class PongFrame(Reply, tag="pong"):
    pass


class ErrorFrame(Reply, tag="error", kw_only=True):
    error: str
    message: str
    field: str | UnsetType = UNSET


class OfferFrame(ServerFrame, tag="offer"):
    ride: Ride
    expires_at: int


class RideFrame(ServerFrame, tag="ride"):
    ride: Ride


AnyServerFrame = AckFrame | ResultFrame | PongFrame | ErrorFrame | OfferFrame | RideFrame
