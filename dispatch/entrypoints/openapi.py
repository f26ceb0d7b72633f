"""The OpenAPI 3.1 document of the service, served at /openapi.json. A test checks that
it lists exactly the routes in routes.py."""

from __future__ import annotations

from typing import Any

from dispatch.settings import Settings

J = dict[str, Any]
BEARER: list[J] = [{"bearer": []}]


def ref(name: str) -> J:
    return {"$ref": f"#/components/schemas/{name}"}


def body(schema: J) -> J:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def answer(description: str, schema: J | None = None, ctype: str = "application/json") -> J:
    out: J = {"description": description}
    if schema is not None:
        out["content"] = {ctype: {"schema": schema}}
    return out


def errors(*codes: int) -> dict[str, J]:
    text = {
        400: "Malformed JSON",
        401: "Missing or invalid token",
        403: "Token may not do this",
        404: "Not found",
        409: "Conflict (stale fix, wrong ride state, busy driver, a rider's active-ride cap)",
        413: "Body or batch too large",
        422: "Invalid or unknown fields",
        429: "Rate exceeded (a driver's updates, a caller's map queries)",
        503: "Backend unavailable",
    }
    return {str(c): answer(text[c], ref("Error")) for c in codes}


def op(summary: str, responses: dict[str, J], *, auth: bool = True, **extra: Any) -> J:
    out: J = {"summary": summary, "responses": responses, **extra}
    if auth:
        out["security"] = BEARER
    return out


def obj(required: J, optional: J | None = None) -> J:
    props = {**required, **(optional or {})}
    return {
        "type": "object",
        "properties": props,
        "required": list(required),
        "additionalProperties": False,
    }


NUM = {"type": "number"}
INT = {"type": "integer", "minimum": 0, "maximum": 2**53 - 1}
STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}
NNUM = {"type": ["number", "null"]}
LAT = {"type": "number", "minimum": -90, "maximum": 90}
LNG = {"type": "number", "minimum": -180, "maximum": 180}
FIX = {
    "lat": LAT,
    "lng": LNG,
    "ts": INT | {"description": "fix time, ms since epoch"},
    "seq": INT | {"description": "increases with every fix of this driver"},
}
FIX_OPT = {
    "heading": {"type": "number", "minimum": 0, "maximum": 360},
    "speed": {"type": "number", "minimum": 0, "maximum": 150},
    "accuracy": {"type": "number", "minimum": 0, "maximum": 100_000},
}
DRIVER_ID = {
    "name": "driver_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
}
RIDE_ID = {
    "name": "ride_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^r_[0-9a-f]{32}$"},
}
STATUSES = ["offered", "accepted", "arrived", "in_progress", "completed", "cancelled", "no_driver"]


def schemas() -> J:
    return {
        "Error": obj({"error": STR, "message": STR}),
        "LatLng": obj({"lat": LAT, "lng": LNG}),
        "Location": obj(FIX, FIX_OPT),
        "LocationBatch": obj(
            {
                "updates": {
                    "type": "array",
                    "maxItems": 1000,
                    # Each item is checked on its own: one that is not a BatchItem is
                    # answered status "invalid" and the others go on, so anything is a
                    # valid item here.
                    "items": {"description": "a BatchItem"},
                }
            }
        ),
        "BatchResults": obj(
            {
                "results": {
                    "type": "array",
                    "items": obj(
                        {"driver_id": NSTR, "status": {"enum": ["accepted", "stale", "invalid"]}},
                        {"error": STR},
                    ),
                }
            }
        ),
        "BatchItem": obj({"driver_id": STR, **FIX}, FIX_OPT),
        "Status": obj({"status": {"enum": ["available", "offline"]}}),
        "Driver": obj(
            {
                "id": STR,
                "status": {"enum": ["offline", "available", "reserved", "on_ride"]},
                "lat": NNUM,
                "lng": NNUM,
                "ts": {"type": ["integer", "null"]},
                "seq": {"type": ["integer", "null"]},
                "ride_id": NSTR,
            }
        ),
        "RideRequest": obj(
            {"pickup": ref("LatLng")}, {"dropoff": {"oneOf": [ref("LatLng"), {"type": "null"}]}}
        ),
        "Ride": obj(
            {
                "id": STR,
                "status": {"enum": STATUSES},
                "rider_id": STR,
                "driver_id": NSTR,
                "pickup": ref("LatLng"),
                "dropoff": {"oneOf": [ref("LatLng"), {"type": "null"}]},
                "pickup_distance_m": NNUM,
                "eta_s": {"type": ["integer", "null"]},
                "offer_expires_at": {"type": ["integer", "null"]},
                "created_at": INT,
                "updated_at": INT,
            }
        ),
        "Nearby": obj(
            {"cars": {"type": "array", "items": obj({"lat": NUM, "lng": NUM, "distance_m": NUM})}}
        ),
    }


def ride_step(summary: str) -> J:
    return {
        "post": op(
            summary,
            {
                "200": answer("The ride after the step", ref("Ride")),
                **errors(401, 403, 404, 409, 503),
            },
            parameters=[RIDE_ID],
        )
    }


def q(name: str, schema: J, required: bool = False) -> J:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def paths(s: Settings) -> J:
    return {
        "/healthz": {
            "get": op(
                "Process alive (never touches the backend)", {"200": answer("Alive")}, auth=False
            )
        },
        "/readyz": {
            "get": op("Backend reachable", {"200": answer("Ready"), **errors(503)}, auth=False)
        },
        "/metrics": {
            "get": op(
                "Prometheus metrics",
                {"200": answer("Text format 0.0.4", STR, "text/plain")},
                auth=False,
            )
        },
        "/openapi.json": {"get": op("This document", {"200": answer("OpenAPI 3.1")}, auth=False)},
        "/v1/drivers/{driver_id}/location": {
            "post": op(
                f"Post one fix (driver token for this id; at most {s.driver_rate_per_s:g}/s, "
                f"burst {s.driver_rate_burst}; body at most {s.max_body_bytes} bytes)",
                {
                    "202": answer("Accepted", obj({"status": {"const": "accepted"}, "seq": INT})),
                    "409": answer(
                        "Stale: an equal or newer fix is stored",
                        obj({"error": STR, "message": STR}, {"seq": INT}),
                    ),
                    **errors(400, 401, 403, 413, 422, 429, 503),
                },
                parameters=[DRIVER_ID],
                requestBody=body(ref("Location")),
            )
        },
        "/v1/locations": {
            "post": op(
                f"Post a batch of fixes (fleet token; at most {s.max_batch_items} updates, "
                f"{s.max_batch_body_bytes} bytes)",
                {
                    "200": answer("One result per update, in order", ref("BatchResults")),
                    **errors(400, 401, 403, 413, 422, 503),
                },
                requestBody=body(ref("LocationBatch")),
            )
        },
        "/v1/drivers/{driver_id}/status": {
            "put": op(
                "Go available or offline (not while reserved or on a ride: 409)",
                {
                    "200": answer("The driver", ref("Driver")),
                    **errors(400, 401, 403, 409, 422, 503),
                },
                parameters=[DRIVER_ID],
                requestBody=body(ref("Status")),
            )
        },
        "/v1/drivers/{driver_id}": {
            "get": op(
                "The driver's status, last fix and ride",
                {"200": answer("The driver", ref("Driver")), **errors(401, 403, 422, 503)},
                parameters=[DRIVER_ID],
            )
        },
        "/v1/drivers/{driver_id}/stream": {
            "get": op(
                "Driver WebSocket (token in the header or ?access_token=); frames: docs/api.md; "
                f"messages above {s.max_ws_message_bytes} bytes close the socket with 1009; "
                f"a driver's socket beyond {s.max_streams_per_owner} on one instance closes "
                "its oldest with 4000",
                {"101": answer("Switching protocols"), **errors(400, 401, 403, 422)},
                parameters=[DRIVER_ID, q("access_token", STR)],
            )
        },
        "/v1/nearby": {
            "get": op(
                "Nearby available cars for a map, without driver identities (any token)",
                {
                    "200": answer("Cars, nearest first", ref("Nearby")),
                    **errors(401, 422, 429, 503),
                },
                parameters=[
                    q("lat", LAT, True),
                    q("lng", LNG, True),
                    q("k", {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}),
                    q(
                        "radius_m",
                        {"type": "number", "minimum": 0, "maximum": 10000, "default": 2000},
                    ),
                ],
            )
        },
        "/v1/rides": {
            "post": op(
                "Request a ride (rider token). Reserves the nearest free driver and offers the "
                "ride, or answers no_driver",
                {
                    "201": answer("The ride: offered, or no_driver", ref("Ride")),
                    **errors(400, 401, 403, 409, 413, 422, 503),
                },
                parameters=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,128}$"},
                        "description": "Same key + same body: the same answer for 24 h; "
                        "same key + another body: 422",
                    }
                ],
                requestBody=body(ref("RideRequest")),
            )
        },
        "/v1/rides/{ride_id}": {
            "get": op(
                "A ride (its rider or its current driver)",
                {"200": answer("The ride", ref("Ride")), **errors(401, 403, 404, 503)},
                parameters=[RIDE_ID],
            )
        },
        "/v1/rides/{ride_id}/events": {
            "get": op(
                "Server-sent events for the ride's rider: the current state, then every change",
                {
                    # The schema of one event ({data, event?, id?, retry?}, as OpenAPI 3.2
                    # describes event streams): data is a Ride as JSON text.
                    "200": answer(
                        "text/event-stream of `data: <Ride json>`",
                        {
                            "type": "object",
                            "properties": {"data": STR, "event": STR, "id": STR},
                            "required": ["data"],
                        },
                        "text/event-stream",
                    ),
                    **errors(401, 403, 404, 503),
                },
                parameters=[RIDE_ID, q("access_token", STR)],
            )
        },
        "/v1/rides/{ride_id}/accept": ride_step("The offered driver accepts"),
        "/v1/rides/{ride_id}/decline": ride_step("The offered driver declines; next candidate"),
        "/v1/rides/{ride_id}/arrived": ride_step("The driver is at the pickup"),
        "/v1/rides/{ride_id}/start": ride_step("The trip starts"),
        "/v1/rides/{ride_id}/complete": ride_step("The trip ends; the driver is free again"),
        "/v1/rides/{ride_id}/cancel": ride_step(
            "The rider or the driver cancels (offered, accepted or arrived only)"
        ),
    }


def document(settings: Settings) -> J:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dispatch",
            "version": "1.0.0",
            "description": "Driver matching: location streams, ride requests with atomic "
            "reservation, the ride lifecycle. Errors are always "
            "{error, message} JSON. Limits: docs/api.md.",
        },
        "paths": paths(settings),
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
