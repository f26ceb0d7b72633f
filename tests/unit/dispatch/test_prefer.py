"""`Prefer: wait=N` (RFC 7240): read when present, capped, ignored when malformed."""

from __future__ import annotations

import pytest

from dispatch.entrypoints.prefer import wait_s


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, 0.0),
        ("wait=5", 5.0),
        ("respond-async, wait=2.5", 2.5),
        ("WAIT = 3 ; foo=bar", 3.0),
        ('wait="4"', 4.0),
        ("wait=100", 30.0),  # capped
        ("wait=abc", 0.0),
        ("wait=-1", 0.0),
        ("wait=nan", 0.0),
        ("return=minimal", 0.0),
    ],
)
def test_the_wait_preference(header: str | None, expected: float) -> None:
    assert wait_s(header, 30.0) == expected
