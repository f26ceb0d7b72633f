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


def test_a_remembered_token_still_expires() -> None:
    now = [time.time()]
    codec = TokenCodec(SECRET, clock=lambda: now[0])
    token = codec.issue(Principal(Role.DRIVER, "d1"), 60)
    assert codec.verify(token) == Principal(Role.DRIVER, "d1")  # checked, then remembered
    now[0] += 30
    assert codec.verify(token) == Principal(Role.DRIVER, "d1")
    now[0] += 31  # past exp: refused even though its signature was checked before
    with pytest.raises(InvalidToken):
        codec.verify(token)


def test_a_tampered_copy_of_a_remembered_token_is_refused() -> None:
    codec = TokenCodec(SECRET)
    token = codec.issue(Principal(Role.DRIVER, "d1"), 60)
    codec.verify(token)
    head, body, sig = token.split(".")
    forged_body = jwt.utils.base64url_encode(b'{"sub":"driver:d2","exp":9999999999}').decode()
    with pytest.raises(InvalidToken):
        codec.verify(f"{head}.{forged_body}.{sig}")


@pytest.mark.parametrize("exp", ["NaN", "Infinity", '"soon"', "true"])
def test_an_exp_that_is_not_a_finite_number_is_refused(exp: str) -> None:
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    body = jwt.utils.base64url_encode(f'{{"sub":"driver:d1","exp":{exp}}}'.encode())
    signing_input = header + b"." + body
    sig = jwt.utils.base64url_encode(
        jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).sign(
            signing_input, SECRET.encode()
        )
    )
    with pytest.raises(InvalidToken):
        TokenCodec(SECRET).verify((signing_input + b"." + sig).decode())
