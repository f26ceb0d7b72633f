"""/openapi.json, generated: the routes of routes.py with the shapes of contract.py
(msgspec writes the JSON Schemas), and the limits of the running settings."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import msgspec

from dispatch.entrypoints import contract, split_contract
from dispatch.entrypoints.routes import FRAMES, ROUTES, Answer, Endpoint
from dispatch.settings import Settings

J = dict[str, Any]
Schemas = dict[Any, J]  # a contract type -> its schema (a $ref for a Struct)
REF = "#/components/schemas/{name}"
PATH_PARAMS = {
    "driver_id": contract.DriverId,
    "ride_id": contract.RideId,
    "area_id": contract.DriverId,  # areas_contract.AreaId: the same alphabet
    "parent": split_contract.ParentCell,
}
_PLACEHOLDER = re.compile(r"{(\w+)}")

ERRORS = {
    400: "Malformed JSON",
    401: "Missing or invalid token",
    403: "Token may not do this",
    404: "Not found",
    409: "Conflict (wrong ride state, busy driver, a rider's active-ride cap)",
    413: "Body or batch too large",
    422: "Invalid or unknown fields (field: a JSON pointer to the one at fault)",
    429: "Rate exceeded (a driver's updates, a caller's map queries)",
    503: "Backend unavailable",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until a request would be allowed",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}


def document(settings: Settings, endpoints: list[Endpoint] = ROUTES) -> J:
    shapes = _shapes(endpoints)
    refs, components = msgspec.json.schema_components(shapes, ref_template=REF)
    schema: Schemas = dict(zip(shapes, refs, strict=True))
    components.update({name: schema[kind] for name, kind in FRAMES.items()})
    limits = dataclasses.asdict(settings)
    paths: J = {}
    for e in endpoints:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e, schema, limits)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dispatch",
            "version": "1.0.0",
            "description": "Driver matching: location streams, ride requests with atomic "
            "reservation, the ride lifecycle. Errors are always {error, message} JSON, "
            "with field when one field is at fault, and request_id (the X-Request-Id "
            "every response carries). Limits: docs/api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _shapes(endpoints: list[Endpoint]) -> list[Any]:
    """Every type a schema is written for, once each, in a stable order."""
    kinds: list[Any] = [contract.Error, *PATH_PARAMS.values(), contract.IdempotencyKey]
    for e in endpoints:
        kinds += [a.shape for a in e.answers.values() if a.shape is not None]
        kinds += [e.body] if e.body is not None else []
    kinds += FRAMES.values()
    return list(dict.fromkeys(kinds))


def _operation(e: Endpoint, schema: Schemas, limits: J) -> J:
    op: J = {"summary": e.summary.format_map(limits), "responses": _responses(e, schema)}
    if e.auth:
        op["security"] = [{"bearer": []}]
    params = [
        {"name": name, "in": "path", "required": True, "schema": schema[PATH_PARAMS[name]]}
        for name in _PLACEHOLDER.findall(e.path)
    ]
    if e.query is not None:
        params += _query_params(e.query)
    if e.access_token:
        params.append(
            {"name": "access_token", "in": "query", "required": False, "schema": {"type": "string"}}
        )
    if e.idempotency_key:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": schema[contract.IdempotencyKey],
                "description": "Same key + same body: the same answer for 24 h; "
                "same key + another body: 422",
            }
        )
    if params:
        op["parameters"] = params
    if e.body is not None:
        op["requestBody"] = {
            "required": e.body_required,
            "content": {"application/json": {"schema": schema[e.body]}},
        }
    return op


def _responses(e: Endpoint, schema: Schemas) -> J:
    out = {status: _answer(answer, schema) for status, answer in e.answers.items()}
    for status in e.errors:
        out[status] = _answer(Answer(ERRORS[status], contract.Error), schema)
        if status == 429:
            out[status]["headers"] = RETRY_AFTER
    return {str(status): out[status] for status in sorted(out)}


def _answer(answer: Answer, schema: Schemas) -> J:
    out: J = {"description": answer.description}
    if answer.shape is not None:
        out["content"] = {answer.media: {"schema": schema[answer.shape]}}
    return out


def _query_params(kind: Any) -> list[J]:
    """A query Struct's fields, one parameter each (numbers in plain decimal notation)."""
    _, components = msgspec.json.schema_components([kind])
    whole = components[kind.__name__]
    required = set(whole.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in whole["properties"].items()
    ]
