"""Tokens for load users, signed with the secret the stack gives its instances."""

from __future__ import annotations

import time

import jwt


def mint(role: str, ident: str, secret: str, ttl_s: int = 6 * 3600) -> str:
    now = int(time.time())
    return jwt.encode(
        {"sub": f"{role}:{ident}", "iat": now, "exp": now + ttl_s}, secret, algorithm="HS256"
    )
