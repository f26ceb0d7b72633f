"""Products over HTTP: the catalog, a driver's vehicle (status call and fleet call), the
request field on rides and quotes, and the 422 answers for what the catalog refuses."""

from __future__ import annotations

import pytest

from tests.integration.dispatch.conftest import HERE, Instance

D1 = ("driver", "d1")
FLEET = ("fleet", "f1")
U1 = ("rider", "u1")
RIDE = {"pickup": HERE}


async def test_the_catalog_lists_every_product_and_the_default(service: Instance) -> None:
    status, data, _ = await service.call("GET", "/v1/products", U1)
    assert status == 200
    assert data["default"] == "economy"
    by_name = {p["name"]: p for p in data["products"]}
    assert by_name["xl"] == {
        "name": "xl",
        "seats": 6,
        "flags": [],
        "upgrades": [],
        "fare_factor": 1.5,
    }
    assert by_name["wav"]["flags"] == ["accessible"]
    assert by_name["economy"]["upgrades"] == ["comfort", "xl"]
    assert (await service.call("GET", "/v1/products"))[0] == 401


async def test_a_vehicle_given_with_the_status_call_decides_the_rides_offered(
    service: Instance,
) -> None:
    await service.fix("d1", HERE["lat"] + 0.001, HERE["lng"])
    vehicle = {"seats": 4, "flags": ["accessible"], "products": ["wav"]}
    status, data, _ = await service.call(
        "PUT", "/v1/drivers/d1/status", D1, json={"status": "available", "vehicle": vehicle}
    )
    assert status == 200 and data["products"] == ["wav"]
    status, ride, _ = await service.call("POST", "/v1/rides", U1, json=RIDE)  # economy
    assert (status, ride["status"], ride["product"]) == (201, "no_driver", "economy")
    status, ride, _ = await service.call("POST", "/v1/rides", U1, json={**RIDE, "product": "wav"})
    assert (status, ride["driver_id"], ride["product"]) == (201, "d1", "wav")


async def test_a_fleet_sets_a_drivers_vehicle(service: Instance) -> None:
    vehicle = {"seats": 6, "products": ["xl", "economy"]}
    path = "/v1/fleet/drivers/d1/vehicle"
    status, data, _ = await service.call("PUT", path, FLEET, json=vehicle)
    assert (status, data) == (
        200,
        {"driver_id": "d1", "products": ["economy", "xl"], "applied": False},
    )
    await service.fix("d1", HERE["lat"] + 0.001, HERE["lng"])  # the products apply from here
    status, data, _ = await service.call("GET", "/v1/drivers/d1", D1)
    assert data["products"] == ["economy", "xl"]
    status, ride, _ = await service.call("POST", "/v1/rides", U1, json={**RIDE, "product": "xl"})
    assert ride["driver_id"] == "d1"
    assert (await service.call("PUT", path, D1, json=vehicle))[0] == 403  # a driver token


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"seats": 4, "products": ["xl"]}, "invalid_vehicle", "/products"),  # 6 seats
        ({"seats": 4, "products": ["wav"]}, "invalid_vehicle", "/products"),  # accessible
        ({"seats": 4, "products": ["limo"]}, "invalid_vehicle", "/products"),
        ({"seats": 4, "products": []}, "invalid_body", "/products"),
        ({"seats": 0, "products": ["economy"]}, "invalid_body", "/seats"),
        ({"seats": 4, "products": ["Economy"]}, "invalid_body", "/products/0"),
    ],
)
async def test_a_vehicle_the_catalog_refuses_is_422_and_changes_nothing(
    service: Instance, body: dict[str, object], code: str, field: str
) -> None:
    await service.fix("d1", HERE["lat"], HERE["lng"])
    status, data, _ = await service.call("PUT", "/v1/fleet/drivers/d1/vehicle", FLEET, json=body)
    assert (status, data["error"], data["field"]) == (422, code, field)
    status, data, _ = await service.call(
        "PUT", "/v1/drivers/d1/status", D1, json={"status": "available", "vehicle": body}
    )
    assert status == 422 and data["field"].startswith("/vehicle")
    assert (await service.call("GET", "/v1/drivers/d1", D1))[1]["products"] == ["economy"]


@pytest.mark.parametrize("path", ["/v1/rides", "/v1/quotes"])
@pytest.mark.parametrize(
    ("product", "code"), [("limo", "unknown_product"), ("XL", "invalid_body"), (7, "invalid_body")]
)
async def test_an_unknown_product_is_422_naming_the_field(
    service: Instance, path: str, product: object, code: str
) -> None:
    status, data, _ = await service.call("POST", path, U1, json={**RIDE, "product": product})
    assert (status, data["error"], data["field"]) == (422, code, "/product")
    assert "request_id" in data  # the service's error shape


async def test_a_quote_for_a_product_uses_its_nearest_driver(service: Instance) -> None:
    await service.fix("d1", HERE["lat"] + 0.001, HERE["lng"])
    eco = await service.call("POST", "/v1/quotes", U1, json={**RIDE, "product": "economy"})
    wav = await service.call("POST", "/v1/quotes", U1, json={**RIDE, "product": "wav"})
    assert (eco[0], wav[0]) == (201, 201)
    assert eco[1]["pickup_eta_s"] is not None and wav[1]["pickup_eta_s"] is None


async def test_a_quote_is_priced_with_its_products_fare_factor(service: Instance) -> None:
    there = {"lat": HERE["lat"] + 0.03, "lng": HERE["lng"]}
    eco = await service.call("POST", "/v1/quotes", U1, json={**RIDE, "dropoff": there})
    xl = await service.call(
        "POST", "/v1/quotes", U1, json={**RIDE, "dropoff": there, "product": "xl"}
    )
    assert (eco[0], xl[0]) == (201, 201)
    assert (eco[1]["product"], xl[1]["product"]) == ("economy", "xl")
    e, x = eco[1]["fare"], xl[1]["fare"]
    assert (x["base"], x["per_km"], x["minimum"]) == (
        round(e["base"] * 1.5, 2),
        round(e["per_km"] * 1.5, 2),
        round(e["minimum"] * 1.5, 2),
    )
    assert x["estimate_low"] > e["estimate_low"] and x["estimate_high"] > e["estimate_high"]
