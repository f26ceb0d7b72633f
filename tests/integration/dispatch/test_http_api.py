"""The HTTP API on one real instance (embedded backend): statuses, errors, limits, auth."""

from __future__ import annotations

import time

import jwt
import orjson
import pytest

from dispatch.entrypoints.routes import ROUTES
from dispatch.settings import DEV_JWT_SECRET

from .conftest import Instance

D1 = ("driver", "d1")
U1 = ("rider", "u1")
BERLIN = (52.5200, 13.4050)


def now_ms() -> int:
    return int(time.time() * 1000)


def loc(seq: int = 1, ts: int | None = None, **extra: object) -> dict[str, object]:
    return {"lat": BERLIN[0], "lng": BERLIN[1], "ts": ts or now_ms(), "seq": seq, **extra}


# -- ops -----------------------------------------------------------------------------------
async def test_health_ready_and_instance_id_on_every_response(service: Instance) -> None:
    for path, expected in (
        ("/healthz", 200),
        ("/readyz", 200),
        ("/nope", 404),
        ("/v1/drivers/d1", 401),
    ):
        status, data, resp = await service.call("GET", path)
        assert status == expected
        assert resp.headers["X-Instance-Id"] == "test-1"
        if status >= 400:
            assert set(data) == {"error", "message", "request_id"}
            assert data["request_id"] == resp.headers["X-Request-Id"]


async def test_openapi_documents_exactly_the_routes_that_exist(service: Instance) -> None:
    status, doc, _ = await service.call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {(r.method, r.path) for r in ROUTES}
    assert documented == served
    for ref in orjson.dumps(doc).decode().split('"$ref":"#/components/schemas/')[1:]:
        assert ref.split('"')[0] in doc["components"]["schemas"]


async def test_metrics_count_requests_locations_and_rides(service: Instance) -> None:
    await service.fix("d1", *BERLIN)
    await service.call("POST", "/v1/drivers/d1/location", D1, json=loc(seq=1, ts=1))
    await service.call("POST", "/v1/rides", U1, json={"pickup": {"lat": 52.521, "lng": 13.405}})
    status, text, resp = await service.call("GET", "/metrics")
    assert status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    body = text.decode()
    assert 'dispatch_location_updates_total{result="accepted"} 1' in body
    assert 'dispatch_location_updates_total{result="stale"} 1' in body
    assert 'dispatch_ride_changes_total{status="offered"} 1' in body
    assert 'route="/v1/rides",status="201"' in body
    assert "dispatch_http_request_duration_seconds_bucket{" in body
    assert "dispatch_websockets_open 0" in body


# -- auth (invariant 7) --------------------------------------------------------------------
async def test_missing_bad_expired_or_unsigned_tokens_get_401(service: Instance) -> None:
    secret = DEV_JWT_SECRET
    expired = jwt.encode({"sub": "driver:d1", "exp": int(time.time()) - 10}, secret, "HS256")
    no_exp = jwt.encode({"sub": "driver:d1"}, secret, "HS256")
    unsigned = jwt.encode({"sub": "driver:d1", "exp": int(time.time()) + 60}, None, "none")
    other_key = jwt.encode({"sub": "driver:d1", "exp": int(time.time()) + 60}, "x" * 40, "HS256")
    bad_sub = jwt.encode({"sub": "admin:d1", "exp": int(time.time()) + 60}, secret, "HS256")
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        *(
            {"Authorization": f"Bearer {t}"}
            for t in (expired, no_exp, unsigned, other_key, bad_sub)
        ),
    ):
        status, data, resp = await service.call("GET", "/v1/drivers/d1", headers=headers)
        assert status == 401 and data["error"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_driver_token_cannot_move_or_read_another_driver(service: Instance) -> None:
    status, data, _ = await service.call("POST", "/v1/drivers/d2/location", D1, json=loc())
    assert (status, data["error"]) == (403, "forbidden")
    status, _, _ = await service.call(
        "PUT", "/v1/drivers/d2/status", D1, json={"status": "offline"}
    )
    assert status == 403
    status, _, _ = await service.call("GET", "/v1/drivers/d2", D1)
    assert status == 403
    # A driver id nothing is known of is 404 (a typo must not look like a real driver),
    # until the driver posts a fix or sets a status.
    status, data, _ = await service.call("GET", "/v1/drivers/d2", ("driver", "d2"))
    assert (status, data["error"]) == (404, "not_found")
    await service.call("PUT", "/v1/drivers/d2/status", ("driver", "d2"), json={"status": "offline"})
    status, d2, _ = await service.call("GET", "/v1/drivers/d2", ("driver", "d2"))
    assert (status, d2["lat"], d2["status"]) == (200, None, "offline")


async def test_riders_see_only_their_own_rides(service: Instance) -> None:
    await service.fix("d1", *BERLIN)
    _, ride, _ = await service.call(
        "POST", "/v1/rides", U1, json={"pickup": {"lat": 52.52, "lng": 13.40}}
    )
    path = f"/v1/rides/{ride['id']}"
    assert (await service.call("GET", path, U1))[0] == 200
    assert (await service.call("GET", path, D1))[0] == 200
    assert (await service.call("GET", path, ("rider", "u2")))[0] == 403
    assert (await service.call("GET", path, ("driver", "d2")))[0] == 403
    assert (await service.call("POST", path + "/cancel", ("rider", "u2")))[0] == 403
    assert (await service.call("POST", path + "/accept", ("driver", "d2")))[0] == 403
    assert (await service.call("POST", path + "/accept", U1))[0] == 403
    assert (await service.call("POST", "/v1/rides", D1, json={"pickup": {"lat": 1, "lng": 1}}))[
        0
    ] == 403
    assert (await service.call("GET", path, U1))[1]["status"] == "offered"


# -- driver locations ----------------------------------------------------------------------
async def test_location_is_accepted_then_an_older_one_is_stale(service: Instance) -> None:
    ts = now_ms()
    status, data, _ = await service.call("POST", "/v1/drivers/d1/location", D1, json=loc(5, ts))
    assert (status, data) == (202, {"status": "accepted", "seq": 5})
    for older in (loc(4, ts + 1), loc(6, ts - 1)):
        status, data, _ = await service.call("POST", "/v1/drivers/d1/location", D1, json=older)
        # The stored fix, to resync from: not the seq the client sent.
        assert (status, data["error"], data["seq"], data["ts"]) == (409, "stale", 5, ts)
    _, me, _ = await service.call("GET", "/v1/drivers/d1", D1)
    assert (me["ts"], me["seq"], me["status"]) == (ts, 5, "available")


@pytest.mark.parametrize(
    ("raw", "status", "code", "field"),
    [
        (b'{"lat": NaN, "lng": 13.4, "ts": 1, "seq": 1}', 400, "invalid_json", None),
        (b'{"lat": Infinity, "lng": 13.4, "ts": 1, "seq": 1}', 400, "invalid_json", None),
        (b'{"lat": 1e999, "lng": 13.4, "ts": 1, "seq": 1}', 400, "invalid_json", None),
        (b"[1, 2]", 422, "invalid_body", None),
        (b"not json", 400, "invalid_json", None),
        (b'{"lat": 91, "lng": 13.4, "ts": 1, "seq": 1}', 422, "invalid_body", "/lat"),
        (b'{"lat": 52, "lng": 181, "ts": 1, "seq": 1}', 422, "invalid_body", "/lng"),
        (b'{"lat": "52", "lng": 13.4, "ts": 1, "seq": 1}', 422, "invalid_body", "/lat"),
        (b'{"lat": true, "lng": 13.4, "ts": 1, "seq": 1}', 422, "invalid_body", "/lat"),
        (b'{"lat": 52, "lng": 13.4, "ts": -1, "seq": 1}', 422, "invalid_body", "/ts"),
        (b'{"lat": 52, "lng": 13.4, "ts": 1.5, "seq": 1}', 422, "invalid_body", "/ts"),
        (b'{"lat": 52, "lng": 13.4, "ts": 1}', 422, "invalid_body", "/seq"),
        (b'{"lat": 52, "lng": 13.4, "ts": 1, "seq": 1, "status": "on_ride"}', 422,
         "unknown_field", "/status"),
        (b'{"lat": 52, "lng": 13.4, "ts": 1, "seq": 1, "driver_id": "d2"}', 422,
         "unknown_field", "/driver_id"),
        (b'{"lat": 52, "lng": 13.4, "ts": 1, "seq": 1, "heading": 400}', 422,
         "invalid_body", "/heading"),
        (b'{"lat": 52, "lng": 13.4, "ts": 99999999999999, "seq": 1}', 422,
         "invalid_request", None),
    ],
)  # fmt: skip
async def test_bad_location_bodies_get_a_clear_error_and_change_nothing(
    service: Instance, raw: bytes, status: int, code: str, field: str | None
) -> None:
    got, data, _ = await service.call("POST", "/v1/drivers/d1/location", D1, data=raw)
    assert (got, data["error"], data.get("field")) == (status, code, field)
    got, _, _ = await service.call("GET", "/v1/drivers/d1", D1)
    assert got == 404  # still nothing known of d1


async def test_bodies_above_the_limit_get_413(service: Instance) -> None:
    big = orjson.dumps({**loc(), "pad": "x" * service.settings.max_body_bytes})
    status, data, _ = await service.call("POST", "/v1/drivers/d1/location", D1, data=big)
    assert (status, data["error"]) == (413, "body_too_large")


async def test_a_driver_posting_too_fast_gets_429(service: Instance) -> None:
    ts = now_ms()
    statuses = []
    for i in range(service.settings.driver_rate_burst + 5):
        status, _, _ = await service.call(
            "POST", "/v1/drivers/d1/location", D1, json=loc(i + 1, ts + i)
        )
        statuses.append(status)
    assert (
        statuses[: service.settings.driver_rate_burst] == [202] * service.settings.driver_rate_burst
    )
    assert 429 in statuses[service.settings.driver_rate_burst :]
    status, _, resp = await service.call(
        "POST", "/v1/drivers/d1/location", D1, json=loc(100, ts + 100)
    )
    assert status == 429 and resp.headers["Retry-After"] == "1"  # 10/s: a token within 1 s
    # Another driver has its own budget.
    status, _, _ = await service.call(
        "POST", "/v1/drivers/d2/location", ("driver", "d2"), json=loc()
    )
    assert status == 202


async def test_fleet_batches_get_a_result_per_item(service: Instance) -> None:
    ts = now_ms()
    fleet = ("fleet", "gw1")
    updates = [
        {"driver_id": "a", **loc(1, ts)},
        {"driver_id": "b", **loc(1, ts)},
        {"driver_id": "b", **loc(1, ts - 5)},
        {"driver_id": "c", "lat": 95, "lng": 0, "ts": ts, "seq": 1},
        {"driver_id": "bad id", **loc(1, ts)},
        {"driver_id": "d", **loc(1, ts), "status": "available"},
        "nonsense",
    ]
    status, data, _ = await service.call("POST", "/v1/locations", fleet, json={"updates": updates})
    assert status == 200
    assert [(r["driver_id"], r["status"]) for r in data["results"]] == [
        ("a", "accepted"),
        ("b", "accepted"),
        ("b", "stale"),
        ("c", "invalid"),
        ("bad id", "invalid"),
        ("d", "invalid"),
        (None, "invalid"),
    ]
    assert all("error" in r for r in data["results"] if r["status"] == "invalid")
    assert "/lat" in data["results"][3]["error"]
    status, _, _ = await service.call("POST", "/v1/locations", D1, json={"updates": []})
    assert status == 403
    too_many = [{"driver_id": f"x{i}", **loc(1, ts)} for i in range(1001)]
    status, data, _ = await service.call("POST", "/v1/locations", fleet, json={"updates": too_many})
    assert status == 413
    status, data, _ = await service.call(
        "POST", "/v1/locations", fleet, json={"updates": [], "extra": 1}
    )
    assert (status, data["error"]) == (422, "unknown_field")


async def test_status_changes_and_a_busy_driver_gets_409(service: Instance) -> None:
    await service.fix("d1", *BERLIN)
    status, me, _ = await service.call(
        "PUT", "/v1/drivers/d1/status", D1, json={"status": "offline"}
    )
    assert (status, me["status"]) == (200, "offline")
    _, near, _ = await service.call("GET", "/v1/nearby?lat=52.52&lng=13.405", U1)
    assert near == {"cars": []}
    for bad in ({"status": "on_ride"}, {"status": "available", "ride_id": "x"}, {}):
        status, _, _ = await service.call("PUT", "/v1/drivers/d1/status", D1, json=bad)
        assert status == 422
    await service.call("PUT", "/v1/drivers/d1/status", D1, json={"status": "available"})
    await service.call("POST", "/v1/rides", U1, json={"pickup": {"lat": 52.52, "lng": 13.40}})
    status, data, _ = await service.call(
        "PUT", "/v1/drivers/d1/status", D1, json={"status": "offline"}
    )
    assert (status, data["error"]) == (409, "driver_busy")


async def test_nearby_shows_cars_without_identities(service: Instance) -> None:
    await service.fix("d1", *BERLIN)
    await service.fix("d2", 52.53, 13.405)
    status, data, _ = await service.call(
        "GET", "/v1/nearby?lat=52.52&lng=13.405&k=5&radius_m=5000", U1
    )
    assert status == 200
    assert [set(c) for c in data["cars"]] == [{"lat", "lng", "distance_m"}] * 2
    assert data["cars"][0]["distance_m"] < data["cars"][1]["distance_m"]
    for query in (
        "lat=nan&lng=1",
        "lat=1&lng=inf",
        "lat=1",
        "lat=1&lng=1&k=0",
        "lat=1&lng=1&k=51",
        "lat=1&lng=1&k=2.5",
        "lat=1&lng=1&radius_m=20000",
        "lat=1&lng=1&driver_id=d1",
        "lat=1e999&lng=1",
        "lat=0x10&lng=1",
    ):
        status, data, _ = await service.call("GET", f"/v1/nearby?{query}", U1)
        assert status == 422, query
    assert (await service.call("GET", "/v1/nearby?lat=1&lng=1"))[0] == 401


# -- rides ---------------------------------------------------------------------------------
RIDE_FIELDS = {
    "surge",
    "product",
    "id",
    "status",
    "rider_id",
    "driver_id",
    "pickup",
    "dropoff",
    "pickup_distance_m",
    "eta_s",
    "offer_expires_at",
    "created_at",
    "updated_at",
}


async def test_a_whole_ride_over_http(service: Instance) -> None:
    await service.fix("d1", 52.521, 13.405)
    status, ride, _ = await service.call(
        "POST",
        "/v1/rides",
        U1,
        json={"pickup": {"lat": 52.52, "lng": 13.405}, "dropoff": {"lat": 52.50, "lng": 13.39}},
    )
    assert status == 201 and set(ride) == RIDE_FIELDS
    assert (ride["status"], ride["driver_id"], ride["rider_id"]) == ("offered", "d1", "u1")
    assert ride["product"] == "economy"  # the default product
    assert ride["pickup_distance_m"] == pytest.approx(111, abs=2) and ride["eta_s"] > 0
    path = f"/v1/rides/{ride['id']}"
    assert (await service.call("POST", path + "/start", D1))[0] == 409
    for step, expected in (
        ("accept", "accepted"),
        ("arrived", "arrived"),
        ("start", "in_progress"),
    ):
        status, ride, _ = await service.call("POST", f"{path}/{step}", D1)
        assert (status, ride["status"]) == (200, expected)
    status, data, _ = await service.call("POST", path + "/cancel", U1)
    assert (status, data["error"]) == (409, "invalid_transition")
    status, ride, _ = await service.call("POST", path + "/complete", D1)
    assert (status, ride["status"]) == (200, "completed")
    _, me, _ = await service.call("GET", "/v1/drivers/d1", D1)
    assert (me["status"], me["ride_id"]) == ("available", None)


async def test_no_driver_is_a_201_with_status_no_driver(service: Instance) -> None:
    status, ride, _ = await service.call(
        "POST", "/v1/rides", U1, json={"pickup": {"lat": 10, "lng": 10}}
    )
    assert (status, ride["status"], ride["driver_id"]) == (201, "no_driver", None)


async def test_decline_hands_the_ride_on_and_hides_it_from_the_decliner(service: Instance) -> None:
    await service.fix("d1", 52.5201, 13.405)
    await service.fix("d2", 52.5210, 13.405)
    _, ride, _ = await service.call(
        "POST", "/v1/rides", U1, json={"pickup": {"lat": 52.52, "lng": 13.405}}
    )
    status, seen, _ = await service.call("POST", f"/v1/rides/{ride['id']}/decline", D1)
    assert status == 200 and seen["status"] == "offered" and seen["driver_id"] is None
    _, now, _ = await service.call("GET", f"/v1/rides/{ride['id']}", U1)
    assert now["driver_id"] == "d2"
    assert (await service.call("POST", f"/v1/rides/{ride['id']}/accept", D1))[0] == 403


@pytest.mark.parametrize(
    "body",
    [
        {"pickup": {"lat": 52.5, "lng": 13.4}, "status": "accepted"},
        {"pickup": {"lat": 52.5, "lng": 13.4}, "driver_id": "d1"},
        {"pickup": {"lat": 52.5, "lng": 13.4, "alt": 3}},
        {"pickup": {"lat": 52.5}},
        {"pickup": [52.5, 13.4]},
        {"dropoff": {"lat": 52.5, "lng": 13.4}},
        {"pickup": {"lat": 52.5, "lng": 200}},
    ],
)
async def test_bad_ride_requests_get_422_and_create_nothing(
    service: Instance, body: dict[str, object]
) -> None:
    await service.fix("d1", *BERLIN)
    status, data, _ = await service.call("POST", "/v1/rides", U1, json=body)
    assert status == 422, data
    assert data["field"] in ("/status", "/driver_id", "/pickup/alt", "/pickup/lng", "/pickup")
    _, me, _ = await service.call("GET", "/v1/drivers/d1", D1)
    assert me["status"] == "available"


async def test_same_idempotency_key_same_answer_other_body_422(service: Instance) -> None:
    await service.fix("d1", *BERLIN)
    await service.fix("d2", 52.53, 13.405)
    body = {"pickup": {"lat": 52.52, "lng": 13.405}}
    headers = {"Idempotency-Key": "key-1"}
    s1, first, _ = await service.call("POST", "/v1/rides", U1, json=body, headers=headers)
    answers = [
        await service.call("POST", "/v1/rides", U1, json=body, headers=headers) for _ in range(3)
    ]
    assert s1 == 201 and all(a[0] == 201 for a in answers)
    assert all(a[1] == first for a in answers)
    status, data, _ = await service.call(
        "POST", "/v1/rides", U1, headers=headers, json={"pickup": {"lat": 52.53, "lng": 13.405}}
    )
    assert (status, data["error"]) == (422, "idempotency_key_reused")
    # Another rider's identical key is another request.
    status, other, _ = await service.call(
        "POST", "/v1/rides", ("rider", "u2"), json=body, headers=headers
    )
    assert status == 201 and other["id"] != first["id"]
    _, d2, _ = await service.call("GET", "/v1/drivers/d2", ("driver", "d2"))
    assert d2["ride_id"] == other["id"]
    status, _, _ = await service.call(
        "POST", "/v1/rides", U1, json=body, headers={"Idempotency-Key": "has space"}
    )
    assert status == 422


async def test_unknown_rides_are_404(service: Instance) -> None:
    for path in ("/v1/rides/r_" + "0" * 32, "/v1/rides/not-an-id", "/v1/rides/{x}/accept"):
        status, data, _ = await service.call("GET" if path.count("/") == 3 else "POST", path, U1)
        assert status == 404 and data["error"] == "not_found"


async def test_ride_steps_take_no_fields(service: Instance) -> None:
    await service.fix("d1", *BERLIN)
    _, ride, _ = await service.call(
        "POST", "/v1/rides", U1, json={"pickup": {"lat": 52.52, "lng": 13.40}}
    )
    path = f"/v1/rides/{ride['id']}/accept"
    status, data, _ = await service.call("POST", path, D1, json={"status": "completed"})
    assert (status, data["error"]) == (422, "unknown_field")
    status, data, _ = await service.call("POST", path, D1, json={})
    assert (status, data["status"]) == (200, "accepted")
