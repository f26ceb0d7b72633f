"""The driver user: positions along a path (WebSocket or HTTP), offers, the ride to its end."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import gevent
import orjson
import websocket
from gevent.pool import Group
from locust import FastHttpUser, task

from loadtest.scenario import gateways
from loadtest.scenario.city import City, DriverPath
from loadtest.scenario.metrics import record
from loadtest.scenario.tokens import mint

CITY = City()
ACCEPT_RATIO = 0.9


def _now_ms() -> int:
    return int(time.time() * 1000)


class DriverUser(FastHttpUser):
    weight = 4
    network_timeout = 10.0
    connection_timeout = 5.0
    insecure = False  # TLS verified (a TLS load run trusts the stack's own certificate)

    def wait_time(self) -> float:
        # Open loop: each fix is due one interval after the one before, whenever that was
        # sent; a fix's ack is timed from when it was due, so a load process running late
        # shows in the figures instead of hiding in a later send.
        if self.due is None:
            return self.interval  # no socket yet: try again in an interval
        return max(0.0, self.due - time.perf_counter())

    def on_start(self) -> None:
        self.rng = random.Random()
        self.gateways = gateways.attach(self, self.rng)
        self.driver_id = "d" + uuid.uuid4().hex[:16]
        token = mint("driver", self.driver_id, self.environment.parsed_options.jwt_secret)
        self.auth = {"Authorization": f"Bearer {token}"}
        self.path = DriverPath(CITY, self.rng)
        self.seq = 0
        self.last_move = time.monotonic()
        self.offers: dict[str, float] = {}  # ride id -> when the offer arrived
        self.handled: set[str] = set()
        self.pending_acks: dict[int, float] = {}
        self.ws: websocket.WebSocket | None = None
        self.receiver: gevent.Greenlet | None = None
        self.jobs = Group()  # offers answered and rides driven: stopped with the user
        self.mode = self.environment.parsed_options.driver_mode
        self.interval = float(self.environment.parsed_options.ping_s)
        self.due: float | None = None  # when the next fix is due (perf_counter)

    def on_stop(self) -> None:
        self.jobs.kill(block=False)
        if self.receiver is not None:
            self.receiver.kill(block=False)
        ws, self.ws = self.ws, None  # closed here: its receiver must not count a drop
        if ws is not None:
            ws.close()

    # --- positions -------------------------------------------------------------------
    @task
    def ping(self) -> None:
        if self.mode == "ws" and self.ws is None and not self._ws_connect():
            self.due = None
            return
        due = self.due if self.due is not None else time.perf_counter()
        self.due = due + self.interval
        now = time.monotonic()
        lat, lng = self.path.step(now - self.last_move)
        self.last_move = now
        self.seq += 1
        fix = {"lat": lat, "lng": lng, "ts": _now_ms(), "seq": self.seq, "speed": self.path.speed}
        if self.mode == "ws":
            self._unanswered(due)
            self._ws_location(fix, due)
        else:
            self._http_location(fix)

    def _unanswered(self, now: float) -> None:
        """A fix still without its ack an interval after it was due is a failure (its
        late ack, if one comes, is then not timed)."""
        for seq, due in list(self.pending_acks.items()):
            if now - due >= self.interval:
                del self.pending_acks[seq]
                self.environment.events.request.fire(
                    request_type="WS",
                    name="location unanswered",
                    response_time=(now - due) * 1e3,
                    response_length=0,
                    exception=TimeoutError(f"no ack within {self.interval:g} s"),
                    context={},
                )

    def _http_location(self, fix: dict[str, Any]) -> None:
        self.client.post(
            f"/v1/drivers/{self.driver_id}/location",
            data=orjson.dumps(fix).decode(),
            headers={**self.auth, "Content-Type": "application/json"},
            name="/v1/drivers/[id]/location",
        )
        # Without a stream, a driver learns of an offer by looking at itself.
        with self.client.get(
            f"/v1/drivers/{self.driver_id}",
            headers=self.auth,
            name="/v1/drivers/[id]",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")
                return
            me = r.json()
        ride_id = me.get("ride_id")
        if me.get("status") == "reserved" and ride_id and ride_id not in self.handled:
            self.handled.add(ride_id)
            self.offers[ride_id] = time.monotonic()
            self.jobs.spawn(self._answer_over_http, ride_id)

    def _ws_location(self, fix: dict[str, Any], due: float) -> None:
        assert self.ws is not None
        self.pending_acks[fix["seq"]] = due
        try:
            self.ws.send(orjson.dumps({"type": "location", **fix}).decode())
        except (websocket.WebSocketException, OSError) as exc:
            record(self.environment, "ws send", 0, f"{type(exc).__name__}: {exc}")
            self.ws = None

    def _ws_connect(self) -> bool:
        base = self.gateways.url.replace("http", "ws", 1)
        url = base + f"/v1/drivers/{self.driver_id}/stream"
        start = time.perf_counter()
        try:
            ws = websocket.create_connection(
                url, header=[f"Authorization: {self.auth['Authorization']}"], timeout=10
            )
        except (websocket.WebSocketException, OSError) as exc:
            if isinstance(exc, ConnectionError):  # the gateway itself is gone
                self.gateways.failover()
            self.environment.events.request.fire(
                request_type="WS",
                name="connect",
                response_time=(time.perf_counter() - start) * 1e3,
                response_length=0,
                exception=exc,
                context={},
            )
            return False
        self.environment.events.request.fire(
            request_type="WS",
            name="connect",
            response_time=(time.perf_counter() - start) * 1e3,
            response_length=0,
            exception=None,
            context={},
        )
        ws.settimeout(None)
        self.ws = ws
        self.pending_acks.clear()
        self.receiver = gevent.spawn(self._receive, ws)
        return True

    def _receive(self, ws: websocket.WebSocket) -> None:
        while True:
            try:
                raw = ws.recv()
            except (websocket.WebSocketException, OSError) as exc:
                if self.ws is ws:  # not closed by this user: the service or nginx dropped it
                    self.ws = None  # reconnect on the next ping
                    record(self.environment, "ws dropped", 0, f"{type(exc).__name__}: {exc}")
                return
            if not raw:
                continue
            msg = orjson.loads(raw)
            kind = msg.get("type")
            if kind == "ack":
                sent = self.pending_acks.pop(msg.get("seq"), None)
                if sent is not None:
                    stale = msg.get("status") != "accepted"
                    self.environment.events.request.fire(
                        request_type="WS",
                        name="location ack",
                        response_time=(time.perf_counter() - sent) * 1e3,
                        response_length=len(raw),
                        exception=RuntimeError(f"ack {msg.get('status')}") if stale else None,
                        context={},
                    )
            elif kind == "offer":
                ride_id = msg["ride"]["id"]
                if ride_id not in self.handled:  # an offer is sent again after a reconnect
                    self.handled.add(ride_id)
                    self.offers[ride_id] = time.monotonic()
                    self.jobs.spawn(self._answer_over_ws, ride_id)
            elif kind == "ride":
                self._on_ride(msg["ride"])
            elif kind == "error":
                # An answer the rider's cancel or the offer's expiry beat is a race lost,
                # as the HTTP answer's 409 is: not a failure.
                error = str(msg.get("error"))
                lost = error in ("invalid_transition", "offer_expired")
                record(self.environment, "ws error frame", 0, None if lost else error)

    # --- offers and rides ------------------------------------------------------------
    def _think(self) -> None:
        gevent.sleep(self.rng.uniform(0.3, 1.5))

    def _answer_over_ws(self, ride_id: str) -> None:
        self._think()
        verb = "accept" if self.rng.random() < ACCEPT_RATIO else "decline"
        if self.ws is not None:
            try:
                self.ws.send(orjson.dumps({"type": verb, "ride_id": ride_id}).decode())
            except (websocket.WebSocketException, OSError):
                self.ws = None

    def _answer_over_http(self, ride_id: str) -> None:
        self._think()
        verb = "accept" if self.rng.random() < ACCEPT_RATIO else "decline"
        with self.client.post(
            f"/v1/rides/{ride_id}/{verb}",
            headers=self.auth,
            name=f"/v1/rides/[id]/{verb}",
            catch_response=True,
        ) as r:
            if r.status_code == 409:
                r.success()  # the offer expired or the rider cancelled meanwhile
                return
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")
                return
            ride = r.json()
        self._on_ride(ride)

    def _on_ride(self, ride: dict[str, Any]) -> None:
        ride_id = ride["id"]
        offered_at = self.offers.pop(ride_id, None)
        if offered_at is None or ride.get("driver_id") != self.driver_id:
            return
        if ride["status"] == "accepted":
            record(self.environment, "offer-to-accept", (time.monotonic() - offered_at) * 1e3)
            self.jobs.spawn(self._drive, ride_id)

    def _drive(self, ride_id: str) -> None:
        """Arrive, start, complete; stop quietly if the rider cancels on the way."""
        for step, (lo, hi) in (("arrived", (2, 5)), ("start", (1, 3)), ("complete", (3, 8))):
            gevent.sleep(self.rng.uniform(lo, hi))
            with self.client.post(
                f"/v1/rides/{ride_id}/{step}",
                headers=self.auth,
                name=f"/v1/rides/[id]/{step}",
                catch_response=True,
            ) as r:
                if r.status_code == 409:
                    r.success()  # cancelled by the rider meanwhile
                    return
                if r.status_code != 200:
                    r.failure(f"status {r.status_code}")
                    return
