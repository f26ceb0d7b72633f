"""A token matrix against a real instance: every token that is not a valid HS256 JWT of
ours, for the right subject, is refused with 401 (or 403 for a valid token acting for
someone else), on plain routes and on the WebSocket's query-parameter token alike."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
import jwt
import pytest

from .conftest import BERLIN, Client, assert_clean_error

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None, digest: Any) -> str:
    """A JWT assembled by hand, so any header and any signature can be tried."""
    signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    sig = b"" if key is None else hmac.new(key, signing.encode(), digest).digest()
    return f"{signing}.{b64(sig)}"


def swap_payload(token: str, claims: dict[str, Any]) -> str:
    header, _, sig = token.split(".")
    return f"{header}.{b64(json.dumps(claims).encode())}.{sig}"


def bad_tokens(secret: str) -> dict[str, str | None]:
    """Each would act as driver d1 if it were let through: a 2xx shows at once."""
    now = int(time.time())
    good = {"sub": "driver:d1", "iat": now, "exp": now + 600}
    key = secret.encode()
    hs256 = {"alg": "HS256", "typ": "JWT"}
    return {
        "missing": None,
        "empty bearer": "",
        "garbage": "not-a-jwt",
        "three garbage parts": "a.b.c",
        "alg none": forge({"alg": "none", "typ": "JWT"}, good, None, None),
        "alg None, signed": forge({"alg": "None"}, good, key, hashlib.sha256),
        "HS384 with our key": forge({"alg": "HS384"}, good, key, hashlib.sha384),
        "HS512 with our key": forge({"alg": "HS512"}, good, key, hashlib.sha512),
        "RS256 header, HMAC signature": forge({"alg": "RS256"}, good, key, hashlib.sha256),
        "RS256 header, junk signature": forge({"alg": "RS256"}, good, b"x" * 32, hashlib.sha256),
        "wrong key": jwt.encode(good, "another-secret-0123456789-0123456789", algorithm="HS256"),
        "signature stripped": forge(hs256, good, None, None),
        "payload swapped under a valid signature": swap_payload(
            jwt.encode({**good, "sub": "driver:d2"}, secret, algorithm="HS256"), good
        ),
        "expired": jwt.encode({**good, "exp": now - 5}, secret, algorithm="HS256"),
        "no exp": jwt.encode({"sub": "driver:d1"}, secret, algorithm="HS256"),
        "exp not a number": forge(hs256, {**good, "exp": "never"}, key, hashlib.sha256),
        "exp NaN": forge(hs256, {**good, "exp": float("nan")}, key, hashlib.sha256),
        "exp Infinity": forge(hs256, {**good, "exp": float("inf")}, key, hashlib.sha256),
        "not yet valid": jwt.encode({**good, "nbf": now + 600}, secret, algorithm="HS256"),
        "no subject": jwt.encode({"exp": now + 600}, secret, algorithm="HS256"),
        "subject not a string": forge(hs256, {**good, "sub": 42}, key, hashlib.sha256),
        "unknown role": jwt.encode({**good, "sub": "admin:root"}, secret, algorithm="HS256"),
        "empty id": jwt.encode({**good, "sub": "driver:"}, secret, algorithm="HS256"),
        "id with a slash": jwt.encode({**good, "sub": "driver:../d1"}, secret, algorithm="HS256"),
        "id with a brace": jwt.encode({**good, "sub": "driver:d1}x"}, secret, algorithm="HS256"),
        "unknown crit extension": forge(
            {**hs256, "crit": ["x-must-understand"], "x-must-understand": 1},
            good,
            key,
            hashlib.sha256,
        ),
    }


def refused(status: int) -> bool:
    return status in (401, 403)


async def test_every_bad_token_is_refused_on_every_kind_of_route(live: Client) -> None:
    await live.online("d1", BERLIN["lat"], BERLIN["lng"])
    routes = [
        ("GET", "/v1/drivers/d1", None),
        ("POST", "/v1/drivers/d1/location",
         {"lat": BERLIN["lat"], "lng": BERLIN["lng"], "ts": int(time.time() * 1000), "seq": 5}),
        ("GET", "/v1/nearby?lat=52.52&lng=13.405", None),
        ("POST", "/v1/rides", {"pickup": BERLIN}),
    ]  # fmt: skip
    for name, token in bad_tokens(live.secret).items():
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        for method, path, body in routes:
            reply = await live.call(method, path, headers=headers, json=body)
            assert refused(reply.status), (name, path, reply.status, reply.body)
            assert_clean_error(reply, 401, 403)
            if reply.status == 401:
                assert reply.headers.get("WWW-Authenticate", "").startswith("Bearer")
        # The WebSocket's token may come as a query parameter: the same rules apply.
        query = "" if token is None else f"?access_token={token}"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refusal:
            await live.session.ws_connect(f"{live.base}/v1/drivers/d1/stream{query}")
        assert refused(refusal.value.status), name
    # Nothing got through: the driver is where it was, with the seq it had.
    view = (await live.call("GET", "/v1/drivers/d1", "driver:d1")).body
    assert view["seq"] == 1


async def test_schemes_other_than_bearer_are_refused(live: Client) -> None:
    token = live.token("driver:d1")
    for header in (f"Basic {token}", f"Token {token}", token, f"Bearer  {token} x", "Bearer"):
        reply = await live.call("GET", "/v1/drivers/d1", headers={"Authorization": header})
        assert_clean_error(reply, 401)


async def test_a_valid_token_for_someone_else_is_403(live: Client) -> None:
    for who in ("driver:d2", "rider:d1", "fleet:d1"):
        reply = await live.call("GET", "/v1/drivers/d1", who)
        assert_clean_error(reply, 403)
