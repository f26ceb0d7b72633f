"""CoalescingGeoIndex checks each fix once on its way to the backend: its own upsert
validates and hands the batch to the backend's upsert_valid; upsert_valid (positions the
caller checked at its own edge) is not checked again. Hostile input to upsert is refused
before it joins a batch, and fails no other caller's fix."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from geoindex import (
    InvalidCoordinates,
    InvalidDriverId,
    InvalidTimestamp,
    MemoryGeoIndex,
    Position,
    UpsertResult,
    limits,
)
from geoindex.coalesce import CoalescingGeoIndex


class Recording(MemoryGeoIndex):
    """The embedded backend, noting which entry point each batch came through."""

    def __init__(self) -> None:
        super().__init__(ttl_ms=60_000, clock=lambda: 1_000)
        self.calls: list[tuple[str, int]] = []

    async def upsert(self, positions: Sequence[Position]) -> list[UpsertResult]:
        self.calls.append(("upsert", len(positions)))
        return await super().upsert(positions)

    async def upsert_valid(self, positions: Sequence[Position]) -> list[UpsertResult]:
        self.calls.append(("upsert_valid", len(positions)))
        return await super().upsert_valid(positions)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[Position]:
    """Every Position limits.check_position is asked about."""
    seen: list[Position] = []
    check = limits.check_position

    def counted(p: Position) -> Position:
        seen.append(p)
        return check(p)

    monkeypatch.setattr(limits, "check_position", counted)
    return seen


async def test_upsert_checks_each_fix_once(checks: list[Position]) -> None:
    inner = Recording()
    index = CoalescingGeoIndex(inner)
    fixes = [[Position(f"d{i}", 52.5, 13.4 + i / 1e3, 5, 1)] for i in range(20)]
    results = await asyncio.gather(*(index.upsert(f) for f in fixes))
    assert results == [[UpsertResult.ACCEPTED]] * 20
    assert len(checks) == 20  # once each, here; not again in the backend
    assert {name for name, _ in inner.calls} == {"upsert_valid"}
    assert sum(n for _, n in inner.calls) == 20
    assert len(inner.calls) < 20  # queued behind the first: they shared batches


async def test_upsert_valid_is_not_checked_again(checks: list[Position]) -> None:
    inner = Recording()
    index = CoalescingGeoIndex(inner)
    first = await index.upsert_valid([Position("d1", 52.5, 13.4, 5, 1)])
    stale = await index.upsert_valid([Position("d1", 52.5, 13.4, 5, 1)])
    assert (first, stale) == ([UpsertResult.ACCEPTED], [UpsertResult.ACCEPTED])  # a retry
    assert checks == []
    assert inner.calls == [("upsert_valid", 1), ("upsert_valid", 1)]
    state = await index.get("d1")
    assert state is not None and (state.ts_ms, state.seq) == (5, 1)
    assert await index.upsert_valid([]) == []


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (Position("d", 91.0, 0.0, 1), InvalidCoordinates),
        (Position("d", float("nan"), 0.0, 1), InvalidCoordinates),
        (Position("a{b}", 0.0, 0.0, 1), InvalidDriverId),
        (Position("d\n", 0.0, 0.0, 1), InvalidDriverId),
        (Position("d", 0.0, 0.0, -1), InvalidTimestamp),
        (Position("d", 0.0, 0.0, 1, True), InvalidTimestamp),
    ],
)
async def test_hostile_input_is_refused_alone(bad: Position, error: type[Exception]) -> None:
    inner = Recording()
    index = CoalescingGeoIndex(inner)
    good = Position("ok", 52.5, 13.4, 5, 1)
    outcomes = await asyncio.gather(
        index.upsert([good]), index.upsert([bad]), return_exceptions=True
    )
    assert outcomes[0] == [UpsertResult.ACCEPTED]
    assert isinstance(outcomes[1], error)
    assert inner.calls == [("upsert_valid", 1)]  # the bad fix never reached the backend
    assert await index.get("ok") is not None and await index.get("d") is None
