"""The rider users: one asks at hot spots with an Idempotency-Key, follows the ride and
cancels some; a city's riders ask at a steady rate, open loop, a new rider each time."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import gevent
import orjson
from gevent.pool import Group
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


class Asking:
    """Asking for a ride and waiting for its offer, shared by both rider users."""

    client: Any
    environment: Any
    auth: dict[str, str]

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

    def _await_match(
        self, ride: dict[str, Any], asked: float, auth: dict[str, str] | None = None
    ) -> Any:
        """Batched matching answers `searching`: the app reads the ride until its window
        offers it (or it ends no_driver after the maximum wait); the match latency is the
        request to the first read that sees the offer."""
        deadline = asked + 30
        while ride["status"] == "searching" and time.monotonic() < deadline:
            gevent.sleep(SEARCH_POLL_S)
            with self.client.get(
                f"/v1/rides/{ride['id']}",
                headers=auth or self.auth,
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


class RiderUser(Asking, FastHttpUser):
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


class CityRiderUser(Asking, FastHttpUser):
    """Ride requests at --rides-per-s, open loop: each one is sent when due, whatever the
    ones before it are doing, by a new rider (a rider may hold two active rides); with
    batched matching the ride is read until offered (match latency). The drivers take it
    from there. One such user in the whole run (fixed_count), wherever locust puts it."""

    fixed_count = 1
    concurrency = 64  # requests in flight at once on this user's HTTP client
    network_timeout = 10.0
    connection_timeout = 5.0
    insecure = False

    def on_start(self) -> None:
        self.rng = random.Random()
        self.gateways = gateways.attach(self, self.rng)
        self.due = time.monotonic()
        self.jobs = Group()  # the requests in flight: stopped with the user

    def on_stop(self) -> None:
        self.jobs.kill(block=False)

    def wait_time(self) -> float:
        # Open loop: the next request is due 1/rate after the one before, whatever that one
        # is still doing; waiting here (not in the task) lets locust stop the user at once.
        return max(0.0, self.due - time.monotonic())

    @task
    def ride(self) -> None:
        rate = float(self.environment.parsed_options.rides_per_s)
        # (a loader more than a second behind drops its backlog rather than bursting it)
        self.due = max(self.due, time.monotonic() - 1.0) + (1 / rate if rate > 0 else 3600)
        if rate > 0:
            self.jobs.spawn(self._one)

    def _one(self) -> None:
        rider = "r" + uuid.uuid4().hex[:16]
        token = mint("rider", rider, self.environment.parsed_options.jwt_secret)
        auth = {"Authorization": f"Bearer {token}"}
        lat, lng = CITY.demand_point(self.rng)
        dlat, dlng = CITY.uniform_point(self.rng)
        body = orjson.dumps(
            {"pickup": {"lat": lat, "lng": lng}, "dropoff": {"lat": dlat, "lng": dlng}}
        )
        headers = {**auth, "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
        asked = time.monotonic()
        ride = self._post_ride(body, headers)
        if ride is not None and ride["status"] == "searching":
            ride = self._await_match(ride, asked, auth)
        if ride is not None:
            record(self.environment, f"ride outcome: {ride['status']}", 0)
