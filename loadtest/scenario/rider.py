"""The rider user: asks at hot spots with an Idempotency-Key, follows the ride, cancels some."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import gevent
import orjson
from locust import FastHttpUser, between, task

from loadtest.scenario import gateways, ledger
from loadtest.scenario.city import City
from loadtest.scenario.metrics import record
from loadtest.scenario.tokens import mint

CITY = City()
CANCEL_RATIO = 0.1
IDEMPOTENT_RETRY_RATIO = 0.05
TERMINAL = {"completed", "cancelled", "no_driver"}
SEARCH_POLL_S = 0.25  # batched matching: how often a searching ride is read until matched


class RiderUser(FastHttpUser):
    weight = 1
    wait_time = between(2, 6)
    network_timeout = 10.0
    connection_timeout = 5.0
    insecure = False  # TLS verified (a TLS load run trusts the stack's own certificate)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.gateways = gateways.attach(self, self.rng)
        self.rider_id = "r" + uuid.uuid4().hex[:16]
        token = mint("rider", self.rider_id, self.environment.parsed_options.jwt_secret)
        self.auth = {"Authorization": f"Bearer {token}"}

    @task
    def ride(self) -> None:
        lat, lng = CITY.demand_point(self.rng)
        dlat, dlng = CITY.uniform_point(self.rng)
        body = orjson.dumps(
            {"pickup": {"lat": lat, "lng": lng}, "dropoff": {"lat": dlat, "lng": dlng}}
        )
        headers = {
            **self.auth,
            "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
        }
        asked = time.monotonic()
        ride = self._post_ride(body, headers)
        if ride is not None and ride["status"] == "searching":
            ride = self._await_match(ride, asked)
        if ride is None:
            return
        record(self.environment, f"ride outcome: {ride['status']}", 0)
        if ride["status"] == "no_driver":
            return
        if self.rng.random() < IDEMPOTENT_RETRY_RATIO:
            again = self._post_ride(body, headers, name="/v1/rides (same key again)")
            if again is not None and again["id"] != ride["id"]:
                record(self.environment, "idempotent retry", 0, "a retry made another ride")
        self._follow(ride["id"])

    def _post_ride(self, body: bytes, headers: dict[str, str], name: str = "/v1/rides") -> Any:
        with self.client.post(
            "/v1/rides", data=body.decode(), headers=headers, name=name, catch_response=True
        ) as r:
            if r.status_code not in (200, 201):
                r.failure(f"status {r.status_code}: {r.text[:200] if r.text else ''}")
                return None
            ride = r.json()
            ledger.acknowledged(self.environment, ride["id"])
            if ride["status"] == "offered" and name == "/v1/rides":
                # Immediate matching: find, reserve and offer, all within the request.
                record(self.environment, "match latency", r.request_meta["response_time"])
            return ride

    def _await_match(self, ride: dict[str, Any], asked: float) -> Any:
        """Batched matching answers `searching`: the app reads the ride until its window
        offers it (or it ends no_driver after the maximum wait); the match latency is the
        request to the first read that sees the offer."""
        deadline = asked + 30
        while ride["status"] == "searching" and time.monotonic() < deadline:
            gevent.sleep(SEARCH_POLL_S)
            with self.client.get(
                f"/v1/rides/{ride['id']}",
                headers=self.auth,
                name="/v1/rides/[id] (searching)",
                catch_response=True,
            ) as r:
                if r.status_code != 200:
                    r.failure(f"status {r.status_code}")
                    return None
                ride = r.json()
        if ride["status"] == "offered":
            record(self.environment, "match latency", (time.monotonic() - asked) * 1e3)
        return ride

    def _follow(self, ride_id: str) -> None:
        """Watch the ride to its end (bounded); cancel some before the trip starts."""
        cancel_at = (
            time.monotonic() + self.rng.uniform(1, 8) if self.rng.random() < CANCEL_RATIO else None
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            gevent.sleep(1.0)
            with self.client.get(
                f"/v1/rides/{ride_id}",
                headers=self.auth,
                name="/v1/rides/[id]",
                catch_response=True,
            ) as r:
                if r.status_code != 200:
                    r.failure(f"status {r.status_code}")
                    return
                status = r.json()["status"]
            if status in TERMINAL:
                return
            if (
                cancel_at is not None
                and time.monotonic() >= cancel_at
                and status in ("offered", "accepted", "arrived")
            ):
                with self.client.post(
                    f"/v1/rides/{ride_id}/cancel",
                    headers=self.auth,
                    name="/v1/rides/[id]/cancel",
                    catch_response=True,
                ) as r:
                    if r.status_code == 409:
                        r.success()  # the trip started meanwhile
                    elif r.status_code != 200:
                        r.failure(f"status {r.status_code}")
                return
