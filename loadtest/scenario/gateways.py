"""The load's view of the proxy layer: each user keeps to one nginx node (users spread over
all of them, as DNS round robin spreads phones), and moves to the next node when a call
finds its node gone (no HTTP answer at all: refused or reset), as a client that retries
elsewhere would. The call that found it gone stays a failure."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # locust's import patches the standard library: not in unit tests
    from locust import FastHttpUser


class Gateways:
    def __init__(
        self, urls: list[str], rng: random.Random, client: Any = None, turn: int | None = None
    ) -> None:
        """`turn`: the user's place in its kind's round over the nodes (None: at random)."""
        if not urls:
            raise ValueError("at least one gateway")
        self.urls = urls
        self.index = rng.randrange(len(urls)) if turn is None else turn % len(urls)
        self.client = client  # a FastHttpSession, kept pointed at the current gateway
        self.moves = 0
        self._point()

    @property
    def url(self) -> str:
        return self.urls[self.index]

    def failover(self) -> str:
        """The next node, for this user's HTTP calls and its next WebSocket alike."""
        self.index = (self.index + 1) % len(self.urls)
        self.moves += 1
        self._point()
        return self.url

    def _point(self) -> None:
        if self.client is not None:
            self.client.base_url = self.url


def parse(raw: str | None, default: str | None) -> list[str]:
    """--gateways "http://127.0.0.1:8080,http://127.0.0.1:8081"; none: the -H host."""
    urls = [u.strip().rstrip("/") for u in (raw or "").split(",") if u.strip()]
    return urls or ([default.rstrip("/")] if default else [])


# Per kind of user, this process's next turn: users of each kind go round the nodes in
# turn from a random one, so that every node gets riders and drivers alike (drawn each at
# random, the 4 riders of a 20-user run all landed on one of 2 nodes one run in 8).
_TURNS: dict[type, Iterator[int]] = {}


def attach(user: FastHttpUser, rng: random.Random) -> Gateways:
    """Points the user's HTTP client at its gateway and moves it on a connection failure."""
    client = user.client
    urls = parse(user.environment.parsed_options.gateways, user.host)
    turns = _TURNS.setdefault(type(user), itertools.count(rng.randrange(max(len(urls), 1))))
    gateways = Gateways(urls, rng, client, next(turns))
    call = client.request

    def request(method: str, url: str, **kw: Any) -> Any:
        r = call(method, url, **kw)
        if r.status_code == 0 and len(gateways.urls) > 1:
            gateways.failover()
        return r

    client.request = request  # type: ignore[assignment]
    return gateways
