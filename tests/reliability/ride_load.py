"""A bounded ride workload for fault tests, with client-side books: every ride answered
201, every accept answered 200, every error, and when each happened.

Each worker loops: a rider requests a ride (with an Idempotency-Key); if offered, the
driver accepts about one in three; a few accepted rides stay active (they are what the
double-assignment check looks at afterwards), every other ride is cancelled by its
rider, so the drivers come back and reservations keep flowing."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .conftest import Client


@dataclass
class Books:
    started: float = field(default_factory=time.monotonic)
    rides: dict[str, dict[str, Any]] = field(default_factory=dict)  # answered 201
    accepted: set[str] = field(default_factory=set)  # accept answered 200, left active
    cancelled: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    error_times: list[float] = field(default_factory=list)
    ok_times: list[float] = field(default_factory=list)
    requests: int = 0

    def ok(self) -> None:
        self.requests += 1
        self.ok_times.append(time.monotonic())

    def error(self, what: str) -> None:
        self.requests += 1
        self.errors[what] += 1
        self.error_times.append(time.monotonic())

    @property
    def offered(self) -> int:
        return sum(r["status"] == "offered" for r in self.rides.values())


async def _step(client: Client, books: Books, method: str, path: str, who: str, **kw: Any) -> Any:
    try:
        reply = await client.call(method, path, who, timeout=10, **kw)
    except (aiohttp.ClientError, TimeoutError) as exc:
        books.error(type(exc).__name__)
        return None
    if (
        reply.status >= 500
        or reply.status == 409
        and reply.body.get("error") != "invalid_transition"
    ):
        code = reply.body.get("error") if isinstance(reply.body, dict) else None
        books.error(f"{reply.status} {code}" if reply.status == 409 else str(reply.status))
        return None
    books.ok()
    return reply


async def _worker(
    client: Client, books: Books, n: int, stop_at: float, keep_active: list[int], pickup: Any
) -> None:
    for i in itertools.count():
        if time.monotonic() >= stop_at:
            return
        rider = f"w{n}-{i}"
        reply = await _step(
            client,
            books,
            "POST",
            "/v1/rides",
            f"rider:{rider}",
            json={"pickup": pickup(n, i)},
            headers={"Idempotency-Key": f"k-{rider}"},
        )
        if reply is None or reply.status != 201:
            await asyncio.sleep(0.05)
            continue
        ride = reply.body
        books.rides[ride["id"]] = ride
        if ride["status"] != "offered":
            continue
        if i % 3 == 0 and keep_active[0] > 0:
            done = await _step(
                client,
                books,
                "POST",
                f"/v1/rides/{ride['id']}/accept",
                f"driver:{ride['driver_id']}",
            )
            if done is not None and done.status == 200:
                keep_active[0] -= 1
                books.accepted.add(ride["id"])
                continue
        done = await _step(
            client, books, "POST", f"/v1/rides/{ride['id']}/cancel", f"rider:{rider}"
        )
        if done is not None and done.status == 200:
            books.cancelled.add(ride["id"])


async def run_load(
    clients: list[Client],
    duration_s: float,
    workers: int,
    pickup: Any,
    keep_active: int = 60,
) -> Books:
    books = Books()
    stop_at = time.monotonic() + duration_s
    budget = [keep_active]
    await asyncio.gather(
        *(
            _worker(clients[n % len(clients)], books, n, stop_at, budget, pickup)
            for n in range(workers)
        )
    )
    return books
