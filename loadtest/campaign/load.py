"""The campaign's load: riders asking for rides through two instances (each step retried
with its Idempotency-Key or repeated, as a client would), drivers accepting and driving
each ride to its end, and every driver sending a fix a second (now and then an older one
again, to be refused as stale). Every try is recorded as an Op."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import h3
import orjson

from loadtest.campaign.history import (
    ACCEPT,
    ARRIVE,
    CANCEL,
    COMPLETE,
    FIX,
    REQUEST,
    START,
    Op,
)
from loadtest.scenario.tokens import mint

STEP_DEADLINE_S = 20.0  # a client gives a step this long before giving it up
RETRY_S = 0.2
COMMITTED = {"accepted", "arrived", "in_progress"}
# The centre of one region (an H3 res-5 cell): drivers and pickups stay inside it.
CENTRE = h3.cell_to_latlng(h3.latlng_to_cell(52.52, 13.405, 5))


def spot(rng: random.Random) -> dict[str, float]:
    return {
        "lat": CENTRE[0] + rng.uniform(-2e-3, 2e-3),
        "lng": CENTRE[1] + rng.uniform(-3e-3, 3e-3),
    }


@dataclass
class Reply:
    status: int
    body: dict[str, Any]


@dataclass
class Load:
    urls: list[str]
    secret: str
    session: aiohttp.ClientSession
    t0: float = field(default_factory=time.monotonic)
    ops: list[Op] = field(default_factory=list)
    stopping: bool = False
    _tokens: dict[str, str] = field(default_factory=dict)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _auth(self, who: str) -> dict[str, str]:
        if who not in self._tokens:
            role, ident = who.split(":", 1)
            self._tokens[who] = mint(role, ident, self.secret)
        return {"Authorization": f"Bearer {self._tokens[who]}"}

    async def send(
        self, method: str, path: str, who: str, body: Any = None, headers: Any = None
    ) -> Reply:
        """One try on the next instance in turn; 0: no answer."""
        url = self.urls[next(self._turn) % len(self.urls)]
        hdr = {**self._auth(who), **(headers or {})}
        data = None if body is None else orjson.dumps(body)
        if data is not None:
            hdr["Content-Type"] = "application/json"
        try:
            async with self.session.request(
                method, url + path, data=data, headers=hdr,
                timeout=aiohttp.ClientTimeout(total=5),
            ) as r:  # fmt: skip
                raw = await r.read()
                parsed = orjson.loads(raw) if raw.startswith(b"{") else {}
                return Reply(r.status, parsed if isinstance(parsed, dict) else {})
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return Reply(0, {})

    async def step(self, kind: str, step: str, method: str, path: str, who: str, **kw: Any) -> Op:
        """Tries until an answer that is not a failure (nor a key still in progress), or
        the deadline; every try recorded."""
        started = time.monotonic()
        while True:
            start = self.now()
            r = await self.send(method, path, who, kw.get("body"), kw.get("headers"))
            body = r.body
            ride = body.get("ride_id") or (body.get("id") if kind != FIX else None)
            op = Op(
                kind, step, start, self.now(), r.status,
                error=body.get("error") if r.status >= 400 else None,
                ride_id=kw.get("ride_id") or ride,
                driver_id=kw.get("driver_id") or body.get("driver_id"),
                ride_status=body.get("status") if r.status < 300 else None,
                seq=kw.get("seq"),
                stored_seq=body.get("seq") if r.status == 409 else None,
            )  # fmt: skip
            self.ops.append(op)
            retry = op.failed or (r.status == 409 and op.error == "request_in_progress")
            if not retry or kind == FIX or time.monotonic() - started > STEP_DEADLINE_S:
                return op
            await asyncio.sleep(RETRY_S)


async def online(load: Load, drivers: list[str], rng: random.Random) -> dict[str, int]:
    """Every driver with a first fix and available; answers the seq each one is at."""
    ts = int(time.time() * 1000)
    updates = [{"driver_id": d, **spot(rng), "ts": ts, "seq": 1} for d in drivers]
    r = await load.send("POST", "/v1/locations", "fleet:campaign", {"updates": updates})
    assert r.status == 200, r
    for d in drivers:
        r = await load.send(
            "PUT", f"/v1/drivers/{d}/status", f"driver:{d}", {"status": "available"}
        )
        assert r.status == 200, r
    return dict.fromkeys(drivers, 1)


async def fixes(load: Load, seqs: dict[str, int], rng: random.Random) -> None:
    """A fix a second from every driver; one in ten is an older one sent again."""
    while not load.stopping:
        for d in seqs:
            stale = rng.random() < 0.1 and seqs[d] > 2
            seq = seqs[d] - 2 if stale else seqs[d] + 1
            if not stale:
                seqs[d] = seq
            body = {**spot(rng), "ts": int(time.time() * 1000) - (2000 if stale else 0), "seq": seq}
            asyncio.ensure_future(
                load.step(
                    FIX,
                    f"fix-{d}-{seq}-{stale}",
                    "POST",
                    f"/v1/drivers/{d}/location",
                    f"driver:{d}",
                    body=body,
                    driver_id=d,
                    seq=seq,
                )  # fmt: skip
            )
        await asyncio.sleep(1.0)


async def rider(load: Load, w: int, rng: random.Random) -> None:
    for i in itertools.count():
        if load.stopping:
            return
        who = f"c{w}-{i}"
        asked = await load.step(
            REQUEST, f"req-{who}", "POST", "/v1/rides", f"rider:{who}",
            body={"pickup": spot(rng)}, headers={"Idempotency-Key": f"k-{who}"},
        )  # fmt: skip
        if asked.status != 201 or asked.ride_status != "offered" or not asked.driver_id:
            await asyncio.sleep(0.3)
            continue
        ride, driver = asked.ride_id, asked.driver_id
        assert ride is not None
        if rng.random() < 0.2:
            await _cancel(load, who, ride)
            continue
        acc = await load.step(
            ACCEPT, f"acc-{ride}", "POST", f"/v1/rides/{ride}/accept", f"driver:{driver}",
            ride_id=ride, driver_id=driver,
        )  # fmt: skip
        if acc.status != 200 and not await _holds(load, who, ride, driver):
            await _cancel(load, who, ride)
            continue
        await asyncio.sleep(rng.uniform(0.2, 1.0))
        for kind, path in ((ARRIVE, "arrived"), (START, "start"), (COMPLETE, "complete")):
            done = await load.step(
                kind, f"{kind}-{ride}", "POST", f"/v1/rides/{ride}/{path}", f"driver:{driver}",
                ride_id=ride, driver_id=driver,
            )  # fmt: skip
            if done.status in (403, 404):
                break


async def _holds(load: Load, who: str, ride: str, driver: str) -> bool:
    """After an accept without a clear yes: did it take effect?"""
    r = await load.send("GET", f"/v1/rides/{ride}", f"rider:{who}")
    return (
        r.status == 200 and r.body.get("status") in COMMITTED and r.body.get("driver_id") == driver
    )


async def _cancel(load: Load, who: str, ride: str) -> None:
    await load.step(
        CANCEL, f"cancel-{ride}", "POST", f"/v1/rides/{ride}/cancel", f"rider:{who}",
        ride_id=ride,
    )  # fmt: skip
