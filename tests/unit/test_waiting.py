"""The test suite's own waiting helper: it returns as soon as the condition holds, and
fails at its deadline naming what it waited for and what it last saw."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.waiting import eventually, wait_until


async def test_eventually_returns_the_first_true_answer_of_a_sync_or_async_check() -> None:
    calls = 0

    def third_time() -> int:
        nonlocal calls
        calls += 1
        return calls if calls >= 3 else 0

    async def at_once() -> str:
        return "ready"

    assert await eventually(third_time) == 3
    assert await eventually(at_once) == "ready"


async def test_eventually_counts_a_failed_assertion_as_not_yet() -> None:
    started = time.monotonic()

    def after_50_ms() -> bool:
        assert time.monotonic() - started > 0.05, "too early"
        return True

    assert await eventually(after_50_ms)


async def test_eventually_fails_at_its_deadline_naming_the_condition() -> None:
    async def never() -> list[int]:
        """the queue to fill"""
        return []

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"waited 0.1 s for the queue to fill; last: \[\]"):
        await eventually(never, timeout_s=0.1)
    assert time.monotonic() - started < 1.0

    def wrong() -> None:
        assert sum([1, 1]) == 3, "not three"

    with pytest.raises(AssertionError, match="for the sum; last check failed: not three"):
        await eventually(wrong, timeout_s=0.05, what="the sum")


async def test_eventually_cancels_a_check_still_running_at_the_deadline() -> None:
    async def hangs() -> bool:
        await asyncio.sleep(60)
        return True

    started = time.monotonic()
    with pytest.raises(AssertionError, match="waited 0.1 s for hangs"):
        await eventually(hangs, timeout_s=0.1)
    assert time.monotonic() - started < 1.0


async def test_a_timeout_inside_the_check_is_not_taken_for_the_deadline() -> None:
    async def times_out() -> bool:
        raise TimeoutError("the check's own")

    with pytest.raises(TimeoutError, match="the check's own"):
        await eventually(times_out, timeout_s=5)


def test_wait_until_is_the_same_for_synchronous_tests() -> None:
    started = time.monotonic()
    assert wait_until(lambda: time.monotonic() - started > 0.05)
    with pytest.raises(AssertionError, match="waited 0.05 s for nothing; last: False"):
        wait_until(lambda: False, timeout_s=0.05, what="nothing")
