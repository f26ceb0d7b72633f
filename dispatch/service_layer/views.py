"""The JSON shapes of rides and drivers, shared by HTTP, WebSocket, SSE and notifications."""

from __future__ import annotations

from typing import Any

from dispatch.domain.drivers import DriverRecord
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Ride
from geoindex import DriverState


def _point(p: LatLng | None) -> dict[str, float] | None:
    return None if p is None else {"lat": p.lat, "lng": p.lng}


def ride_view(ride: Ride, *, for_other_driver: bool = False) -> dict[str, Any]:
    """The ride as its rider and its current driver see it. A driver who has left the
    ride (declined, timed out) sees it without the next driver's details."""
    hide = for_other_driver
    return {
        "id": ride.id,
        "status": ride.status.value,
        "rider_id": ride.rider_id,
        "driver_id": None if hide else ride.driver_id,
        "pickup": _point(ride.pickup),
        "dropoff": _point(ride.dropoff),
        "pickup_distance_m": None
        if hide or ride.pickup_distance_m is None
        else round(ride.pickup_distance_m, 1),
        "eta_s": None if hide else ride.eta_s,
        "offer_expires_at": None if hide else ride.offer_expires_at,
        "created_at": ride.created_at,
        "updated_at": ride.updated_at,
    }


def driver_view(rec: DriverRecord, state: DriverState | None) -> dict[str, Any]:
    return {
        "id": rec.driver_id,
        "status": rec.status.value,
        "lat": None if state is None else state.lat,
        "lng": None if state is None else state.lng,
        "ts": None if state is None else state.ts_ms,
        "seq": None if state is None else state.seq,
        "ride_id": rec.ride_id,
    }
