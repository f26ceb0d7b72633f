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


def _signed(header: bytes, claims: bytes, secret: str = SECRET) -> str:
    signing_input = jwt.utils.base64url_encode(header) + b"." + jwt.utils.base64url_encode(claims)
    sig = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).sign(
        signing_input, secret.encode()
    )
    return (signing_input + b"." + jwt.utils.base64url_encode(sig)).decode()


@pytest.mark.parametrize("secret", [SECRET, SECRET * 3])  # a key longer than a block too
def test_issued_tokens_take_the_short_check(secret: str) -> None:
    codec = TokenCodec(secret)
    token = codec.issue(Principal(Role.RIDER, "r7"), 60)
    assert codec._issued(token) == codec._decode(token)
    assert codec._issued(token) is not None
    assert TokenCodec(secret + "x")._issued(token) is None


_NOW = int(time.time())
_HS256 = b'{"alg":"HS256","typ":"JWT"}'


def _claims(text: str) -> bytes:
    """`text` with NOW, SOON and LATER as the clock's seconds, +60 s and +3600 s."""
    soon, later = _NOW + 60, _NOW + 3600
    return (
        text.replace("LATER", str(later))
        .replace("SOON", str(soon))
        .replace("NOW", str(_NOW))
        .encode()
    )


_RIGHT = _claims('{"sub":"rider:r1","iat":NOW,"exp":SOON}')


@pytest.mark.parametrize(
    "token",
    [
        _signed(_HS256, _RIGHT),
        _signed(_HS256, _claims('{"sub":"rider:r1","iat":LATER,"exp":LATER}')),
        _signed(_HS256, _claims('{"sub":"rider:r1","iat":NOW.5,"exp":SOON}')),
        _signed(_HS256, _claims('{"sub":"rider:r1","iat":"NOW","exp":SOON}')),
        _signed(_HS256, _claims('{"sub":"rider:r1","iat":true,"exp":SOON}')),
        _signed(_HS256, _claims('{"sub":"rider:r1","iat":NOW,"exp":SOON.0}')),
        _signed(_HS256, _claims('{"sub":"rider:r1","iat":NOW,"exp":1e400}')),
        _signed(_HS256, _claims('{"sub":"rider:r1","iat":NOW,"exp":1' + "0" * 400 + "}")),
        _signed(_HS256, _claims('{"sub":"rider:r1","iat":NOW,"exp":SOON,"aud":"x"}')),
        _signed(_HS256, _claims('{"sub":"rider:r1","iat":NOW,"exp":SOON,"nbf":LATER}')),
        _signed(_HS256, _claims('{"sub":7,"iat":NOW,"exp":SOON}')),
        _signed(_HS256, _claims('{"sub":"rider:{r1}","iat":NOW,"exp":SOON}')),
        _signed(_HS256, _claims('{"sub":"rider:r1","sub":"rider:r2","iat":NOW,"exp":SOON}')),
        _signed(_HS256, b'["sub","iat","exp"]'),
        _signed(_HS256, _claims('{"sub":"rider:\\ud800","iat":NOW,"exp":SOON}')),
        _signed(_HS256, _claims('{"sub":"rider:r1","iat":NOW,"exp":NaN}')),
        _signed(_HS256, _claims('{"sub":"rider:r1","iat":NOW,"exp":SOON} ')),
        _signed(_HS256, '{"sub":"rider:r1","iat":1,"exp":2}'.encode("utf-16")),
        _signed(_HS256, _RIGHT, SECRET + "x"),
        _signed(b'{"typ":"JWT","alg":"HS256"}', _RIGHT),
        _signed(_HS256, _RIGHT) + ".x",
        _signed(_HS256, _RIGHT)[:-2],
        _signed(_HS256, _RIGHT) + "=",
        _signed(_HS256, _RIGHT) + "!",
        _signed(_HS256, _RIGHT)[:-1] + "B",  # the same bytes, not the canonical text
        _signed(_HS256, _RIGHT).replace(".", "!.", 2),
    ],
)
def test_the_short_check_answers_as_pyjwt_or_leaves_the_token_to_it(token: str) -> None:
    """Every token the short check accepts, PyJWT accepts with the same result; any
    other is left to PyJWT, whose answer (or refusal) stands."""
    codec = TokenCodec(SECRET)
    try:
        expected: object = codec._decode(token)
    except Exception as exc:  # the refusal itself is compared
        expected = type(exc)
    short = codec._issued(token)
    assert short is None or short == expected
    try:
        got: object = codec.verify_until(token)
    except Exception as exc:
        got = type(exc)
    if isinstance(expected, tuple) and expected[1] <= time.time():
        assert got is InvalidToken  # expired: refused by our own check, as before
    else:
        assert got == expected
