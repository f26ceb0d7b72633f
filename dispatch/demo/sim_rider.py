"""A simulated rider app: asks for a fare quote, requests a ride locking the quote in
(with an Idempotency-Key), then follows it on the server-sent event stream until it
ends; a few riders cancel. Some ask at the airport; a few outside the service area (and
are refused) or inside the no-pickup forecourt (and ask again where the refusal says)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

import aiohttp
import orjson

from dispatch.demo.areas import rider_pickup
from dispatch.demo.city import City
from dispatch.demo.products import product_for
from dispatch.demo.stats import Stats

CANCEL_SHARE = 0.04


async def ride_once(
    base: str, token: str, session: aiohttp.ClientSession, city: City, rng: random.Random,
    stats: Stats,
) -> None:  # fmt: skip
    auth = {"Authorization": f"Bearer {token}"}
    # Batched matching answers once the ride's window has matched it (at most 10 s).
    headers = {**auth, "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=10"}
    where, pickup = rider_pickup(city, rng)
    dropoff = city.point_near(rng, pickup, 400, 1_500)
    product = product_for(rng)
    body: dict[str, Any] = {
        "pickup": {"lat": pickup.lat, "lng": pickup.lng},
        "dropoff": {"lat": dropoff.lat, "lng": dropoff.lng},
        "product": product,
    }
    async with session.post(f"{base}/v1/quotes", json=body, headers=auth) as resp:
        quote = orjson.loads(await resp.read())
        if resp.status == 201:
            stats.quoted(quote["cell"], quote["surge"])
            body["quote_id"] = quote["id"]  # the ride keeps the quoted price
        else:
            stats.errors += 1
    stats.requests += 1
    stats.asked(product)
    stats.airport_requests += where == "airport"
    started = time.perf_counter()
    async with session.post(f"{base}/v1/rides", json=body, headers=headers) as resp:
        ride = orjson.loads(await resp.read())
    if resp.status == 422 and ride["error"] == "pickup_not_allowed" and ride["nearest_allowed"]:
        # The app offers the allowed point the error names; the rider takes it.
        stats.moved_pickups += 1
        body["pickup"] = ride["nearest_allowed"]
        body.pop("quote_id", None)  # quoted for the refused pickup
        headers["Idempotency-Key"] = uuid.uuid4().hex
        async with session.post(f"{base}/v1/rides", json=body, headers=headers) as resp:
            ride = orjson.loads(await resp.read())
    if resp.status == 422 and ride["error"] == "outside_service_area" and where == "outside":
        stats.refused_outside += 1
        return
    if resp.status != 201:
        stats.errors += 1
        return
    if ride["status"] == "no_driver":
        stats.no_driver += 1
        return
    if ride["status"] == "offered":  # else still searching: its events tell what follows
        stats.offered += 1
        stats.match_latency_s.append(time.perf_counter() - started)
    await follow(base, token, session, ride, started, rng, stats)


async def follow(
    base: str, token: str, session: aiohttp.ClientSession, ride: dict[str, Any],
    started: float, rng: random.Random, stats: Stats,
) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    cancel_task = None
    if rng.random() < CANCEL_SHARE:
        cancel_task = asyncio.create_task(cancel_later(base, headers, session, ride["id"], rng))
    accepted = False
    try:
        url = f"{base}/v1/rides/{ride['id']}/events"
        async with session.get(url, headers=headers) as resp:
            async for line in resp.content:
                if not line.startswith(b"data: "):
                    continue
                now = orjson.loads(line[6:])
                if now["status"] == "accepted" and not accepted:
                    accepted = True
                    stats.accepted += 1
                    stats.matched(now["product"])
                    stats.accept_latency_s.append(time.perf_counter() - started)
                    stats.pickup_m.append(now["pickup_distance_m"])
                    if now["eta_s"] is not None:
                        stats.pickup_eta_s.append(now["eta_s"])
                elif now["status"] == "no_driver":
                    stats.no_driver += 1
                elif now["status"] == "cancelled":
                    stats.cancelled += 1
    finally:
        if cancel_task is not None:
            cancel_task.cancel()


async def cancel_later(
    base: str, headers: dict[str, str], session: aiohttp.ClientSession, ride_id: str,
    rng: random.Random,
) -> None:  # fmt: skip
    await asyncio.sleep(rng.uniform(0.5, 6.0))
    async with session.post(f"{base}/v1/rides/{ride_id}/cancel", headers=headers) as resp:
        await resp.read()
