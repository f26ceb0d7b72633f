"""The vectorised recompute gives the domain's reference multipliers, cell for cell and
product for product (every product in one pass), on random counts, supply, current
multipliers, policies, pins and the switch, around hexagons and pentagons, round after
round on one kept layout."""

from __future__ import annotations

import h3.api.basic_str as h3
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.domain.market import Pin, SurgePolicy, effective, recompute
from dispatch.service_layer.market import ring1
from dispatch.service_layer.surge_cells import CellLayout, Layouts
from dispatch.service_layer.surge_fast import (
    cells_to_supply,
    lay_out,
    next_surge,
    quoted_surge,
    supply_table,
)

HEXAGON = h3.latlng_to_cell(52.52, 13.405, 8)
PENTAGON = h3.get_pentagons(8)[3]
NOW_MS = 1_000_000
PRODUCTS = ("economy", "comfort", "xl")

policies = st.builds(
    SurgePolicy,
    cap=st.sampled_from([1.5, 2.0, 3.0, 5.0]),
    step=st.sampled_from([0.1, 0.05, 0.25]),
    band=st.sampled_from([0.25, 0.3, 0.5]),
    max_move=st.sampled_from([0.25, 0.5, 1.0]),
    sensitivity=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
    min_supply=st.sampled_from([0.5, 1.0, 2.0]),
)


@st.composite
def markets(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """Cells around a hexagon or a pentagon: those that may have demand (within two
    rings of the origin) and those that may have drivers or surge (within four)."""
    origin = draw(st.sampled_from([HEXAGON, PENTAGON]))
    return sorted(h3.grid_disk(origin, 2)), sorted(h3.grid_disk(origin, 4))


def reference_quoted(
    computed: dict[str, float], pins: dict[str, Pin], enabled: bool
) -> dict[str, float]:
    out = {}
    for c in set(computed) | set(pins):
        m = effective(computed.get(c, 1.0), pins.get(c), enabled, NOW_MS)
        if m != 1.0:
            out[c] = m
    return out


@settings(max_examples=150, deadline=None)
@given(markets(), policies, st.data())
def test_the_vectorised_recompute_equals_the_reference(
    market: tuple[list[str], list[str]], policy: SurgePolicy, data: st.DataObject
) -> None:
    inner, outer = market
    layout = CellLayout(ring1)  # kept across the rounds below, as the surge job keeps it
    products = data.draw(st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=3, unique=True))
    multipliers = st.integers(10, int(policy.cap * 10)).map(lambda k: k / 10)
    current: dict[str, dict[str, float]] = {
        p: data.draw(st.dictionaries(st.sampled_from(outer), multipliers, max_size=8))
        for p in products
    }
    for _ in range(data.draw(st.integers(1, 4))):
        # Whole riders per minute (the default window) and whole drivers: as the service.
        demand = {
            p: data.draw(
                st.dictionaries(st.sampled_from(inner), st.integers(0, 60).map(float), max_size=20)
            )
            for p in products
        }
        supply = {
            p: data.draw(
                st.dictionaries(st.sampled_from(outer), st.integers(0, 15).map(float), max_size=30)
            )
            for p in products
        }
        laid = lay_out(layout, demand, current)
        asked = set(laid.snap.cells[cells_to_supply(laid)].tolist())
        # what the index answers: the cells asked for, of every product at once
        near = {p: {c: v for c, v in cells.items() if c in asked} for p, cells in supply.items()}
        got = next_surge(laid, supply_table(laid, near), policy)
        for p in products:
            want = recompute(demand[p], supply[p], current[p], ring1, policy)
            assert got[p] == want
            pins = data.draw(
                st.dictionaries(
                    st.sampled_from(outer),
                    st.builds(
                        Pin, st.sampled_from([1.0, 1.5, 2.5]), st.sampled_from([0, NOW_MS + 1])
                    ),
                    max_size=4,
                )
            )
            enabled = data.draw(st.booleans())
            assert quoted_surge(got[p], pins, enabled, NOW_MS) == reference_quoted(
                got[p], pins, enabled
            )
        current = got


def test_the_supply_asked_for_is_every_cell_within_two_rings_of_demand() -> None:
    far = h3.grid_ring(HEXAGON, 5)[0]
    elsewhere = h3.grid_ring(HEXAGON, 9)[0]
    laid = lay_out(CellLayout(ring1), {"xl": {HEXAGON: 3.0, far: 0.0}, "wav": {elsewhere: 1.0}}, {})
    asked = laid.snap.cells[cells_to_supply(laid)].tolist()
    # every product's demand: one set of cells for the one read of every product's supply
    assert sorted(asked) == sorted(h3.grid_disk(HEXAGON, 2) + h3.grid_disk(elsewhere, 2))


def test_a_pentagon_row_has_five_neighbours() -> None:
    snap = lay_out(CellLayout(ring1), {"xl": {PENTAGON: 1.0}}, {}).snap
    row = snap.index[PENTAGON]
    assert snap.degree[row] == 5 and (snap.nbr[row] >= 0).sum() == 5


def test_layouts_are_kept_per_region_and_bounded() -> None:
    layouts = Layouts(ring1, max_regions=2, max_cells=30)
    first = layouts.get(1)
    assert layouts.get(1) is first
    layouts.get(2)
    layouts.get(3)  # 1 is the least recently used: dropped
    assert layouts.get(1) is not first
    big = layouts.get(4)
    lay_out(big, {"xl": {HEXAGON: 1.0, h3.grid_ring(HEXAGON, 6)[0]: 1.0}}, {})
    assert len(big) == 38 and layouts.get(4) is not big  # two disks of 19
