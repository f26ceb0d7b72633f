"""dispatch serve settles the cycle collector once started (server.settle_gc): start-up's
objects frozen out of later collections, the young generation collected less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from dispatch.entrypoints import server


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_gc_freezes_start_up_and_raises_the_young_threshold(restored_gc: None) -> None:
    _, middle, old = gc.get_threshold()
    server.settle_gc()
    assert gc.get_threshold() == (server.GC_YOUNG_THRESHOLD, middle, old)
    assert server.GC_YOUNG_THRESHOLD > 700  # CPython's default
    assert gc.get_freeze_count() > 0
    cycle: list[object] = []
    cycle.append(cycle)  # made later: still collected
    del cycle
    assert gc.collect() >= 1
