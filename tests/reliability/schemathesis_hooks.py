"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.reliability.schemathesis_hooks): a valid
bearer token on every generated request, for the principal the route belongs to, so the
fuzzing reaches past the 401 into the handlers. Schemathesis's own auth checks still send
requests without it. The secret comes from FUZZ_JWT_SECRET."""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

import schemathesis

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import parse_subject, valid_id


def principal_for(path: str, params: dict[str, Any]) -> str:
    driver = params.get("driver_id")
    if path.startswith("/v1/fleet/"):
        return "fleet:gw"
    if "{driver_id}" in path:
        # Its own driver when the generated id is a valid one: the handler then runs.
        return f"driver:{driver}" if isinstance(driver, str) and valid_id(driver) else "driver:d1"
    if path == "/v1/locations":
        return "fleet:gw"
    if path.startswith("/v1/market"):
        return "ops:o1"
    if path.endswith(("/accept", "/decline", "/arrived", "/start", "/complete")):
        return "driver:d1"
    return "rider:u1"


_KEY = re.compile(r"[\x21-\x7e]{1,100}")
_serial = itertools.count()


@schemathesis.auth()
class RouteToken:
    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return os.environ["FUZZ_JWT_SECRET"]

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        who = principal_for(case.operation.path, dict(case.path_parameters or {}))
        token = TokenCodec(data).issue(parse_subject(who), 3600)
        headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        key = headers.get("Idempotency-Key")
        if isinstance(key, str) and _KEY.fullmatch(key):
            # Generated keys repeat across cases with other bodies; the 422 that earns is
            # right, but it is not what a fuzzer should keep finding. Keep keys unique.
            headers["Idempotency-Key"] = f"{key}-{next(_serial)}"
        case.headers = headers
