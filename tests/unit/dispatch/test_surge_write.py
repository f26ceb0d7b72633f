"""A surge written as its changes (surge_write.surge_patch) leaves the store as a full
write of the same round would: round after round on one growing layout, with products
coming and going, pins for a product or every product (live, lapsed, below 1.0),
pinned cells inside and outside the layout, and the switch turned off and on."""

from __future__ import annotations

import h3.api.basic_str as h3
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.domain.market import Pin
from dispatch.service_layer.market import ring1
from dispatch.service_layer.ports import PinKey, SurgePatch
from dispatch.service_layer.surge_cells import CellLayout
from dispatch.service_layer.surge_fast import lay_out
from dispatch.service_layer.surge_write import Written, full_surge, new_token, surge_patch

CATALOG = ("economy", "comfort", "xl")
HEXAGON = h3.latlng_to_cell(52.52, 13.405, 8)
NEAR = sorted(h3.grid_disk(HEXAGON, 3))
OUTSIDE = h3.grid_ring(HEXAGON, 9)[0]  # never laid out
NOW_MS = 1_000_000
MULTIPLIERS = [1.0, 1.0, 1.0, 1.1, 1.5, 2.0, 3.0]


def fields(quoted: dict[str, dict[str, float]]) -> dict[str, float]:
    """The surge hash a full write leaves (redis_market.put_surge): each product's
    multiplier under "<cell>|<product>", each cell's highest of them under "<cell>"."""
    out = {f"{c}|{p}": m for p, cells in quoted.items() for c, m in cells.items()}
    for cells in quoted.values():
        for c, m in cells.items():
            if m > out.get(c, 0.0):
                out[c] = m
    return out


def applied(stored: dict[str, float], patch: SurgePatch) -> dict[str, float]:
    """What patch_surge leaves of `stored` (market_surge_patch.lua: deletions, then sets)."""
    out = dict(stored)
    for (c, p), m in patch.quoted.items():
        if m is None:
            out.pop(f"{c}|{p}", None)
        else:
            out[f"{c}|{p}"] = m
    for c, top in patch.highest.items():
        if top is None:
            out.pop(c, None)
        else:
            out[c] = top
    return out


pins_strategy = st.dictionaries(
    st.tuples(st.sampled_from([*NEAR[:6], OUTSIDE]), st.sampled_from([None, *CATALOG])),
    st.builds(Pin, st.sampled_from([0.8, 1.0, 1.5, 2.5]), st.sampled_from([0, NOW_MS + 1])),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_patch_leaves_what_a_full_write_leaves(data: st.DataObject) -> None:
    layout = CellLayout(ring1)
    last: Written | None = None
    stored: dict[str, float] = {}
    state: dict[str, dict[str, float]] = {}
    for _ in range(data.draw(st.integers(2, 5))):
        demand_cells = data.draw(st.lists(st.sampled_from(NEAR), min_size=1, max_size=4))
        products = tuple(
            sorted(data.draw(st.lists(st.sampled_from(CATALOG), max_size=3, unique=True)))
        )
        snap = lay_out(layout, {p: dict.fromkeys(demand_cells, 1.0) for p in products}, {}).snap
        n = len(snap.cells)
        computed = np.array(
            [
                data.draw(st.lists(st.sampled_from(MULTIPLIERS), min_size=n, max_size=n))
                for _ in products
            ],
            dtype=np.float64,
        ).reshape(len(products), n)
        pins: dict[PinKey, Pin] = data.draw(pins_strategy)
        enabled = data.draw(st.booleans())
        ours = Written(
            layout,
            "i1",
            1,
            new_token("i1", 1),
            products,
            computed,
            enabled,
            frozenset(c for c, _ in pins),
        )
        want_state, quoted = full_surge(snap, products, computed, pins, enabled, NOW_MS, CATALOG)
        want = fields(quoted)
        if last is not None:
            patch = surge_patch(last, ours, snap, pins, NOW_MS, CATALOG)
            assert patch.since == last.token and patch.token == ours.token
            assert applied(stored, patch) == want
            if patch.computed is None:
                assert want_state == state
            else:
                assert patch.computed == want_state
            # a patch names what moved, and the pinned cells (then or now) alone in full
            pinned = last.pinned | ours.pinned
            for (c, p), m in patch.quoted.items():
                assert c in pinned or stored.get(f"{c}|{p}") != m
            for c, top in patch.highest.items():
                assert c in pinned or stored.get(c) != top
        stored, state, last = want, want_state, ours


def test_nothing_moved_writes_nothing() -> None:
    layout = CellLayout(ring1)
    snap = lay_out(layout, {"xl": {HEXAGON: 1.0}}, {}).snap
    computed = np.full((1, len(snap.cells)), 1.5)
    first = Written(layout, "i1", 1, "t1", ("xl",), computed, True, frozenset())
    again = Written(layout, "i1", 1, "t2", ("xl",), computed.copy(), True, frozenset())
    patch = surge_patch(first, again, snap, {}, NOW_MS, CATALOG)
    assert (patch.quoted, patch.highest, patch.computed) == ({}, {}, None)
    moved = computed.copy()
    moved[0, 3] = 2.0
    third = Written(layout, "i1", 1, "t3", ("xl",), moved, True, frozenset())
    patch = surge_patch(again, third, snap, {}, NOW_MS, CATALOG)
    cell = snap.cells[3]
    assert patch.quoted == {(cell, "xl"): 2.0} and patch.highest == {cell: 2.0}
    assert patch.computed is not None and patch.computed["xl"][cell] == 2.0


def test_a_write_is_followed_only_by_its_own_holder_layout_and_token() -> None:
    layout = CellLayout(ring1)
    w = Written(layout, "i1", 4, "t", (), np.ones((0, 0)), True, frozenset())
    assert w.follows(layout, "i1", 4, "t")
    assert not w.follows(layout, "i1", 4, "other")  # the store holds another write
    assert not w.follows(layout, "i1", 4, None)  # expired, or lost in a failover
    assert not w.follows(layout, "i2", 4, "t")
    assert not w.follows(layout, "i1", 5, "t")
    assert not w.follows(CellLayout(ring1), "i1", 4, "t")  # a layout started afresh
    assert new_token("i1", 4) != new_token("i1", 4)
