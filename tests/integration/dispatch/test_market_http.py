"""The market over HTTP on a real instance: quotes and their lock on a ride request, the
ops view (of one product or of all), its stream and the surge controls (for one product
or all), with their errors and limits."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from h3.api import basic_str as h3

from tests.waiting import eventually

from .conftest import HERE, OPS, THERE, Instance, quote


async def test_a_quote_has_the_documented_shape(market: Instance) -> None:
    await market.fix("d1", HERE["lat"] + 0.003, HERE["lng"])
    q = await quote(market, dropoff=THERE)
    assert set(q) == {"id", "cell", "pickup_eta_s", "surge", "fare", "expires_at", "product"}
    assert q["surge"] == 1.0 and isinstance(q["pickup_eta_s"], int)
    assert q["product"] == "economy"  # the default
    fare = q["fare"]
    assert isinstance(fare, dict)
    assert fare["currency"] == "EUR" and fare["estimate_low"] < fare["estimate_high"]
    assert q["cell"] == h3.latlng_to_cell(HERE["lat"], HERE["lng"], 8)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"pickup": {"lat": 91, "lng": 0}}, 422, "invalid_body"),
        ({"pickup": HERE, "surge": 1.0}, 422, "unknown_field"),
        ({}, 422, "invalid_body"),
    ],
)
async def test_a_bad_quote_request_is_refused(
    market: Instance, body: object, status: int, error: str
) -> None:
    got, data, _ = await market.call("POST", "/v1/quotes", ("rider", "u1"), json=body)
    assert (got, data["error"]) == (status, error)


async def test_only_riders_get_quotes_and_only_so_often(service: Instance) -> None:
    market = service
    status, data, _ = await market.call(
        "POST", "/v1/quotes", ("driver", "d1"), json={"pickup": HERE}
    )
    assert (status, data["error"]) == (403, "forbidden")
    statuses = []
    for _ in range(15):  # burst 10
        s, _, resp = await market.call("POST", "/v1/quotes", ("rider", "u9"), json={"pickup": HERE})
        statuses.append(s)
    assert statuses.count(201) == 10 and statuses[-1] == 429
    assert int(resp.headers["Retry-After"]) >= 1


async def test_the_ops_view_shows_supply_demand_and_surge(market: Instance) -> None:
    await market.fix("d1", HERE["lat"] + 0.0005, HERE["lng"])
    await quote(market, "u1")
    await quote(market, "u2")
    status, view, _ = await market.call(
        "GET", "/v1/market", OPS, params={"lat": HERE["lat"], "lng": HERE["lng"], "radius_m": 800}
    )
    assert status == 200, view
    assert view["res"] == 8 and view["surge_enabled"] is True and view["product"] is None
    assert 0 <= time.time() * 1000 - view["at"] < 5_000  # when the instance read the area
    cell = h3.latlng_to_cell(HERE["lat"], HERE["lng"], 8)
    [mine] = [c for c in view["cells"] if c["id"] == cell]
    assert mine["supply"] == 1 and mine["demand_per_min"] == 2.0
    assert set(mine) == {
        "id", "lat", "lng", "supply", "demand_per_min", "requests", "no_driver_rate",
        "mean_eta_s", "surge",
    }  # fmt: skip


async def test_the_ops_view_of_one_product_counts_its_drivers_and_riders_alone(
    market: Instance,
) -> None:
    await market.fix("d1", HERE["lat"] + 0.0005, HERE["lng"])  # economy (the default)
    await market.fix("d2", HERE["lat"] + 0.0006, HERE["lng"])
    vehicle = {"seats": 6, "products": ["economy", "xl"]}
    status, _, _ = await market.call(
        "PUT",
        "/v1/drivers/d2/status",
        ("driver", "d2"),
        json={"status": "available", "vehicle": vehicle},
    )
    assert status == 200
    await quote(market, "u1")
    await quote(market, "u2", product="xl")
    await quote(market, "u3", product="xl")
    cell = h3.latlng_to_cell(HERE["lat"], HERE["lng"], 8)
    area = {"lat": HERE["lat"], "lng": HERE["lng"], "radius_m": 800}

    async def mine(**params: object) -> dict[str, object]:
        status, view, _ = await market.call("GET", "/v1/market", OPS, params={**area, **params})
        assert status == 200, view
        assert view["product"] == params.get("product")
        [found] = [c for c in view["cells"] if c["id"] == cell]
        return found  # type: ignore[no-any-return]

    every, xl, economy = await mine(), await mine(product="xl"), await mine(product="economy")
    assert (every["supply"], every["demand_per_min"]) == (2, 3.0)
    assert (xl["supply"], xl["demand_per_min"]) == (1, 2.0)
    assert (economy["supply"], economy["demand_per_min"]) == (2, 1.0)
    status, view, _ = await market.call("GET", "/v1/market", OPS, params={**area, "product": "wav"})
    assert status == 200 and not [c for c in view["cells"] if c["id"] == cell]
    # The stream of one product sends that product's cells.
    url = f"{market.url}/v1/market/stream"
    params = {**area, "product": "xl"}
    async with market.session.get(url, params=params, headers=market.auth(*OPS)) as resp:
        assert resp.status == 200
        first = await _event(resp)
        [streamed] = [c for c in first["cells"] if c["id"] == cell]  # type: ignore[attr-defined]
        assert streamed == xl


@pytest.mark.parametrize(
    ("who", "params", "status", "error"),
    [
        (("rider", "u1"), {"lat": 52.5, "lng": 13.4}, 403, "forbidden"),
        (OPS, {"lat": 52.5, "lng": 13.4, "radius_m": 5001}, 422, "invalid_body"),
        (OPS, {"lat": "nan", "lng": 13.4}, 422, "invalid_body"),
        (OPS, {"lng": 13.4}, 422, "invalid_body"),
        (OPS, {"lat": 52.5, "lng": 13.4, "product": "limo"}, 422, "unknown_product"),
        (OPS, {"lat": 52.5, "lng": 13.4, "product": "NOT A NAME"}, 422, "invalid_body"),
    ],
)
async def test_the_ops_view_is_bounded_and_for_ops(
    market: Instance, who: tuple[str, str], params: dict[str, object], status: int, error: str
) -> None:
    got, data, _ = await market.call("GET", "/v1/market", who, params=params)
    assert (got, data["error"]) == (status, error), data
    if "product" in params:
        assert data["field"] == "/product"
    stream = await market.call("GET", "/v1/market/stream", who, params=params)
    assert (stream[0], stream[1]["error"]) == (status, error)


async def test_pins_are_validated(market: Instance) -> None:
    region = h3.cell_to_parent(h3.latlng_to_cell(HERE["lat"], HERE["lng"], 8), 5)
    for body in (
        {"cells": ["zz"], "multiplier": 1.5},
        {"cells": ["8f1f1d489800000"], "multiplier": 1.5},  # res 15: finer than the market
        {"cells": [h3.cell_to_parent(region, 4)], "multiplier": 1.5},  # coarser than a region
        {"cells": [h3.latlng_to_cell(52.5, 13.4, 8)], "multiplier": 3.5},  # above the cap
        {"cells": [], "multiplier": 1.5},
    ):
        status, data, _ = await market.call("POST", "/v1/market/pins", OPS, json=body)
        assert status == 422, (body, data)
    status, data, _ = await market.call(
        "POST", "/v1/market/pins", OPS, json={"cells": [region], "multiplier": None}
    )
    assert (status, data["cells"]) == (200, 343)  # a region stands for its 7^3 cells
    status, _, _ = await market.call(
        "POST", "/v1/market/pins", ("rider", "u1"), json={"cells": [region], "multiplier": None}
    )
    assert status == 403


async def test_a_pin_for_one_product_prices_its_riders_alone(market: Instance) -> None:
    cell = h3.latlng_to_cell(HERE["lat"], HERE["lng"], 8)
    pins = "/v1/market/pins"
    body = {"cells": [cell], "multiplier": 2.0, "product": "xl"}
    status, data, _ = await market.call("POST", pins, OPS, json=body)
    assert (status, data["cells"], data["product"]) == (200, 1, "xl")

    async def pinned() -> bool:
        return (await quote(market, "u1", product="xl"))["surge"] == 2.0

    await eventually(pinned, timeout_s=5)
    assert (await quote(market, "u2"))["surge"] == 1.0  # economy
    # A pin for every product prices the others; XL's own pin still wins.
    body = {"cells": [cell], "multiplier": 1.5}
    status, data, _ = await market.call("POST", pins, OPS, json=body)
    assert (status, data["product"]) == (200, None)

    async def all_pinned() -> bool:
        return (await quote(market, "u3", product="wav"))["surge"] == 1.5

    await eventually(all_pinned, timeout_s=5)
    assert (await quote(market, "u4", product="xl"))["surge"] == 2.0
    status, data, _ = await market.call("POST", pins, OPS, json={**body, "product": "limo"})
    assert (status, data["error"]) == (422, "unknown_product")


async def test_surge_off_quotes_one_and_on_again(market: Instance) -> None:
    for i in range(40):
        await quote(market, f"crowd{i}")

    async def surging() -> bool:
        return (await quote(market, "me"))["surge"] > 1.0

    await eventually(surging, timeout_s=5)
    status, data, _ = await market.call("PUT", "/v1/market/surge", OPS, json={"enabled": False})
    assert (status, data) == (200, {"enabled": False})

    async def calm() -> bool:
        return (await quote(market, "me"))["surge"] == 1.0

    await eventually(calm, timeout_s=5)
    await market.call("PUT", "/v1/market/surge", OPS, json={"enabled": True})
    await eventually(surging, timeout_s=5)


async def test_the_market_stream_sends_a_snapshot_then_changes(market: Instance) -> None:
    await market.fix("d1", HERE["lat"] + 0.0005, HERE["lng"])
    url = f"{market.url}/v1/market/stream"
    params = {"lat": HERE["lat"], "lng": HERE["lng"], "radius_m": 800}
    async with market.session.get(url, params=params, headers=market.auth(*OPS)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        first = await _event(resp)
        assert first["snapshot"] is True and len(first["cells"]) == 1
        await quote(market, "u1")
        changed = await _event(resp)
        assert "snapshot" not in changed
        assert changed["cells"][0]["demand_per_min"] == 1.0


async def test_the_market_stream_is_for_ops(market: Instance) -> None:
    status, _, _ = await market.call(
        "GET", "/v1/market/stream", ("rider", "u1"), params={"lat": 52.5, "lng": 13.4}
    )
    assert status == 403


async def _event(resp: object) -> dict[str, object]:
    lines: list[bytes] = []
    async with asyncio.timeout(5):
        while True:
            line = await resp.content.readline()  # type: ignore[attr-defined]
            if line == b"\n" and lines:
                break
            if line.startswith(b"data: "):
                lines.append(line[6:])
    return orjson.loads(b"".join(lines))  # type: ignore[no-any-return]


async def test_the_openapi_document_has_the_market(market: Instance) -> None:
    _, doc, _ = await market.call("GET", "/openapi.json")
    for path in ("/v1/quotes", "/v1/market", "/v1/market/stream", "/v1/market/pins"):
        assert path in doc["paths"]
