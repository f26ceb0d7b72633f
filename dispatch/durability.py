"""DISPATCH_DURABLE_WRITES as a value: off, or how many replicas must acknowledge a
critical write and how long to wait for them (dispatch/adapters/durable.py does the
waiting). Pure, so that settings can check it without a Redis client."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPEC = re.compile(r"(\d+):(\d+)")
MAX_REPLICAS = 16
MAX_TIMEOUT_MS = 60_000


@dataclass(frozen=True, slots=True)
class Durability:
    replicas: int  # replicas that must acknowledge (WAIT's numreplicas)
    timeout_ms: int  # WAIT's timeout; past it the write is answered 503


def parse_durability(raw: str) -> Durability | None:
    """`off` (None) or `<replicas>:<timeout_ms>`; ValueError says what is wrong."""
    text = raw.strip().lower()
    if text == "off":
        return None
    m = _SPEC.fullmatch(text)
    if m is None:
        raise ValueError(f"must be off or <replicas>:<timeout_ms> (e.g. 1:200), not {raw!r}")
    replicas, timeout_ms = int(m[1]), int(m[2])
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ValueError(f"replicas must be from 1 to {MAX_REPLICAS}, not {replicas}")
    if not 1 <= timeout_ms <= MAX_TIMEOUT_MS:
        # WAIT 0 would block forever: a request must always end.
        raise ValueError(f"timeout_ms must be from 1 to {MAX_TIMEOUT_MS}, not {timeout_ms}")
    return Durability(replicas, timeout_ms)
