"""Areas over HTTP on real instances: CRUD for ops tokens with clear 422s; rides refused
outside the service area or in a no_pickup area (nothing reserved); on Redis and Redis
Cluster, a change on one instance reaches the other within seconds and a restarted
instance starts with the stored areas."""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.settings import Settings
from tests.waiting import eventually

from .conftest import Instance, running

OPS = ("ops", "o1")
BERLIN = (52.52, 13.405)


def ring(lat: float, lng: float, half: float) -> list[list[float]]:
    return [
        [lng - half, lat - half],
        [lng + half, lat - half],
        [lng + half, lat + half],
        [lng - half, lat + half],
        [lng - half, lat - half],
    ]


def feature(kind: str, lat: float, lng: float, half: float, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring(lat, lng, half)]},
        "properties": {"kind": kind, "name": f"{kind} here", **props},
    }


async def put(inst: Instance, ident: str, body: Any, who: tuple[str, str] = OPS) -> Any:
    return await inst.call("PUT", f"/v1/areas/{ident}", who, json=body)


async def test_an_area_is_stored_read_listed_and_deleted(service: Instance) -> None:
    status, stored, _ = await put(service, "city", feature("service_area", *BERLIN, 0.1))
    assert status == 200, stored
    assert stored["id"] == "city" and stored["geometry"]["type"] == "Polygon"
    props = stored["properties"]
    assert props["kind"] == "service_area" and props["dwell_s"] == 60.0
    assert props["inside_cells"] > 0 and props["edge_cells"] > 0
    status, got, _ = await service.call("GET", "/v1/areas/city", OPS)
    assert status == 200 and got == stored
    multi = {
        "type": "Feature",
        "id": "ber",
        "geometry": {
            "type": "MultiPolygon",
            "coordinates": [[ring(52.36, 13.50, 0.01)], [ring(52.38, 13.52, 0.005)]],
        },
        "properties": {"kind": "airport", "name": "BER", "dwell_s": 90},
    }
    status, ber, _ = await put(service, "ber", multi)
    assert status == 200 and ber["properties"]["dwell_s"] == 90
    status, listing, _ = await service.call("GET", "/v1/areas", OPS)
    assert status == 200 and [a["id"] for a in listing["areas"]] == ["ber", "city"]
    assert listing["version"] == 2
    status, _, _ = await service.call("DELETE", "/v1/areas/city", OPS)
    assert status == 204
    assert (await service.call("GET", "/v1/areas/city", OPS))[0] == 404
    assert (await service.call("DELETE", "/v1/areas/city", OPS))[0] == 404


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        (lambda f: f["geometry"]["coordinates"][0].pop(), "invalid_area", "not closed"),
        (
            lambda f: f["geometry"].update(
                coordinates=[[[13.0, 52.0], [13.1, 52.1], [13.1, 52.0], [13.0, 52.1], [13.0, 52.0]]]
            ),
            "invalid_area",
            "Self-intersection",
        ),
        (lambda f: f["geometry"]["coordinates"][0].__setitem__(1, [13.5, 91]), "invalid_body", ""),
        (
            lambda f: f["geometry"]["coordinates"][0].__setitem__(1, [13.5, 52, 3]),
            "invalid_body",
            "",
        ),
        (lambda f: f["geometry"].update(type="Point"), "invalid_body", ""),
        (lambda f: f["properties"].update(kind="parking"), "invalid_body", ""),
        (lambda f: f["properties"].update(colour="red"), "unknown_field", ""),
        (lambda f: f.update(id="other"), "invalid_body", "path"),
    ],
)
async def test_a_bad_area_is_refused_and_nothing_is_stored(
    service: Instance, change: Any, error: str, words: str
) -> None:
    body = feature("no_pickup", *BERLIN, 0.01)
    change(body)
    status, data, _ = await put(service, "bad", body)
    assert (status, data["error"]) == (422, error), data
    assert words in data["message"]
    assert (await service.call("GET", "/v1/areas/bad", OPS))[0] == 404


async def test_the_event_streams_path_is_never_taken_for_an_area_id(service: Instance) -> None:
    status, data, _ = await put(service, "events", feature("service_area", *BERLIN, 0.1))
    assert (status, data["error"]) == (405, "method_not_allowed")
    status, _, resp = await service.call("OPTIONS", "/v1/areas/events", OPS)
    assert status == 405 and resp.headers["Allow"] == "GET"  # the stream's, not an area's


async def test_only_ops_tokens_manage_areas(service: Instance) -> None:
    for who in (("rider", "u1"), ("driver", "d1"), ("fleet", "f1")):
        status, data, _ = await put(service, "x", feature("airport", *BERLIN, 0.01), who)
        assert (status, data["error"]) == (403, "forbidden")
        assert (await service.call("GET", "/v1/areas", who))[0] == 403
    assert (await service.call("GET", "/v1/areas"))[0] == 401
    assert (await service.call("PUT", "/v1/areas/has space", OPS, json={}))[0] == 422


async def test_rides_are_refused_by_the_areas_with_nothing_reserved(service: Instance) -> None:
    await put(service, "city", feature("service_area", *BERLIN, 0.1))
    await put(service, "station", feature("no_pickup", *BERLIN, 0.002))
    await service.fix("d1", BERLIN[0] + 0.01, BERLIN[1])
    outside = {"pickup": {"lat": 48.85, "lng": 2.35}}
    status, data, _ = await service.call("POST", "/v1/rides", ("rider", "u1"), json=outside)
    assert (status, data["error"]) == (422, "outside_service_area")
    pickup = {"lat": BERLIN[0], "lng": BERLIN[1]}
    status, data, _ = await service.call(
        "POST", "/v1/rides", ("rider", "u1"), json={"pickup": pickup}
    )
    assert (status, data["error"], data["area_id"]) == (422, "pickup_not_allowed", "station")
    near = data["nearest_allowed"]
    assert abs(near["lng"] - BERLIN[1]) == pytest.approx(0.002, abs=0.0003)
    status, driver, _ = await service.call("GET", "/v1/drivers/d1", ("driver", "d1"))
    assert driver["status"] == "available" and driver.get("ride_id") is None
    status, ride, _ = await service.call(
        "POST", "/v1/rides", ("rider", "u1"), json={"pickup": near}
    )
    assert (status, ride["status"], ride["driver_id"]) == (201, "offered", "d1")


@pytest.mark.redis
@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_every_instance_sees_a_change_and_a_restart_loads_the_areas(
    kind: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_cluster_url" if kind == "cluster" else "redis_url")
    settings = (
        Settings(redis_cluster_url=url) if kind == "cluster" else Settings(redis_url=url)
    ).with_overrides(areas_refresh_s=0.2, match_window_ms=0)
    async with running(settings.with_overrides(instance_id="A")) as a:
        async with running(settings.with_overrides(instance_id="B")) as b:
            await put(a, "city", feature("service_area", 48.85, 2.35, 0.1))
            refused = {"pickup": {"lat": BERLIN[0], "lng": BERLIN[1]}}

            async def b_refuses() -> bool:
                """B refuses a Berlin pickup once it knows the Paris service area"""
                status, data, _ = await b.call("POST", "/v1/rides", ("rider", "u1"), json=refused)
                return status == 422 and data["error"] == "outside_service_area"

            await eventually(b_refuses, timeout_s=3, interval_s=0.1)
            assert (await b.call("GET", "/v1/areas/city", OPS))[0] == 200
    async with running(settings.with_overrides(instance_id="C")) as c:
        status, data, _ = await c.call("POST", "/v1/rides", ("rider", "u2"), json=refused)
        assert (status, data["error"]) == (422, "outside_service_area")
        status, _, _ = await c.call("DELETE", "/v1/areas/city", OPS)
        assert status == 204
        status, data, _ = await c.call("POST", "/v1/rides", ("rider", "u2"), json=refused)
        assert (status, data["status"]) == (201, "no_driver")
