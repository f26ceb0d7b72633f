"""The ops map filtered by product in a real browser: drivers of two products (and some of
both), rides of each, and the side panel's selector narrowing drivers, rides, counters and
the market cells to the product picked, a driver's new vehicle included."""

from __future__ import annotations

from typing import Any

from h3.api import basic_str as h3

from dispatch.domain.principals import Role
from tests.e2e.dispatch.conftest import Served
from tests.e2e.ops.conftest import CENTRE, Api, token
from tests.e2e.ops.test_ops_layers import MARKET_RES
from tests.e2e.ops.test_ops_map import drawn_at, ops_url, spread

OPS = token(Role.OPS, "e2e")
ECONOMY_CAR = {"seats": 4, "products": ["economy"]}
XL_CAR = {"seats": 6, "products": ["xl"]}
BOTH_CAR = {"seats": 6, "products": ["economy", "xl"]}


def set_vehicle(api: Api, driver_id: str, vehicle: dict[str, Any]) -> None:
    status, body = api.call(
        "PUT", f"/v1/drivers/{driver_id}/status", token(Role.DRIVER, driver_id),
        {"status": "available", "vehicle": vehicle},
    )  # fmt: skip
    assert status == 200, body


def serving(api: Api, ids: list[str], product: str) -> set[str]:
    """The drivers the API says serve `product`."""
    return {d for d in ids if product in (api.driver(d)["products"] or [])}


def select(page: Any, product: str) -> None:
    page.select_option("[data-testid=product]", product)


def test_selecting_a_product_shows_only_its_drivers_rides_and_counts(
    service: Served, api: Api, open_page: Any
) -> None:
    ids = [f"d{i:02d}" for i in range(14)]
    vehicles = [ECONOMY_CAR] * 7 + [XL_CAR] * 5 + [BOTH_CAR] * 2
    for i, (driver_id, vehicle) in enumerate(zip(ids, vehicles, strict=True)):
        api.fix(driver_id, *spread(i))
        set_vehicle(api, driver_id, vehicle)
    xl, economy = serving(api, ids, "xl"), serving(api, ids, "economy")
    assert (len(xl), len(economy), len(xl & economy)) == (7, 9, 2)

    watched = open_page(ops_url(service, OPS))
    page = watched.page
    page.wait_for_function("n => window.opsMap?.drawnDrivers() === n", arg=len(ids))
    rides = {}
    for product in ("economy", "xl"):
        status, ride = api.call(
            "POST", "/v1/rides", token(Role.RIDER, f"r-{product}"),
            {"pickup": {"lat": CENTRE[0], "lng": CENTRE[1]}, "product": product},
        )  # fmt: skip
        assert status == 201 and ride["status"] == "offered", ride
        rides[product] = ride
    page.wait_for_function("() => window.opsMap.state().rides.size === 2")
    # The selector lists GET /v1/products, each with how many drivers on the map serve it.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=product]').options.length > 1"
    )
    options = page.eval_on_selector_all(
        "[data-testid=product] option", "os => os.map(o => o.value)"
    )
    status, listed = api.call("GET", "/v1/products", OPS)
    assert status == 200 and options == ["", *(p["name"] for p in listed["products"])]
    assert page.inner_text("[data-testid=drivers-total]") == str(len(ids))
    assert page.inner_text("[data-testid=rides-total]") == "2"
    assert page.inner_text("[data-testid=requests-per-min]") == "0.4"  # two in 5 minutes

    select(page, "xl")
    page.wait_for_function("n => window.opsMap.drawnDrivers() === n", arg=len(xl))
    page.wait_for_timeout(300)  # one more frame drawn
    assert page.inner_text("[data-testid=drivers-total]") == str(len(xl))
    # Each ride's driver holds its offer: shown if it serves xl (the economy ride's may, in
    # a car of both); the economy ride itself is not.
    holding = {ride["driver_id"] for ride in rides.values()}
    assert rides["xl"]["driver_id"] in xl
    assert page.inner_text("[data-testid=drivers-reserved] b") == str(len(holding & xl))
    assert page.inner_text("[data-testid=rides-total]") == "1"
    assert page.inner_text("[data-testid=requests-per-min]") == "0.2"  # xl's one request
    shown = page.evaluate("() => window.opsMap.layer('pickups').props.data.map(r => r.id)")
    assert shown == [rides["xl"]["id"]]
    # Drawn exactly where the API puts them: the xl drivers, and no one at the others' spots.
    for driver_id in ids:
        body = api.driver(driver_id)
        expected = driver_id if driver_id in xl else None
        assert drawn_at(watched, body["lat"], body["lng"]) == expected, driver_id
    assert page.inner_text("[data-testid=market-scope]").startswith("xl only")
    watched.shot("product-xl")

    # A driver changing vehicle mid-shift joins the selection within a look or two.
    set_vehicle(api, "d00", XL_CAR)
    assert serving(api, ids, "xl") == xl | {"d00"}
    page.wait_for_function("n => window.opsMap.drawnDrivers() === n", arg=len(xl) + 1)

    select(page, "economy")
    economy_now = serving(api, ids, "economy")
    page.wait_for_function("n => window.opsMap.drawnDrivers() === n", arg=len(economy_now))
    assert len(economy_now) == len(economy) - 1
    page.wait_for_function(
        "() => document.querySelector('[data-testid=rides-total]').textContent === '1'"
    )
    shown = page.evaluate("() => window.opsMap.layer('pickups').props.data.map(r => r.id)")
    assert shown == [rides["economy"]["id"]]
    watched.shot("product-economy")

    select(page, "")  # all products again
    page.wait_for_function("n => window.opsMap.drawnDrivers() === n", arg=len(ids))
    assert page.inner_text("[data-testid=rides-total]") == "2"
    assert watched.errors == []


def test_the_market_layer_follows_the_product_selected(
    service: Served, api: Api, open_page: Any
) -> None:
    centre_cell = h3.latlng_to_cell(*CENTRE, MARKET_RES)
    group = h3.cell_to_parent(centre_cell, MARKET_RES - 1)
    surging = sorted(h3.cell_to_children(group, MARKET_RES))
    api.fix("d1", *CENTRE)
    set_vehicle(api, "d1", XL_CAR)
    watched = open_page(ops_url(service, OPS))
    page = watched.page
    page.wait_for_function("() => window.opsMap?.drawnDrivers() === 1")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=product]').options.length > 1"
    )
    body = {"cells": [group], "multiplier": 2.0, "ttl_s": 600, "product": "xl"}
    status, pinned = api.call("POST", "/v1/market/pins", OPS, body)
    assert status == 200 and pinned["cells"] == len(surging)
    surge_drawn = (
        "ids => { const l = window.opsMap.layer('market');"
        " const drawn = (l?.props.data ?? []).map((c) => c.id).sort();"
        " return JSON.stringify(drawn) === JSON.stringify(ids); }"
    )
    # Every product together: the highest multiplier in each cell, xl's.
    page.wait_for_function(surge_drawn, arg=surging, timeout=10_000)

    select(page, "xl")
    page.wait_for_function(surge_drawn, arg=surging)
    assert page.evaluate("id => window.opsMap.marketCell(id)", centre_cell)["supply"] == 1
    watched.shot("market-xl")

    select(page, "economy")  # no pin and no riders for economy: no surge to draw
    page.wait_for_function(surge_drawn, arg=[])
    page.click("[data-testid=market-supply]")
    page.wait_for_function(surge_drawn, arg=[])  # and its drivers: none (d1 drives an xl)
    select(page, "xl")
    page.wait_for_function(surge_drawn, arg=[centre_cell])
    assert watched.errors == []
