"""The ops stream's market and area layers: every page starts with every cell, area and
queue length, then hears only what changed; areas far from the watched area stay off it."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from h3.api import basic_str as h3

from dispatch.domain.areas import Area, AreaKind
from dispatch.domain.geo import LatLng
from dispatch.domain.products import DEFAULT_CATALOG
from dispatch.entrypoints import ops_layers
from dispatch.entrypoints.ops_feed import OpsFeed, Page
from dispatch.entrypoints.ops_layer_wire import LayerView, cell_columns, cell_row
from dispatch.entrypoints.ops_layers import LayerLook, Layers, _bbox_meets
from dispatch.entrypoints.ops_market_reads import watched_cells
from dispatch.service_layer import ops_view
from dispatch.service_layer.area_index import CompiledArea, compile_area
from dispatch.service_layer.market import CellView, MarketConfig
from geoindex import MemoryGeoIndex

NOW = 1_800_000_000_000
AREA = ops_view.Area(52.52, 13.405, 5_000)
CELL = "881f1d4895fffff"


def square(area_id: str, kind: AreaKind, lat: float, lng: float, half: float) -> CompiledArea:
    ring = (
        (lng - half, lat - half),
        (lng + half, lat - half),
        (lng + half, lat + half),
        (lng - half, lat + half),
        (lng - half, lat - half),
    )
    return compile_area(Area(area_id, kind, area_id.upper(), ((ring,),)))


def cell(surge: float, supply: int = 0, cell_id: str = CELL) -> CellView:
    return CellView(cell_id, LatLng(52.52, 13.405), supply, 1.5, 2, 0.5, None, surge)


def test_a_page_hears_every_layer_first_then_only_what_changed() -> None:
    ber = square("ber", AreaKind.AIRPORT, 52.51, 13.42, 0.004)
    view = LayerView()
    first = view.advance(Layers([cell(1.5)], 3, [ber], {"ber": 2}))
    assert first["market"] == {
        "cells": {
            "id": [CELL], "supply": [0], "demand_per_min": [1.5], "requests": [2],
            "no_driver_rate": [0.5], "surge": [1.5],
        },
        "removed": [],
    }  # fmt: skip
    assert first["areas"]["id"] == ["ber"] and first["areas"]["kind"] == ["airport"]
    # By area, polygon, ring: [longitude, latitude] positions, as GeoJSON has them.
    assert first["areas"]["polygons"][0][0][0][0] == pytest.approx([13.416, 52.506])
    assert first["queues"] == {"ber": 2}
    assert view.snapshot()["market"]["cells"]["surge"] == [1.5]

    assert view.advance(Layers([cell(1.5)], 3, [ber], {"ber": 2})) == {}  # nothing changed
    later = view.advance(Layers([cell(2.0)], 3, [ber], {"ber": 1}))
    assert later == {
        "market": {"cells": {**first["market"]["cells"], "surge": [2.0]}, "removed": []},
        "queues": {"ber": 1},
    }
    gone = view.advance(Layers([], 4, [], {}))
    assert gone["market"] == {"cells": {name: [] for name in later["market"]["cells"]},
                              "removed": [CELL]}  # fmt: skip
    assert gone["areas"]["id"] == [] and gone["queues"] == {}
    assert view.snapshot() == {"market": {"cells": gone["market"]["cells"]},
                               "market_by_product": {}, "areas": gone["areas"],
                               "queues": {}}  # fmt: skip


def test_each_products_cells_travel_on_their_own_and_only_when_they_change() -> None:
    view = LayerView()
    every = [cell(2.0, 3)]
    by_product = {"economy": [cell(1.2, 2)], "xl": [cell(2.0, 1)]}
    first = view.advance(Layers(every, 1, [], {}, by_product))
    assert first["market_by_product"] == {
        product: {"cells": cell_columns(cell_row(c) for c in cells), "removed": []}
        for product, cells in by_product.items()
    }
    assert view.snapshot()["market_by_product"] == {
        product: {"cells": cell_columns(cell_row(c) for c in cells)}
        for product, cells in by_product.items()
    }
    # xl's surge falls: only xl's cell travels; then economy's cell empties.
    later = view.advance(Layers(every, 1, [], {}, {**by_product, "xl": [cell(1.0, 1)]}))
    assert later == {"market_by_product": {"xl": {"cells": cell_columns([cell_row(cell(1.0, 1))]),
                                                  "removed": []}}}  # fmt: skip
    gone = view.advance(Layers(every, 1, [], {}, {"economy": [], "xl": [cell(1.0, 1)]}))
    assert gone == {"market_by_product": {"economy": {"cells": cell_columns([]),
                                                      "removed": [CELL]}}}  # fmt: skip


def test_areas_far_from_the_watched_area_stay_off_the_map() -> None:
    assert _bbox_meets(AREA, square("near", AreaKind.NO_PICKUP, 52.52, 13.405, 0.001))
    assert _bbox_meets(AREA, square("around", AreaKind.SERVICE_AREA, 52.52, 13.405, 1.0))
    assert not _bbox_meets(AREA, square("far", AreaKind.AIRPORT, 52.36, 13.5, 0.01))


class StubLayers:
    def __init__(self) -> None:
        self.now = Layers([cell(1.0, supply=1)], 1, [], {})

    async def look(self, now_ms: int) -> Layers:
        return self.now


def frames(page: Page) -> list[tuple[str, dict[str, Any]]]:
    out = []
    while not page.frames.empty():
        head, _, data = page.frames.get_nowait().partition(b"\ndata: ")
        out.append((head.removeprefix(b"event: ").decode(), orjson.loads(data)))
    return out


async def test_the_feed_sends_the_layers_in_the_same_frames_as_the_drivers() -> None:
    layers = StubLayers()
    deps: Any = SimpleNamespace(
        index=MemoryGeoIndex(clock=lambda: NOW), notifier=None, products=DEFAULT_CATALOG
    )
    feed = OpsFeed(deps, AREA, 1_000, 0.01, now_ms=lambda: NOW, layers=layers)
    with feed.watch() as page:
        await feed.tick()
        [(kind, snap)] = frames(page)
        assert kind == "snapshot" and snap["market"]["cells"]["id"] == [CELL]
        assert snap["drivers"]["id"] == [] and snap["areas"]["id"] == []
        layers.now = Layers([cell(1.8, supply=1)], 2, [], {})
        await feed.tick()
        [(kind, delta)] = frames(page)
        assert kind == "delta" and delta["t"] == NOW
        assert delta["market"]["cells"]["surge"] == [1.8] and "areas" in delta
        await feed.tick()
        assert frames(page) == []
        with feed.watch() as late:  # joins a live feed: every layer at once
            [(kind, snap)] = frames(late)
            assert kind == "snapshot" and snap["market"]["cells"]["surge"] == [1.8]


async def test_a_failing_market_read_leaves_the_layers_as_last_seen(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ber = square("ber", AreaKind.AIRPORT, 52.51, 13.42, 0.004)
    far = square("far", AreaKind.AIRPORT, 40.0, -3.7, 0.004)
    # Every product's cells, and xl's: one read each per look.
    answer: dict[str | None, Any] = {None: [cell(1.5)], "xl": [cell(1.2)]}

    async def area_view(*args: Any) -> list[CellView]:
        *_, product = args
        if isinstance(failure := answer.get("failure"), Exception):
            raise failure
        return list(answer.get(product, []))

    async def order(area_id: str) -> list[str]:
        return ["d1", "d2"]

    monkeypatch.setattr(ops_layers, "area_view", area_view)
    caplog.set_level(logging.INFO, logger=ops_layers.__name__)
    deps: Any = SimpleNamespace(
        market=SimpleNamespace(config=MarketConfig(interval_ms=2_000)),
        index=None,
        areas=SimpleNamespace(version=7, all=lambda: [ber, far]),
        fences=SimpleNamespace(queues=SimpleNamespace(order=order)),
    )
    look = LayerLook(deps, AREA)
    first = await look.look(NOW)
    by_product = {"economy": [], "comfort": [], "xl": [cell(1.2)], "wav": []}
    # The far airport left out.
    assert first == Layers([cell(1.5)], 7, [ber], {"ber": 2}, by_product)
    answer[None] = []
    assert await look.look(NOW + 1_000) == first  # not due: the market is not read again
    answer["failure"] = OSError("backend down")
    assert await look.look(NOW + 2_000) == first  # the read failed: as last seen
    assert await look.look(NOW + 4_000) == first
    del answer["failure"]
    again = await look.look(NOW + 6_000)  # it works again
    assert again.market == [] and again.market_by_product == by_product
    said = [r.getMessage() for r in caplog.records if r.name == ops_layers.__name__]
    assert said == [
        "ops map layers: reading the market or a queue failed",
        "ops map layers: reading the market and the queues again",
    ]


def test_every_market_cell_of_the_area_changing_costs_a_few_kilobytes_a_second() -> None:
    """The worst case: every res-8 cell of the default watched area (10 km) changes at
    every recompute (2 s), for every product together and for each of the default
    catalog's four. Beside 10,000 moving drivers' 76 KB/s it keeps under 200 KB/s."""
    config = MarketConfig()
    watched = ops_view.Area(52.52, 13.405, 10_000)
    cells = [
        h3.latlng_to_cell(c.lat, c.lng, config.res) for c in watched_cells(watched, config.res)
    ]

    def layers(surge: float, supply: int) -> Layers:
        views = [cell(surge, supply, c) for c in cells]
        return Layers(views, 1, [], {}, {p: views for p in config.products})

    view = LayerView()
    view.advance(layers(1.0, 1))
    delta = view.advance(layers(1.3, 12))
    per_s = len(orjson.dumps(delta)) / (config.interval_ms / 1000)
    assert len(delta["market"]["cells"]["id"]) == len(cells) > 400
    assert len(delta["market_by_product"]) == len(config.products) == 4
    assert per_s < 5 * 12_000, per_s
