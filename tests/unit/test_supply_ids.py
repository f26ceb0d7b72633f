"""Cells named by their H3 ids as a uint64 array (geoindex.supply.id_rows): the numpy
check agrees with h3.is_valid_cell on valid cells of every resolution, pentagons and
their children, and on bit flips and random words; the rows equal named_cells' of the
same cells' hex names."""

from __future__ import annotations

import numpy as np
import pytest
from h3.api import basic_int as h3
from hypothesis import given, settings
from hypothesis import strategies as st

from geoindex import InvalidQuery
from geoindex.supply import MAX_SUPPLY_CELLS, id_rows, named_cells, valid_cell_ids

PENTAGONS = [p for r in range(16) for p in h3.get_pentagons(r)]


@st.composite
def valid_cells(draw: st.DrawFn) -> int:
    res = draw(st.integers(0, 15))
    if draw(st.integers(0, 3)) == 0:  # a pentagon, or one of its children
        cell = draw(st.sampled_from([p for p in PENTAGONS if h3.get_resolution(p) <= res]))
        for r in range(h3.get_resolution(cell) + 1, res + 1):  # down a child at a time
            cell = draw(st.sampled_from(sorted(h3.cell_to_children(cell, r))))
        return int(cell)
    lat = draw(st.floats(-89.9, 89.9))
    lng = draw(st.floats(-180.0, 180.0))
    return int(h3.latlng_to_cell(lat, lng, res))


@st.composite
def words(draw: st.DrawFn) -> int:
    """A valid cell with a bit or a digit changed, or any 64-bit word."""
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.integers(0, 2**64 - 1))
    cell = draw(valid_cells())
    if kind == 1:
        return int(cell ^ (1 << draw(st.integers(0, 63))))
    shift = 3 * draw(st.integers(0, 14))
    return int(cell & ~(7 << shift) | (draw(st.integers(0, 7)) << shift))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(valid_cells(), words()), min_size=1, max_size=60))
def test_the_numpy_check_is_h3s(cells: list[int]) -> None:
    got = valid_cell_ids(np.array(cells, dtype=np.uint64)).tolist()
    assert got == [bool(h3.is_valid_cell(c)) for c in cells]


def test_every_pentagon_child_checks_as_h3_does() -> None:
    # Under a pentagon the first non-zero digit may not be 1 (the deleted sub-sequence).
    cells = [c for p in h3.get_pentagons(2) for c in h3.cell_to_children(p, 4)]
    bent = [c | (1 << 3 * (15 - 3)) for c in cells]  # digit 3 set to 1 (or 1|d)
    ids = np.array(cells + bent, dtype=np.uint64)
    assert valid_cell_ids(ids).tolist() == [bool(h3.is_valid_cell(c)) for c in cells + bent]


@settings(max_examples=100, deadline=None)
@given(st.lists(valid_cells(), max_size=40), st.integers(0, 7))
def test_rows_from_ids_are_named_cells_rows(cells: list[int], region_res: int) -> None:
    cells = [c for c in cells if h3.get_resolution(c) >= region_res]
    rows = id_rows(np.array(cells, dtype=np.uint64), region_res).as_cells()
    assert rows == named_cells([h3.int_to_str(c) for c in cells], region_res)


@pytest.mark.parametrize(
    "ids",
    [
        np.array([0], dtype=np.uint64),
        np.array([h3.latlng_to_cell(52.5, 13.4, 9) ^ 1], dtype=np.uint64),  # digit 15 not 7
        np.array([h3.latlng_to_cell(52.5, 13.4, 3)], dtype=np.uint64),  # coarser than 5
        np.array([h3.latlng_to_cell(52.5, 13.4, 9)], dtype=np.int64),  # not uint64
        np.array([[h3.latlng_to_cell(52.5, 13.4, 9)]], dtype=np.uint64),  # not 1-d
        np.full(MAX_SUPPLY_CELLS + 1, h3.latlng_to_cell(52.5, 13.4, 9), dtype=np.uint64),
        [h3.latlng_to_cell(52.5, 13.4, 9)],  # a list, not an array
    ],
)
def test_bad_ids_are_refused(ids: object) -> None:
    with pytest.raises(InvalidQuery):
        id_rows(ids, 5)  # type: ignore[arg-type]
