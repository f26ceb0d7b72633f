"""The demo city's products: a mix of vehicles (set for each driver by a fleet call) and
of what riders ask for, so the summary can say how each product was served."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp

# (share of drivers, vehicle): most cars serve economy; comfort and XL cars serve
# economy too (and its upgrades take its rides when none of its own is near).
VEHICLES: list[tuple[float, dict[str, Any]]] = [
    (0.55, {"seats": 4, "products": ["economy"]}),
    (0.15, {"seats": 4, "flags": ["comfort"], "products": ["comfort", "economy"]}),
    (0.20, {"seats": 6, "products": ["economy", "xl"]}),
    (0.10, {"seats": 4, "flags": ["accessible"], "products": ["economy", "wav"]}),
]
# What riders ask for.
ASKED: list[tuple[float, str]] = [(0.70, "economy"), (0.12, "comfort"), (0.12, "xl"), (0.06, "wav")]


def pick(rng: random.Random, weighted: list[tuple[float, Any]]) -> Any:
    return rng.choices([x for _, x in weighted], [w for w, _ in weighted])[0]


def product_for(rng: random.Random) -> str:
    return str(pick(rng, ASKED))


async def assign_vehicles(
    session: aiohttp.ClientSession, base: str, fleet_token: str, driver_ids: list[str],
    rng: random.Random,
) -> None:  # fmt: skip
    """Give every driver a vehicle through the fleet call, before its first fix."""
    headers = {"Authorization": f"Bearer {fleet_token}"}

    async def one(driver_id: str) -> None:
        url = f"{base}/v1/fleet/drivers/{driver_id}/vehicle"
        async with session.put(url, json=pick(rng, VEHICLES), headers=headers) as resp:
            await resp.read()
            resp.raise_for_status()

    await asyncio.gather(*(one(d) for d in driver_ids))
