"""Ride <-> JSON bytes for the Redis store (every field, including the internal ones)."""

from __future__ import annotations

from typing import Any

import orjson

from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Ride, RideStatus


def _point(p: LatLng | None) -> list[float] | None:
    return None if p is None else [p.lat, p.lng]


def _latlng(v: Any) -> LatLng | None:
    return None if v is None else LatLng(float(v[0]), float(v[1]))


def encode(ride: Ride) -> bytes:
    return orjson.dumps(
        {
            "id": ride.id,
            "rider": ride.rider_id,
            "pickup": _point(ride.pickup),
            "dropoff": _point(ride.dropoff),
            "status": ride.status.value,
            "created": ride.created_at,
            "updated": ride.updated_at,
            "driver": ride.driver_id,
            "fence": ride.fence,
            "dist": ride.pickup_distance_m,
            "eta": ride.eta_s,
            "expires": ride.offer_expires_at,
            "attempts": ride.attempts,
            "declined": list(ride.declined),
            "cancelled_by": ride.cancelled_by,
            "v": ride.version,
            "surge": ride.surge,
            "product": ride.product,
        }
    )


def decode(raw: bytes) -> Ride:
    d = orjson.loads(raw)
    pickup = _latlng(d["pickup"])
    assert pickup is not None
    return Ride(
        id=d["id"],
        rider_id=d["rider"],
        pickup=pickup,
        dropoff=_latlng(d["dropoff"]),
        status=RideStatus(d["status"]),
        created_at=d["created"],
        updated_at=d["updated"],
        driver_id=d["driver"],
        fence=d["fence"],
        pickup_distance_m=d["dist"],
        eta_s=d["eta"],
        offer_expires_at=d["expires"],
        attempts=d["attempts"],
        declined=tuple(d["declined"]),
        cancelled_by=d["cancelled_by"],
        version=d["v"],
        surge=d.get("surge"),  # rides stored before quotes have none
        product=d.get("product"),  # nor before products
    )
