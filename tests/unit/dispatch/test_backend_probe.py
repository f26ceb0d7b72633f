"""The backend probe before a driver's upgrade: concurrent callers share one ping, a
success is remembered for fresh_s and a failure not at all."""

from __future__ import annotations

import asyncio

import pytest

from dispatch.entrypoints.backend_probe import BackendProbe
from dispatch.service_layer.errors import BackendUnavailable


class Backend:
    def __init__(self) -> None:
        self.pings = 0
        self.answer = asyncio.Event()
        self.fail: Exception | None = None

    async def ping(self) -> None:
        self.pings += 1
        await self.answer.wait()
        if self.fail is not None:
            raise self.fail


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_callers_share_one_ping() -> None:
    backend, probe = Backend(), BackendProbe()
    callers = [asyncio.create_task(probe.check(backend.ping, 5.0)) for _ in range(100)]
    await asyncio.sleep(0)
    backend.answer.set()
    await asyncio.gather(*callers)
    assert backend.pings == 1


async def test_a_success_is_remembered_for_fresh_s_only() -> None:
    backend, clock = Backend(), Clock()
    probe = BackendProbe(fresh_s=1.0, clock=clock)
    backend.answer.set()
    await probe.check(backend.ping, 5.0)
    clock.now += 0.9
    await probe.check(backend.ping, 5.0)
    assert backend.pings == 1
    clock.now += 0.2
    await probe.check(backend.ping, 5.0)
    assert backend.pings == 2


async def test_a_failure_reaches_every_waiting_caller_and_is_not_remembered() -> None:
    backend, probe = Backend(), BackendProbe()
    backend.fail = BackendUnavailable("connection refused")
    callers = [asyncio.create_task(probe.check(backend.ping, 5.0)) for _ in range(3)]
    await asyncio.sleep(0)
    backend.answer.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, BackendUnavailable) for r in results)
    assert backend.pings == 1
    backend.fail = None
    await probe.check(backend.ping, 5.0)  # asked again, and now it answers
    assert backend.pings == 2


async def test_no_answer_within_the_budget_is_unavailable() -> None:
    backend, probe = Backend(), BackendProbe()  # never answers
    with pytest.raises(BackendUnavailable, match="no answer within 0.01 s"):
        await probe.check(backend.ping, 0.01)


async def test_a_cancelled_caller_does_not_cancel_the_others_ping() -> None:
    backend, probe = Backend(), BackendProbe()
    first = asyncio.create_task(probe.check(backend.ping, 5.0))
    second = asyncio.create_task(probe.check(backend.ping, 5.0))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    backend.answer.set()
    await second
    assert first.cancelled() and backend.pings == 1
