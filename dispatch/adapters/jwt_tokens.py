"""Bearer tokens: HS256 JWTs whose subject names the caller (driver:, rider:, fleet:)."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable

import jwt
import orjson
from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_encode

from dispatch.domain.principals import Principal, parse_subject

ALGORITHM = "HS256"  # pinned: a token naming another algorithm (or none) is refused
# The header issue() writes (PyJWT's for HS256), the only one the short path reads.
_HEADER = base64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
_CLAIMS = frozenset(("sub", "iat", "exp"))  # what issue() writes, and all it writes
_BLOCK = 64  # SHA-256's block: HMAC's key padding
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_FROM_URL = bytes.maketrans(b"-_", b"+/")
_TO_URL = bytes.maketrans(b"+/", b"-_")


class InvalidToken(Exception):
    pass


class TokenCodec:
    # A driver app sends the same token with every fix: checking its signature once, then
    # only its expiry, takes the largest cost off a location update. Only tokens that
    # verified are remembered, keyed by the whole string, signature included.
    CACHE_SIZE = 10_000

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes for HS256")
        self._secret = secret
        self._clock = clock
        key = _hmac_key(secret)
        # HMAC-SHA256's inner and outer hashes with the key already in: a token's check
        # copies them (hmac.digest sets the key up anew for every call).
        self._pads = None if key is None else _pads(key)
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def issue(self, principal: Principal, ttl_s: int) -> str:
        now = int(self._clock())
        claims = {"sub": principal.subject, "iat": now, "exp": now + ttl_s}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        return self.verify_until(token)[0]

    def verify_until(self, token: str) -> tuple[Principal, float]:
        """The token's principal and its expiry (epoch seconds)."""
        known = self._verified.get(token)
        if known is None:
            known = self._issued(token) or self._decode(token)
            self._verified[token] = known
            if len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        else:
            self._verified.move_to_end(token)
        # Expiry against our clock, remembered or not (PyJWT's rule: expired once exp <= now).
        if known[1] <= self._clock():
            del self._verified[token]
            raise InvalidToken("Signature has expired")
        return known

    def _issued(self, token: str) -> tuple[Principal, float] | None:
        """A token shaped as issue() makes them (its header, exactly its three claims, an
        integer iat not ahead of the clock) checked by PyJWT's own steps without its
        generic machinery, which prepares the key and reads a header for every token
        (callgrind: 313 thousand instructions a token there, 56 thousand here; every
        ride request comes with a token not seen before). None for any other token or
        any doubt: _decode then gives PyJWT's answer, refusal and message included.
        Accepted here only what _decode would accept, with the same result."""
        head, _, rest = token.partition(".")
        body, dot, signature = rest.partition(".")
        if self._pads is None or head != _HEADER or not dot or "." in signature:
            return None
        try:
            given, payload = _segment(signature), _segment(body)
            if given is None or payload is None:
                return None
            inner, outer = self._pads[0].copy(), self._pads[1].copy()  # HMAC (RFC 2104)
            inner.update(token[: len(head) + 1 + len(body)].encode())
            outer.update(inner.digest())
            if not hmac.compare_digest(given, outer.digest()):
                return None
            # orjson reads what json.loads reads alike (last duplicate key wins, doubles
            # rounded the same) and refuses what it would read otherwise (NaN, integers
            # past 64 bits, UTF-16, lone surrogates): those are left to PyJWT.
            claims = orjson.loads(payload)
            if type(claims) is not dict or claims.keys() != _CLAIMS:
                return None
            sub, iat, exp = claims["sub"], claims["iat"], claims["exp"]
            if type(sub) is not str or type(iat) is not int or type(exp) is not int:
                return None
            if iat > time.time():  # PyJWT's "not yet valid (iat)", by its clock
                return None
            return parse_subject(sub), float(exp)
        except (ValueError, TypeError, OverflowError, RecursionError, orjson.JSONDecodeError):
            return None

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "sub"], "verify_exp": False},
            )
            exp = claims["exp"]
            # json.loads takes NaN and Infinity, which would never expire.
            if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
                raise InvalidToken("exp must be a number of seconds")
            return parse_subject(str(claims["sub"])), float(exp)
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidToken(str(exc)) from exc


def _segment(text: str) -> bytes | None:
    """A segment's bytes if it is canonical unpadded base64url (PyJWT refuses any other
    alphabet and any non-canonical text; it also takes padding, left to it here)."""
    raw = text.encode()
    decoded = binascii.a2b_base64(raw.translate(_FROM_URL) + b"=" * (-len(raw) % 4))
    canonical = binascii.b2a_base64(decoded, newline=False).translate(_TO_URL).rstrip(b"=")
    return decoded if canonical == raw else None


def _pads(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """HMAC-SHA256's inner and outer hashes, the key absorbed (RFC 2104)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


def _hmac_key(secret: str) -> bytes | None:
    """The secret as PyJWT's HS256 uses it; None if PyJWT would refuse it or warn of it
    (then every token takes PyJWT's own path, which does so)."""
    algorithm = HMACAlgorithm(HMACAlgorithm.SHA256)
    try:
        key = algorithm.prepare_key(secret)
    except jwt.PyJWTError:
        return None
    return None if algorithm.check_key_length(key) else key
