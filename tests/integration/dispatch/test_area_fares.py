"""Fare tables per service area, over HTTP on every backend: a service area may carry a
`fare` (validated like the default table's settings); a quote with a pickup inside uses
it, a quote elsewhere the default; a bad fare is refused with nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.settings import Settings

from .conftest import HERE, Instance, running

OPS = ("ops", "o1")
FARE = {"currency": "GBP", "base": 3.0, "per_km": 2.0, "per_min": 0.5, "minimum": 8.0}
DEFAULT = Settings()
# A 2.2 km square around HERE, and one 5.5 km north of it (neither holds the other).
INSIDE = HERE
OUTSIDE = {"lat": HERE["lat"] + 0.05, "lng": HERE["lng"]}


def square(lat: float, lng: float, half: float, kind: str, **props: Any) -> dict[str, Any]:
    ring = [
        [lng - half, lat - half],
        [lng + half, lat - half],
        [lng + half, lat + half],
        [lng - half, lat + half],
        [lng - half, lat - half],
    ]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"kind": kind, "name": f"{kind} here", **props},
    }


@pytest.fixture(
    params=["memory", pytest.param("redis", marks=pytest.mark.redis),
            pytest.param("cluster", marks=pytest.mark.redis)]
)  # fmt: skip
def settings(request: pytest.FixtureRequest) -> Settings:
    base = Settings(instance_id="f-1", quote_rate_burst=10_000)
    if request.param == "redis":
        return base.with_overrides(redis_url=request.getfixturevalue("redis_url"))
    if request.param == "cluster":
        return base.with_overrides(redis_cluster_url=request.getfixturevalue("redis_cluster_url"))
    return base


async def quote_fare(inst: Instance, pickup: dict[str, float]) -> dict[str, Any]:
    dropoff = {"lat": pickup["lat"] + 0.01, "lng": pickup["lng"]}
    status, data, _ = await inst.call(
        "POST", "/v1/quotes", ("rider", "u1"), json={"pickup": pickup, "dropoff": dropoff}
    )
    assert status == 201, data
    return data["fare"]  # type: ignore[no-any-return]


async def test_a_quote_uses_the_fare_of_the_service_area_holding_its_pickup(
    settings: Settings,
) -> None:
    async with running(settings) as inst:
        area = square(HERE["lat"], HERE["lng"], 0.01, "service_area", fare=FARE)
        status, stored, _ = await inst.call("PUT", "/v1/areas/city", OPS, json=area)
        assert status == 200, stored
        assert stored["properties"]["fare"] == FARE
        status, got, _ = await inst.call("GET", "/v1/areas/city", OPS)
        assert (status, got["properties"]["fare"]) == (200, FARE)  # read back from the store
        # A second service area without a fare: pickups there quote the default table.
        north = square(OUTSIDE["lat"], OUTSIDE["lng"], 0.01, "service_area")
        status, stored, _ = await inst.call("PUT", "/v1/areas/north", OPS, json=north)
        assert status == 200 and "fare" not in stored["properties"]

        inside = await quote_fare(inst, INSIDE)
        assert {k: inside[k] for k in FARE} == FARE
        outside = await quote_fare(inst, OUTSIDE)
        assert {k: outside[k] for k in FARE} == {
            "currency": DEFAULT.fare_currency,
            "base": DEFAULT.fare_base,
            "per_km": DEFAULT.fare_per_km,
            "per_min": DEFAULT.fare_per_min,
            "minimum": DEFAULT.fare_minimum,
        }
        # The same 1.1 km trip: the area's dearer table prices it higher.
        assert inside["estimate_low"] > outside["estimate_low"]

        status, _, _ = await inst.call("DELETE", "/v1/areas/city", OPS)
        assert status == 204
        assert (await quote_fare(inst, INSIDE))["currency"] == DEFAULT.fare_currency


@pytest.mark.parametrize(
    ("fare", "kind", "error"),
    [
        ({**FARE, "currency": "gbp"}, "service_area", "invalid_body"),
        ({**FARE, "currency": "POUND"}, "service_area", "invalid_body"),
        ({**FARE, "per_km": -0.1}, "service_area", "invalid_body"),
        ({**FARE, "base": 10_000.01}, "service_area", "invalid_body"),
        ({k: v for k, v in FARE.items() if k != "minimum"}, "service_area", "invalid_body"),
        ({**FARE, "tip": 1.0}, "service_area", "unknown_field"),
        (FARE, "no_pickup", "invalid_area"),  # a fare belongs to a service area only
    ],
)
async def test_a_bad_fare_is_refused_and_nothing_is_stored(
    fare: dict[str, Any], kind: str, error: str
) -> None:
    async with running(Settings(instance_id="f-2")) as inst:
        area = square(HERE["lat"], HERE["lng"], 0.01, kind, fare=fare)
        status, data, _ = await inst.call("PUT", "/v1/areas/bad", OPS, json=area)
        assert (status, data["error"]) == (422, error), data
        if error != "invalid_area":
            assert data["field"].startswith("/properties/fare")
        assert (await inst.call("GET", "/v1/areas/bad", OPS))[0] == 404
