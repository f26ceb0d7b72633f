"""Smoothing across region borders: a spike in a border cell raises its ring-1
neighbours on the other side of the border too, each priced by its own region."""

from __future__ import annotations

from h3.api import basic_str as h3

from dispatch.domain.geo import LatLng
from dispatch.service_layer.market import region_of, ring1
from dispatch.service_layer.quotes import make_quote
from dispatch.service_layer.surge_border import border_of
from dispatch.service_layer.surge_job import surge_round
from tests.unit.dispatch.conftest import PICKUP, World, rider


def test_a_border_pairs_each_side_with_the_cells_it_touches() -> None:
    home = h3.latlng_to_cell(*PICKUP, 5)
    border = border_of(int(home, 16), 5, 8)
    assert border is not None and set(border.outer) == set(border.inner)
    assert len(border.outer) == 6  # a hexagonal region's six neighbours
    for other, cells in border.outer.items():
        assert {int(h3.cell_to_parent(c, 5), 16) for c in cells} == {other}
        inner = border.inner[other]
        assert {h3.cell_to_parent(c, 5) for c in inner} == {home}
        assert all(any(n in inner for n in ring1(c)) for c in cells)
    assert border_of(int(home, 16), 5, 11) is None  # too many cells to walk


async def test_a_spike_at_a_border_raises_the_cells_across_it(world: World) -> None:
    config = world.deps.market.config
    region = region_of(config, h3.latlng_to_cell(*PICKUP, config.res))
    border = border_of(region, config.region_res, config.res)
    assert border is not None
    other, cells = sorted(border.outer.items())[0]
    spike = cells[len(cells) // 2]  # in the other region, touching this one
    across = [n for n in ring1(spike) if region_of(config, n) == region]
    far = [c for c in h3.grid_ring(spike, 2) if region_of(config, c) == region]
    assert across and far
    for i in range(40):  # only the other region counts demand
        await make_quote(world.deps, rider(f"crowd{i}"), LatLng(*h3.cell_to_latlng(spike)), None)
    held: dict[int, int] = {}
    for _ in range(6):
        await surge_round(world.deps, "test", held)
    assert set(held) == {region, other}  # this region woken by its neighbour's demand
    cells_seen = [spike, *across, *far]
    seen = [(c, region_of(config, c)) for c in cells_seen]
    surge = await world.deps.market.store.surge(seen, "economy")
    assert surge[spike] == config.policy.cap
    assert all(surge.get(c, 1.0) > 1.0 for c in across)
    assert not any(c in surge for c in far)
    # Each region holds its own cells only.
    assert set((await world.deps.market.store.computed(region))["economy"]) == set(across)
