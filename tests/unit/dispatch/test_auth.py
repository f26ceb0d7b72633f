"""Bearer tokens: HS256 only, exp required and checked, subjects parsed strictly."""

from __future__ import annotations

import time
import warnings

import jwt
import pytest

from dispatch.adapters.jwt_tokens import InvalidToken, TokenCodec
from dispatch.domain.principals import Principal, Role

SECRET = "unit-test-secret-0123456789-0123456789"


def hs512_with_our_secret() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT finds the key short for HS512; so do we
        return jwt.encode({"sub": "driver:d1", "exp": int(time.time()) + 60}, SECRET, "HS512")


def test_issued_tokens_verify_to_their_principal() -> None:
    codec = TokenCodec(SECRET)
    for p in (
        Principal(Role.DRIVER, "d42"),
        Principal(Role.RIDER, "r7"),
        Principal(Role.FLEET, "gw1"),
    ):
        assert codec.verify(codec.issue(p, 60)) == p


def test_expired_tokens_are_refused() -> None:
    issued_at = time.time() - 120
    old = TokenCodec(SECRET, clock=lambda: issued_at).issue(Principal(Role.DRIVER, "d1"), 60)
    with pytest.raises(InvalidToken):
        TokenCodec(SECRET).verify(old)


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode({"sub": "driver:d1"}, SECRET, "HS256"),  # no exp
        jwt.encode({"exp": int(time.time()) + 60}, SECRET, "HS256"),  # no sub
        jwt.encode({"sub": "driver:d1", "exp": int(time.time()) + 60}, None, "none"),
        hs512_with_our_secret(),  # right key, other algorithm
        jwt.encode({"sub": "driver:d1", "exp": int(time.time()) + 60}, SECRET + "x", "HS256"),
        jwt.encode({"sub": "god:d1", "exp": int(time.time()) + 60}, SECRET, "HS256"),
        jwt.encode({"sub": "driver:{d1}", "exp": int(time.time()) + 60}, SECRET, "HS256"),
        "not.a.token",
        "",
    ],
)
def test_tokens_that_are_not_exactly_right_are_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        TokenCodec(SECRET).verify(token)


def test_a_short_secret_is_refused_up_front() -> None:
    with pytest.raises(ValueError):
        TokenCodec("too-short")
