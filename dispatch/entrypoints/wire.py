"""Rides and drivers as the API shows them (the contract's Structs), and the frames that
carry them: HTTP answers, the driver WebSocket and the rider event stream all render here."""

from __future__ import annotations

import msgspec

from dispatch.domain.drivers import DriverRecord
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Ride
from dispatch.entrypoints import contract
from dispatch.service_layer.notices import NoticeKind, RideNotice
from geoindex import DriverState

encode = msgspec.json.Encoder().encode


def _point(p: LatLng | None) -> contract.LatLng | None:
    return None if p is None else contract.LatLng(lat=p.lat, lng=p.lng)


def ride_view(ride: Ride, *, for_other_driver: bool = False) -> contract.Ride:
    """The ride as its rider and its current driver see it. A driver who has left the
    ride (declined, timed out) sees it without the next driver's details."""
    hide = for_other_driver
    distance = ride.pickup_distance_m
    return contract.Ride(
        id=ride.id,
        status=ride.status,
        rider_id=ride.rider_id,
        driver_id=None if hide else ride.driver_id,
        pickup=contract.LatLng(lat=ride.pickup.lat, lng=ride.pickup.lng),
        dropoff=_point(ride.dropoff),
        pickup_distance_m=None if hide or distance is None else round(distance, 1),
        eta_s=None if hide else ride.eta_s,
        offer_expires_at=None if hide else ride.offer_expires_at,
        created_at=ride.created_at,
        updated_at=ride.updated_at,
        surge=ride.surge,
        product=ride.product,
    )


def driver_view(rec: DriverRecord, state: DriverState | None) -> contract.Driver:
    return contract.Driver(
        id=rec.driver_id,
        status=rec.status,
        lat=None if state is None else state.lat,
        lng=None if state is None else state.lng,
        ts=None if state is None else state.ts_ms,
        seq=None if state is None else state.seq,
        ride_id=rec.ride_id,
        products=None if state is None else list(state.products),
    )


def driver_frame(notice: RideNotice) -> bytes:
    """A pushed notice as the driver's WebSocket sends it."""
    ride = notice.ride
    if notice.kind is NoticeKind.OFFER:
        assert ride.offer_expires_at is not None
        return encode(contract.OfferFrame(ride=ride_view(ride), expires_at=ride.offer_expires_at))
    hide = notice.kind is NoticeKind.LEFT
    return encode(contract.RideFrame(ride=ride_view(ride, for_other_driver=hide)))


def offer_frame(ride: Ride) -> bytes:
    return driver_frame(RideNotice(NoticeKind.OFFER, ride))


def ride_event(ride: Ride) -> bytes:
    """One server-sent event of the rider's stream."""
    return b"data: " + encode(ride_view(ride)) + b"\n\n"
