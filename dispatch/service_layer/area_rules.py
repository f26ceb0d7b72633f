"""The rules areas put on rides: pickups and dropoffs inside a service area (once any
is defined), no pickup inside a no_pickup area, where an allowed pickup nearby is."""

from __future__ import annotations

import math

import shapely
from shapely.ops import nearest_points

from dispatch.domain.areas import AreaKind, OutsideServiceArea, PickupNotAllowed
from dispatch.domain.geo import LatLng
from dispatch.service_layer.area_index import CompiledArea
from dispatch.service_layer.area_shapes import degrees_lng
from dispatch.service_layer.areas import AreaBook

STEPS_OUT_M = (5.0, 10.0, 25.0, 50.0, 100.0)  # how far past the boundary we look
_COMPASS = [(math.cos(a), math.sin(a)) for a in (i * math.pi / 4 for i in range(8))]


def allowed_pickup(book: AreaBook, at: LatLng) -> bool:
    hits = book.holding(at.lat, at.lng)
    if any(c.area.kind is AreaKind.NO_PICKUP for c in hits):
        return False
    return not book.has(AreaKind.SERVICE_AREA) or any(
        c.area.kind is AreaKind.SERVICE_AREA for c in hits
    )


def nearest_allowed(book: AreaBook, area: CompiledArea, at: LatLng) -> LatLng | None:
    """An allowed pickup a small step outside `area`'s boundary, nearest `at` first;
    None if no such point is within STEPS_OUT_M of the boundary."""
    edge, _ = nearest_points(area.geometry.boundary, shapely.Point(at.lng, at.lat))
    dx = (edge.x - at.lng) / degrees_lng(1.0, edge.y)  # metres east
    dy = (edge.y - at.lat) * 111_320.0  # metres north
    norm = math.hypot(dx, dy)
    ways = [(dx / norm, dy / norm)] if norm > 1e-6 else []
    for step in STEPS_OUT_M:
        for ux, uy in ways + _COMPASS:
            lat = edge.y + uy * step / 111_320.0
            lng = edge.x + ux * degrees_lng(step, edge.y)
            if not (-90 <= lat <= 90):
                continue
            lng = (lng + 180.0) % 360.0 - 180.0
            point = LatLng(round(lat, 7), round(lng, 7))
            if allowed_pickup(book, point):
                return point
    return None


def check_ride(book: AreaBook, pickup: LatLng, dropoff: LatLng | None) -> None:
    """OutsideServiceArea or PickupNotAllowed when the areas forbid this ride."""
    if len(book.index) == 0:
        return  # no areas: everything is allowed
    hits = book.holding(pickup.lat, pickup.lng)
    if book.has(AreaKind.SERVICE_AREA):
        if not any(c.area.kind is AreaKind.SERVICE_AREA for c in hits):
            raise OutsideServiceArea("pickup")
        if dropoff is not None and not any(
            c.area.kind is AreaKind.SERVICE_AREA for c in book.holding(dropoff.lat, dropoff.lng)
        ):
            raise OutsideServiceArea("dropoff")
    for c in hits:
        if c.area.kind is AreaKind.NO_PICKUP:
            raise PickupNotAllowed(c.area.id, c.area.name, nearest_allowed(book, c, pickup))
