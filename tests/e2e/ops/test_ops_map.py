"""The live ops map, as an operator sees it: a real `dispatch serve`, drivers and rides made
through the API, and the page in Debian's chromium."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
from PIL import Image

from dispatch.domain.principals import Role
from tests.e2e.dispatch.conftest import Served
from tests.e2e.ops.conftest import CENTRE, Api, Watched, token

BACKGROUND = (14, 22, 33)  # #0e1621, the plain style's background
AVAILABLE = (46, 204, 113)  # web/ops/src/palette.js
ACCEPTED = (230, 126, 34)


def ops_url(service: Served, bearer: str | None) -> str:
    return f"{service.url}/ops" + (f"#token={bearer}" if bearer else "")


def spread(i: int) -> tuple[float, float]:
    """Driver i's spot: a grid of about 150 m around the watched area's centre."""
    return CENTRE[0] + 0.0014 * (i % 6 - 2.5), CENTRE[1] + 0.0022 * (i // 6 - 2)


def screen_of(page: Any, lat: float, lng: float) -> tuple[float, float]:
    xy = page.evaluate("([lng, lat]) => window.opsMap.map.project([lng, lat])", [lng, lat])
    return xy["x"], xy["y"]


def drawn_at(watched: Watched, lat: float, lng: float) -> str | None:
    x, y = screen_of(watched.page, lat, lng)
    picked = watched.page.evaluate("([x, y]) => window.opsMap.pickDriver(x, y)", [x, y])
    return None if picked is None else str(picked["id"])


def pixels_like(png: bytes, colour: tuple[int, int, int], tolerance: int = 40) -> int:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16).reshape(-1, 3)
    return int(np.all(np.abs(rgb - np.array(colour)) <= tolerance, axis=1).sum())


def test_the_map_draws_every_driver_the_api_reports_and_nothing_leaves_the_machine(
    service: Served, api: Api, open_page: Any
) -> None:
    ids = [f"d{i:02d}" for i in range(24)]
    for i, driver_id in enumerate(ids):
        api.fix(driver_id, *spread(i))
    offline = ids[:3]
    for driver_id in offline:
        status, _ = api.call(
            "PUT", f"/v1/drivers/{driver_id}/status", token(Role.DRIVER, driver_id),
            {"status": "offline"},
        )  # fmt: skip
        assert status == 200
    status, ride = api.call(
        "POST", "/v1/rides", token(Role.RIDER, "r1"),
        {"pickup": {"lat": CENTRE[0], "lng": CENTRE[1]},
         "dropoff": {"lat": CENTRE[0] + 0.01, "lng": CENTRE[1]}},
    )  # fmt: skip
    assert status == 201 and ride["status"] == "offered"
    reported = {d: api.driver(d) for d in ids}
    positioned = [d for d, body in reported.items() if body["lat"] is not None]

    watched = open_page(ops_url(service, token(Role.OPS, "e2e")))
    page = watched.page
    page.wait_for_function("n => window.opsMap?.drawnDrivers() === n", arg=len(positioned))
    page.wait_for_function("() => window.opsMap.state().rides.size === 1")
    page.wait_for_timeout(300)  # one more frame drawn

    assert page.inner_text("#drivers-total") == str(len(positioned))
    assert page.inner_text("[data-testid=drivers-offline] b") == str(len(offline))
    assert page.inner_text("[data-testid=drivers-reserved] b") == "1"
    assert page.inner_text("[data-testid=rides-offered] b") == "1"
    # Every driver is drawn where the API says it is (deck.gl's picking at that spot).
    for driver_id in positioned[::5]:
        body = reported[driver_id]
        assert drawn_at(watched, body["lat"], body["lng"]) == driver_id
    png = page.locator("#map").screenshot()
    assert pixels_like(png, AVAILABLE) > 20 * 20  # not blank: the drivers' dots are there
    assert pixels_like(png, BACKGROUND, 4) < 0.99 * 1000 * 800
    watched.shot("drivers-and-a-ride")

    assert watched.errors == []
    assert all(url.startswith(service.url + "/") for url in watched.requests), watched.requests


def test_a_driver_moved_through_the_api_moves_on_the_page_within_two_seconds(
    service: Served, api: Api, open_page: Any
) -> None:
    api.fix("mover", *CENTRE)
    watched = open_page(ops_url(service, token(Role.OPS, "e2e")))
    before = api.driver("mover")
    watched.page.wait_for_function("() => window.opsMap?.drawnDrivers() === 1")
    watched.page.wait_for_timeout(300)
    assert drawn_at(watched, before["lat"], before["lng"]) == "mover"
    watched.shot("before-the-move")

    api.fix("mover", CENTRE[0] + 0.004, CENTRE[1] + 0.006)  # about 600 m north-east
    moved_at = time.monotonic()
    after = api.driver("mover")
    x, y = screen_of(watched.page, after["lat"], after["lng"])
    watched.page.wait_for_function(
        "([x, y]) => window.opsMap.pickDriver(x, y)?.id === 'mover'", arg=[x, y], timeout=2_000
    )
    took = time.monotonic() - moved_at
    assert took < 2.0
    assert drawn_at(watched, before["lat"], before["lng"]) is None
    # It points where it went: about 42 degrees east of north.
    picked = watched.page.evaluate("([x, y]) => window.opsMap.pickDriver(x, y)", [x, y])
    assert 37 <= picked["heading"] <= 47
    watched.shot("after-the-move")
    assert watched.errors == []


def test_a_page_without_an_ops_token_gets_no_stream(
    service: Served, api: Api, open_page: Any
) -> None:
    api.fix("d1", *CENTRE)
    stream = service.url + "/v1/ops/stream"

    no_token = open_page(ops_url(service, None))
    no_token.page.wait_for_function(
        "() => document.getElementById('connection').textContent.includes('no ops token')"
    )
    assert stream not in no_token.requests  # nothing to present: it does not even ask
    no_token.shot("no-token")

    for role in (Role.RIDER, Role.DRIVER):
        refused = open_page(ops_url(service, token(role, "d1")))
        refused.page.wait_for_function(
            "() => document.getElementById('connection').textContent.includes('refused (403)')"
        )
        assert refused.page.evaluate("window.opsMap.drawnDrivers()") == 0
        refused.shot(f"refused-{role.value}")

    assert api.call("GET", "/v1/ops/stream", None)[0] == 401
    assert api.call("GET", "/v1/ops/stream", "not-a-token")[0] == 401
    for role in (Role.RIDER, Role.DRIVER, Role.FLEET):
        assert api.call("GET", "/v1/ops/stream", token(role, "x1"))[0] == 403


def panel(page: Any) -> tuple[str, str, str]:
    """The side panel's requests a minute, match rate and p95 pickup ETA, as shown."""
    ids = ("requests-per-min", "match-rate", "p95-eta")
    shown = [page.inner_text(f"[data-testid={i}]") for i in ids]
    return shown[0], shown[1], shown[2]


def test_a_requested_ride_shows_its_line_and_changes_colour_when_accepted(
    service: Served, api: Api, open_page: Any
) -> None:
    api.fix("d1", CENTRE[0] + 0.003, CENTRE[1])
    watched = open_page(ops_url(service, token(Role.OPS, "e2e")))
    watched.page.wait_for_function("() => window.opsMap?.drawnDrivers() === 1")
    status, ride = api.call(
        "POST",
        "/v1/rides",
        token(Role.RIDER, "r1"),
        {"pickup": {"lat": CENTRE[0], "lng": CENTRE[1]}},
    )
    assert status == 201 and ride["driver_id"] == "d1"
    link = "window.opsMap.layer('ride-links').props.data[0]?.ride.status"
    watched.page.wait_for_function(f"() => {link} === 'offered'")
    watched.shot("ride-offered")
    status, _ = api.call("POST", f"/v1/rides/{ride['id']}/accept", token(Role.DRIVER, "d1"), {})
    assert status == 200
    watched.page.wait_for_function(
        f"() => {link} === 'accepted'"
        " && document.querySelector('[data-testid=drivers-on_ride] b').textContent === '1'"
    )
    watched.page.wait_for_timeout(300)  # one more frame drawn
    assert pixels_like(watched.page.locator("#map").screenshot(), ACCEPTED) > 30
    # The panel's last five minutes: one request, matched, and its pickup ETA (m:ss).
    eta = f"{ride['eta_s'] // 60}:{ride['eta_s'] % 60:02d}"
    assert panel(watched.page) == ("0.2", "100 %", eta)
    # A second request finds no driver (d1 is on its ride): two requests, half matched,
    # and the p95 ETA still the matched one's.
    status, lonely = api.call(
        "POST",
        "/v1/rides",
        token(Role.RIDER, "r2"),
        {"pickup": {"lat": CENTRE[0], "lng": CENTRE[1]}},
    )
    assert status == 201 and lonely["status"] == "no_driver"
    watched.page.wait_for_function(
        "() => document.querySelector('[data-testid=match-rate]').textContent === '50 %'"
    )
    assert panel(watched.page) == ("0.4", "50 %", eta)
    # Clicking the driver shows its details in the panel.
    driver = api.driver("d1")
    x, y = screen_of(watched.page, driver["lat"], driver["lng"])
    watched.page.locator("#map").click(position={"x": x, "y": y})
    watched.page.wait_for_function(
        "() => document.getElementById('details').textContent.includes('on_ride')"
    )
    assert '"d1"' in watched.page.inner_text("#details")
    watched.shot("ride-accepted")
    assert watched.errors == []
