"""A quote's lock on a ride request over HTTP: the ride keeps the quoted multiplier; a
quote of another rider, for another cell or product, expired or malformed is refused and
nobody is reserved."""

from __future__ import annotations

import pytest
from h3.api import basic_str as h3

from tests.waiting import eventually

from .conftest import HERE, OPS, THERE, Instance, quote


async def test_a_ride_keeps_its_quotes_multiplier(market: Instance) -> None:
    await market.fix("d1", HERE["lat"] + 0.003, HERE["lng"])
    cell = h3.latlng_to_cell(HERE["lat"], HERE["lng"], 8)
    status, _, _ = await market.call(
        "POST", "/v1/market/pins", OPS, json={"cells": [cell], "multiplier": 1.7}
    )
    assert status == 200

    async def pinned() -> bool:
        return (await quote(market))["surge"] == 1.7

    await eventually(pinned, timeout_s=5)
    q = await quote(market)
    status, ride, _ = await market.call(
        "POST", "/v1/rides", ("rider", "u1"), json={"pickup": HERE, "quote_id": q["id"]}
    )
    assert status == 201, ride
    assert ride["status"] == "offered" and ride["surge"] == 1.7


@pytest.mark.parametrize(
    ("who", "pickup", "product", "status", "error"),
    [
        ("u2", HERE, None, 422, "quote_mismatch"),
        ("u1", THERE, None, 422, "quote_mismatch"),
        ("u1", HERE, "xl", 422, "quote_mismatch"),  # the quote priced economy
        ("u1", HERE, None, 409, "quote_expired"),  # an id that was never issued
    ],
)
async def test_a_refused_quote_reserves_nobody(
    market: Instance,
    who: str,
    pickup: dict[str, float],
    product: str | None,
    status: int,
    error: str,
) -> None:
    await market.fix("d1", HERE["lat"] + 0.003, HERE["lng"])
    q = await quote(market)
    qid = q["id"] if status == 422 else "q_" + "0" * 32
    body = {"pickup": pickup, "quote_id": qid, **({"product": product} if product else {})}
    got, data, _ = await market.call("POST", "/v1/rides", ("rider", who), json=body)
    assert (got, data["error"]) == (status, error)
    _, driver, _ = await market.call("GET", "/v1/drivers/d1", ("driver", "d1"))
    assert driver["status"] == "available" and driver["ride_id"] is None


async def test_a_malformed_quote_id_is_invalid(market: Instance) -> None:
    status, data, _ = await market.call(
        "POST", "/v1/rides", ("rider", "u1"), json={"pickup": HERE, "quote_id": "q_../x"}
    )
    assert (status, data["error"], data.get("field")) == (422, "invalid_body", "/quote_id")
