"""The rate limiter taking several tokens at once: a WebSocket frame of several fixes."""

from __future__ import annotations

from dispatch.entrypoints.ratelimit import RateLimiter


def test_a_cost_is_taken_whole_or_not_at_all() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=1, burst=5, clock=lambda: now[0])
    assert not limiter.allow("d1", 6)  # above the burst: never, and takes nothing
    assert limiter.allow("d1", 4)
    assert not limiter.allow("d1", 2)  # one token left: refused, the token kept
    assert limiter.allow("d1", 1)
    assert not limiter.allow("d1")


def test_retry_after_counts_the_tokens_a_cost_needs() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=2, burst=10, clock=lambda: now[0])
    assert limiter.allow("d1", 10)
    assert (limiter.retry_after_s("d1"), limiter.retry_after_s("d1", 5)) == (1, 3)
    now[0] += 2.5
    assert limiter.retry_after_s("d1", 5) == 0 and limiter.allow("d1", 5)
