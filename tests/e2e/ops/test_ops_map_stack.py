"""The ops map across instances: two instances on a Redis Cluster behind nginx; what one
instance is told (a move, a ride, a surge pin, an area) shows on a page following the
other, and through nginx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from h3.api import basic_str as h3

from dispatch.domain.principals import Role
from loadtest.nginx_proc import nginx_available
from loadtest.stack import Stack, StackOptions
from tests.e2e.dispatch.conftest import SECRET
from tests.e2e.ops.conftest import CENTRE, Api, token

pytestmark = [
    pytest.mark.slow,
    pytest.mark.nginx,
    pytest.mark.redis,
    pytest.mark.skipif(
        not nginx_available(), reason="nginx is not installed (scripts/test installs it)"
    ),
]


@pytest.fixture
def stack() -> Iterator[Stack]:
    """Surge recomputed every second (not 2 s): a pin shows on the pages sooner."""
    options = StackOptions(
        instances=2,
        jwt_secret=SECRET,
        tie_to_parent=True,
        extra_env={"DISPATCH_SURGE_INTERVAL_S": "1"},
    )
    with Stack(options) as s:
        yield s


def test_a_change_made_on_one_instance_shows_on_pages_of_the_other_and_through_nginx(
    stack: Stack, open_page: Any
) -> None:
    one, two = stack.instances
    writer = Api(two.url)  # every change goes through instance 2
    writer.fix("d1", *CENTRE)
    ops = token(Role.OPS, "e2e")
    pages = [open_page(f"{one.url}/ops#token={ops}"), open_page(f"{stack.url}/ops#token={ops}")]
    for watched in pages:
        watched.page.wait_for_function("() => window.opsMap?.drawnDrivers() === 1")

    writer.fix("d1", CENTRE[0] + 0.004, CENTRE[1])
    moved_at = time.monotonic()
    where = writer.driver("d1")
    for watched in pages:
        watched.page.wait_for_function(
            "([lng, lat]) => { const p = window.opsMap.driver('d1');"
            " return p && Math.abs(p[0] - lng) < 2e-5 && Math.abs(p[1] - lat) < 2e-5; }",
            arg=[where["lng"], where["lat"]],
            timeout=2_000,
        )
    assert time.monotonic() - moved_at < 2.5  # both pages, one after the other

    status, ride = writer.call(
        "POST",
        "/v1/rides",
        token(Role.RIDER, "r1"),
        {"pickup": {"lat": CENTRE[0], "lng": CENTRE[1]}},
        headers={"Prefer": "wait=8"},  # answered once its window offered it (batched matching)
    )
    assert status == 201 and ride["driver_id"] == "d1"
    for watched in pages:
        watched.page.wait_for_function(
            "id => window.opsMap.state().rides.get(id)?.status === 'offered'"
            " && document.querySelector('[data-testid=drivers-reserved] b').textContent === '1'",
            arg=ride["id"],
        )

    # The market and area layers: a cell pinned and an area stored through instance 2.
    cell = h3.latlng_to_cell(*CENTRE, 8)
    status, _ = writer.call(
        "POST", "/v1/market/pins", ops, {"cells": [cell], "multiplier": 1.5, "ttl_s": 600}
    )
    assert status == 200
    ring = [
        [CENTRE[1] + dx, CENTRE[0] + dy] for dx, dy in ((0, 0), (0.01, 0), (0.01, 0.01), (0, 0))
    ]
    area = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"kind": "no_pickup", "name": "Works"},
    }
    assert writer.call("PUT", "/v1/areas/works", ops, area)[0] == 200
    for watched in pages:
        watched.page.wait_for_function(
            "id => window.opsMap.marketCell(id)?.surge === 1.5"
            " && !!document.querySelector('[data-testid=area-works]')",
            arg=cell,
            timeout=10_000,
        )
        assert watched.errors == []
    pages[1].shot("through-nginx")
