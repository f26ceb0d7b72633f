"""Bearer tokens: HS256 JWTs whose subject names the caller (driver:, rider:, fleet:)."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt

from dispatch.domain.principals import Principal, parse_subject

ALGORITHM = "HS256"  # pinned: a token naming another algorithm (or none) is refused


class InvalidToken(Exception):
    pass


class TokenCodec:
    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes for HS256")
        self._secret = secret
        self._clock = clock

    def issue(self, principal: Principal, ttl_s: int) -> str:
        now = int(self._clock())
        claims = {"sub": principal.subject, "iat": now, "exp": now + ttl_s}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "sub"], "verify_exp": True},
            )
            return parse_subject(str(claims["sub"]))
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidToken(str(exc)) from exc
