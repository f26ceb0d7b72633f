"""The demo city's areas, created through the real API with an ops token: a service area
around the city, a no-pickup forecourt and an airport whose drivers wait in a queue; and
where the simulated riders ask from (mostly the city, some at the airport, a few outside
the service area or inside the forecourt)."""

from __future__ import annotations

import random
from typing import Any

import aiohttp

from dispatch.demo.city import CENTRE, City, offset
from dispatch.domain.geo import LatLng

# The city's 3 km square plus the longest drop-off (1.5 km) fits inside.
SERVICE_HALF_SIDE_M = 5_000.0
AIRPORT_CENTRE = offset(CENTRE, -2_200.0, 1_800.0)
AIRPORT_HALF_SIDE_M = 300.0
FORECOURT_CENTRE = LatLng(52.5219, 13.4132)  # Alexanderplatz: no stopping on the square
FORECOURT_HALF_SIDE_M = 120.0
AIRPORT_DWELL_S = 30.0

AIRPORT_DRIVER_SHARE = 1 / 6  # of the drivers: they wait at the airport between rides
AIRPORT_RIDER_SHARE = 0.10  # of ride requests
OUTSIDE_RIDER_SHARE = 0.05  # picked up 7.5-9 km out: refused, outside_service_area
FORECOURT_RIDER_SHARE = 0.03  # inside the no-pickup area: asked again where it says


def _square(centre: LatLng, half_m: float) -> tuple[LatLng, LatLng]:
    """South-west and north-east corners."""
    return offset(centre, -half_m, -half_m), offset(centre, half_m, half_m)


def _feature(kind: str, name: str, centre: LatLng, half_m: float, **extra: Any) -> dict[str, Any]:
    sw, ne = _square(centre, half_m)
    ring = [[sw.lng, sw.lat], [ne.lng, sw.lat], [ne.lng, ne.lat], [sw.lng, ne.lat]]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
        "properties": {"kind": kind, "name": name, **extra},
    }


AREAS = {
    "city": _feature("service_area", "Demo city", CENTRE, SERVICE_HALF_SIDE_M),
    "airport": _feature(
        "airport", "Demo airport", AIRPORT_CENTRE, AIRPORT_HALF_SIDE_M, dwell_s=AIRPORT_DWELL_S
    ),
    "forecourt": _feature(
        "no_pickup", "Station forecourt", FORECOURT_CENTRE, FORECOURT_HALF_SIDE_M
    ),
}


async def create_areas(session: aiohttp.ClientSession, base: str, ops_token: str) -> None:
    headers = {"Authorization": f"Bearer {ops_token}"}
    for area_id, feature in AREAS.items():
        async with session.put(f"{base}/v1/areas/{area_id}", json=feature, headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"PUT /v1/areas/{area_id}: {r.status} {await r.text()}")


def in_airport(p: LatLng) -> bool:
    sw, ne = _square(AIRPORT_CENTRE, AIRPORT_HALF_SIDE_M)
    return sw.lat <= p.lat <= ne.lat and sw.lng <= p.lng <= ne.lng


def airport_point(rng: random.Random) -> LatLng:
    """Somewhere well inside the airport (its rank, its terminal doors)."""
    inner = 0.8 * AIRPORT_HALF_SIDE_M
    return offset(AIRPORT_CENTRE, rng.uniform(-inner, inner), rng.uniform(-inner, inner))


def rider_pickup(city: City, rng: random.Random) -> tuple[str, LatLng]:
    """(where: city | airport | outside | forecourt, the pickup)."""
    roll = rng.random()
    if roll < AIRPORT_RIDER_SHARE:
        return "airport", airport_point(rng)
    roll -= AIRPORT_RIDER_SHARE
    if roll < OUTSIDE_RIDER_SHARE:
        return "outside", city.point_near(rng, CENTRE, 7_500, 9_000)
    roll -= OUTSIDE_RIDER_SHARE
    if roll < FORECOURT_RIDER_SHARE:
        return "forecourt", city.point_near(rng, FORECOURT_CENTRE, 0, FORECOURT_HALF_SIDE_M / 2)
    return "city", city.pickup_point(rng)
