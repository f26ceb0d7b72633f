"""The split list's region function, its scan plans and its refresh (no I/O)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from h3.api import basic_int as h3

from geoindex.errors import BackendUnavailable, InvalidQuery
from geoindex.search import SearchConfig, plan_step
from geoindex.split import Entry, Layout, LayoutCache

PARENT = h3.latlng_to_cell(52.5, 13.4, 5)
INSIDE = h3.cell_to_latlng(h3.cell_to_center_child(PARENT, 9))


def score(lat: float, lng: float) -> int:
    return int(h3.latlng_to_cell(lat, lng, 15)) & (2**52 - 1)


@pytest.mark.parametrize("raw", ["7", "5>7r", "5>7w", "7>5w", "6>7r"])
def test_an_entry_reads_back_as_written(raw: str) -> None:
    assert Entry.decode(raw).encode() == raw


def test_a_migrating_entry_reads_both_and_writes_by_phase() -> None:
    assert Entry(7, 5, writes_new=False).write_res == 5
    assert Entry(7, 5, writes_new=True).write_res == 7
    assert Entry(7, 5).read_res == (5, 7)
    assert Entry(7).read_res == (7,)


def test_the_region_is_the_parent_or_the_finer_cell_inside_a_listed_parent() -> None:
    layout = Layout(5, 1, {PARENT: Entry(7)})
    assert layout.write_region(score(*INSIDE)) == h3.latlng_to_cell(*INSIDE, 7)
    neighbour = h3.cell_to_latlng(h3.grid_ring(PARENT, 1)[0])
    assert layout.write_region(score(*neighbour)) == h3.latlng_to_cell(*neighbour, 5)
    assert Layout(5).write_region(score(*INSIDE)) == PARENT


def test_a_coarse_cell_of_a_split_parent_is_read_in_each_finer_region() -> None:
    layout = Layout(5, 1, {PARENT: Entry(7, 5)})  # migrating: the parent and its children
    child6 = h3.cell_to_center_child(PARENT, 6)
    assert sorted(layout.cell_regions(child6)) == sorted([PARENT, *h3.cell_to_children(child6, 7)])
    fine = h3.cell_to_center_child(PARENT, 9)
    assert layout.cell_regions(fine) == [PARENT, h3.cell_to_parent(fine, 7)]


@pytest.mark.parametrize("res", [10, 8, 6, 5])
def test_a_split_scan_keeps_every_row_and_a_valid_bound_per_region(res: int) -> None:
    config = SearchConfig()
    step = plan_step(*INSIDE, 20_000.0, res, 3, config)
    layout = Layout(5, 1, {PARENT: Entry(7)})
    split = layout.scans(step)
    assert PARENT not in split
    rows = step.scans[PARENT]
    lower = {(lo, hi): i for i, (lo, hi, _) in enumerate(rows.tolist())}
    for region, mine in split.items():
        if h3.get_resolution(region) == 5:
            assert np.array_equal(mine, step.scans[region])
            continue
        assert h3.cell_to_parent(region, 5) == PARENT
        order = [lower[(lo, hi)] for lo, hi, _ in mine.tolist()]
        assert order == sorted(order)
        # Each row keeps its cell's own bound.
        assert np.array_equal(mine, rows[order])
    # Every row of the parent lands in the regions that can hold drivers in it.
    landed = {(lo, hi) for region, m in split.items() for lo, hi, _ in m.tolist()}
    assert {(lo, hi) for lo, hi, _ in rows.tolist()} <= landed


@pytest.mark.parametrize(
    ("parent", "res"),
    [
        ("zz", 6),
        ("8" * 15, 6),
        (h3.int_to_str(PARENT), 8),
        (h3.int_to_str(PARENT), 4),
        (h3.int_to_str(PARENT), True),
        (h3.int_to_str(h3.cell_to_parent(PARENT, 4)), 6),
        (12, 6),
        (h3.int_to_str(PARENT), "6"),
    ],
)
def test_a_change_is_refused_unless_a_region_cell_and_a_close_finer_resolution(
    parent: object, res: object
) -> None:
    with pytest.raises(InvalidQuery):
        Layout(5).check_change(parent, res)  # type: ignore[arg-type]


def test_a_valid_change_names_the_parent_cell() -> None:
    assert Layout(5).check_change(h3.int_to_str(PARENT), 7) == (PARENT, 7)


async def test_the_layout_is_reloaded_only_when_its_version_moved_and_not_too_often() -> None:
    now = [0.0]
    version = [0]
    loads = []

    async def load_version() -> int:
        return version[0]

    async def load() -> Layout:
        loads.append(version[0])
        return Layout(5, version[0], {PARENT: Entry(7)})

    cache = LayoutCache(5, load_version, load, refresh_s=2.0, monotonic=lambda: now[0])
    assert (await cache.get()).version == 0 and loads == []
    version[0] = 3
    now[0] = 1.0
    assert (await cache.get()).version == 0  # checked less than 2 s ago
    now[0] = 2.5
    got = await asyncio.gather(cache.get(), cache.get(), cache.get())
    assert [g.version for g in got] == [3, 3, 3] and loads == [3]  # one shared reload


async def test_a_failed_check_fails_its_callers_and_the_next_call_checks_again() -> None:
    fail = [True]

    async def load_version() -> int:
        if fail[0]:
            raise BackendUnavailable("down")
        return 0

    async def load() -> Layout:
        raise AssertionError("version 0 is the layout it has")

    cache = LayoutCache(5, load_version, load, refresh_s=2.0, monotonic=lambda: 0.0)
    with pytest.raises(BackendUnavailable):
        await cache.get()
    fail[0] = False
    assert (await cache.get()).version == 0
