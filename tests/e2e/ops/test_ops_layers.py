"""The ops map's market and area layers in a real browser: a cell group pinned to a surge
through the API shows its hexagons (hover tells a cell's figures, the side panel's toggle
switches the metric), and areas stored through the API appear, an airport with its queue."""

from __future__ import annotations

import io
import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from h3.api import basic_str as h3
from PIL import Image

from dispatch.domain.principals import Role
from tests.e2e.dispatch.conftest import Served, serve
from tests.e2e.ops.conftest import CENTRE, Api, Watched, token
from tests.e2e.ops.test_ops_map import BACKGROUND, ops_url, screen_of

MARKET_RES = 8  # Settings.market_res's default
OPS = token(Role.OPS, "e2e")


@pytest.fixture
def service() -> Iterator[Served]:
    """As conftest's, recomputing surge every second (not 2 s): a pin shows sooner."""
    served = serve("--instance-id", "e2e-ops", env={"DISPATCH_SURGE_INTERVAL_S": "1"})
    yield served
    served.stop(signal.SIGKILL if served.proc.poll() is None else signal.SIGTERM)


def pixel(watched: Watched, x: float, y: float) -> tuple[int, int, int]:
    png = watched.page.locator("#map").screenshot()
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    r, g, b = (int(v) for v in rgb[round(y), round(x)])
    return r, g, b


def box(lat: float, lng: float, half: float) -> list[list[list[float]]]:
    """A square polygon (GeoJSON positions) of 2 x half degrees around a point."""
    ring = [
        [lng - half, lat - half],
        [lng + half, lat - half],
        [lng + half, lat + half],
        [lng - half, lat + half],
        [lng - half, lat - half],
    ]
    return [ring]


def put_area(api: Api, area_id: str, kind: str, name: str, polygon: Any) -> None:
    body = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": polygon},
        "properties": {"kind": kind, "name": name, "dwell_s": 5},
    }
    status, stored = api.call("PUT", f"/v1/areas/{area_id}", OPS, body)
    assert status == 200, stored


def test_a_cell_group_pinned_to_a_surge_shows_its_hexagons(
    service: Served, api: Api, open_page: Any
) -> None:
    centre_cell = h3.latlng_to_cell(*CENTRE, MARKET_RES)
    group = h3.cell_to_parent(centre_cell, MARKET_RES - 1)
    surging = set(h3.cell_to_children(group, MARKET_RES))
    api.fix("d1", *h3.cell_to_latlng(centre_cell))  # some supply in the centre cell
    watched = open_page(ops_url(service, OPS))
    watched.page.wait_for_function("() => window.opsMap?.drawnDrivers() === 1")

    status, pinned = api.call(
        "POST", "/v1/market/pins", OPS, {"cells": [group], "multiplier": 2.0, "ttl_s": 600}
    )
    assert status == 200 and pinned["cells"] == len(surging) == 7
    # The pin takes effect at the region's next recompute, the map's next market look.
    watched.page.wait_for_function(
        "ids => ids.every((id) => window.opsMap.marketCell(id)?.surge === 2)",
        arg=sorted(surging),
        timeout=10_000,
    )
    watched.page.wait_for_timeout(300)  # one more frame drawn
    drawn = {c["id"] for c in watched.page.evaluate("window.opsMap.layer('market').props.data")}
    assert drawn == surging  # surge is the default metric: only the pinned cells

    # Each surging cell is drawn where it is, in the surge colours (red over yellow).
    for cell in sorted(surging)[::3]:
        x, y = screen_of(watched.page, *h3.cell_to_latlng(cell))
        picked = watched.page.evaluate("([x, y]) => window.opsMap.pick('market', x, y)", [x, y])
        assert picked is not None and picked["id"] == cell
    lat, lng = h3.cell_to_latlng(sorted(surging)[1])
    x, y = screen_of(watched.page, lat, lng)
    r, g, b = pixel(watched, x, y)
    assert r > g + 40 and r > b + 40 and (r, g, b) != BACKGROUND
    watched.shot("market-surge")

    # Hovering a cell shows its supply, demand, no-driver rate and surge.
    lat, lng = h3.cell_to_latlng(centre_cell)
    x, y = screen_of(watched.page, lat + 0.0015, lng)  # inside the cell, off its driver
    watched.page.mouse.move(x, y)
    tip = watched.page.locator(".ops-tooltip")
    tip.wait_for()
    text = tip.inner_text()
    for part in (centre_cell, "supply 1 available", "demand 0.0", "no driver –", "surge ×2.0"):
        assert part in text, text
    watched.shot("market-hover")

    # The toggle: supply draws the one cell with a driver; off draws none.
    watched.page.click("[data-testid=market-supply]")
    watched.page.wait_for_function(
        "id => { const l = window.opsMap.layer('market');"
        " return l && l.props.data.length === 1 && l.props.data[0].id === id; }",
        arg=centre_cell,
    )
    watched.shot("market-supply")
    watched.page.click("[data-testid=market-off]")
    watched.page.wait_for_function("() => window.opsMap.layer('market') === undefined")
    assert watched.errors == []


def test_areas_stored_through_the_api_appear_with_the_airport_queue(
    service: Served, api: Api, open_page: Any
) -> None:
    watched = open_page(ops_url(service, OPS))
    watched.page.wait_for_function("() => window.opsMap?.state().frames > 0")

    airport = (CENTRE[0] - 0.012, CENTRE[1] + 0.015)
    no_pickup = (CENTRE[0] + 0.006, CENTRE[1] - 0.01)
    put_area(api, "city", "service_area", "City", box(*CENTRE, 0.04))
    put_area(api, "ber", "airport", "BER", box(*airport, 0.004))
    put_area(api, "hbf", "no_pickup", "Hbf forecourt", box(*no_pickup, 0.003))
    api.fix("q1", *airport)  # an available driver in the airport joins its queue
    watched.page.wait_for_function(
        "() => document.querySelector('[data-testid=queue-ber]')?.textContent === '1 in queue'"
        " && document.getElementById('areas-total').textContent === '3'",
        timeout=5_000,
    )
    watched.page.wait_for_timeout(300)  # one more frame drawn
    for area_id, (lat, lng) in (("ber", airport), ("hbf", no_pickup), ("city", CENTRE)):
        x, y = screen_of(watched.page, lat + 0.002, lng)  # off the queued driver's dot
        picked = watched.page.evaluate("([x, y]) => window.opsMap.pick('areas', x, y)", [x, y])
        assert picked is not None and picked["area"]["id"] == area_id
    x, y = screen_of(watched.page, no_pickup[0] + 0.002, no_pickup[1])
    r, g, b = pixel(watched, x, y)
    assert r > BACKGROUND[0] + 20 and r > g  # the no-pickup area's red tint
    label = "window.opsMap.layer('airport-labels').props"
    assert watched.page.evaluate(f"{label}.getText({label}.data[0])") == "BER: 1 in queue"
    watched.shot("areas")

    # Deleting an area takes it off the map.
    assert api.call("DELETE", "/v1/areas/hbf", OPS)[0] == 204
    watched.page.wait_for_function(
        "() => document.getElementById('areas-total').textContent === '2'"
        " && !document.querySelector('[data-testid=area-hbf]')",
        timeout=5_000,
    )
    watched.shot("areas-after-delete")
    assert watched.errors == []
