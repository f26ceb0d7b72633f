"""The `Prefer` request header (RFC 7240): only `wait=N` is read, the seconds a client
would have a ride request held for its match. Preferences are hints: a malformed or
unknown one is ignored, never an error (RFC 7240, section 2)."""

from __future__ import annotations

import math


def wait_s(header: str | None, cap_s: float) -> float:
    """The `wait` preference in seconds, capped at `cap_s`; 0 without one."""
    if not header:
        return 0.0
    for pref in header.split(","):
        name, _, value = pref.split(";")[0].strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        try:
            seconds = float(value.strip().strip('"'))
        except ValueError:
            return 0.0
        if not math.isfinite(seconds) or seconds <= 0:
            return 0.0
        return min(seconds, cap_s)
    return 0.0
