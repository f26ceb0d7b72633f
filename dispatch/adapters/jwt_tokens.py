"""Bearer tokens: HS256 JWTs whose subject names the caller (driver:, rider:, fleet:)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

import jwt

from dispatch.domain.principals import Principal, parse_subject

ALGORITHM = "HS256"  # pinned: a token naming another algorithm (or none) is refused


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
            known = self._decode(token)
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
