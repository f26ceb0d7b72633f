"""A rate limiter remembers a bounded number of keys, forgetting the longest idle first."""

from __future__ import annotations

import pytest

from dispatch.entrypoints import ratelimit
from dispatch.entrypoints.ratelimit import RateLimiter


def test_the_longest_idle_key_is_forgotten_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_TRACKED", 3)
    now = [0.0]
    limiter = RateLimiter(1.0, 2, clock=lambda: now[0])
    for key in ("a", "b", "c"):
        assert limiter.allow(key, 2)  # each spends its whole burst
    assert limiter.allow("a") is False  # used again: now the most recent
    assert limiter.allow("d", 2)  # a fourth key: "b", idle longest, is forgotten
    assert limiter.allow("b", 2)  # a full bucket again (forgotten); "c" goes now
    assert limiter.allow("a") is False and limiter.allow("d") is False
    assert limiter.allow("c", 2)


def test_a_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert limiter.allow("k", 3) and not limiter.allow("k")
    now[0] = 0.5  # one token back
    assert limiter.allow("k") and not limiter.allow("k")
    now[0] = 100.0  # never more than the burst
    assert limiter.allow("k", 3) and not limiter.allow("k")
    assert limiter.retry_after_s("k") == 1
