"""What every request passes through: its id, its deadline, its failure as a JSON error
and its metrics, in one middleware; and the headers every answer carries, in one hook.

One middleware, not four: aiohttp runs each middleware as a coroutine of its own, and a
location update is a small request (the four, the UUID of its id and a timer of its own
for its deadline were about a fifth of its CPU)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dispatch.entrypoints import request_ids
from dispatch.entrypoints.errors import failure, http_error
from dispatch.entrypoints.metrics import Metrics
from dispatch.service_layer.errors import BackendUnavailable

Hook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]

_EXPIRED = -1.0  # a request's due time once its deadline has cancelled it


class Deadlines:
    """The requests in flight and when each must end, checked by one timer for all of
    them (a timer each, asyncio.timeout, cost a location update 4-10 us of CPU). A
    request is cancelled at the first check past its deadline: up to `tick` late."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tick = min(0.25, seconds / 20)
        self._due: dict[asyncio.Task[Any], float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's

    def start(self, task: asyncio.Task[Any]) -> None:
        loop = asyncio.get_running_loop()
        self._due[task] = loop.time() + self.seconds
        if self._timer is None or self._loop is not loop:  # an app served again, elsewhere
            self._loop = loop
            self._timer = loop.call_later(self.tick, self._check)

    def end(self, task: asyncio.Task[Any]) -> bool:
        """Done with `task`'s request: True if its deadline cancelled it."""
        return self._due.pop(task) == _EXPIRED

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task, due in self._due.items():
            if 0 <= due <= now:
                self._due[task] = _EXPIRED  # a value, not the size: iterating stays valid
                task.cancel()  # raised at the await the request waits in
        self._timer = loop.call_later(self.tick, self._check) if self._due else None


def edge(metrics: Metrics, timeout_s: float, streams: Collection[Handler]) -> Middleware:
    """The middleware. `streams` (WebSockets, event streams) live long by design: no
    deadline. Any other request that runs past `timeout_s` (Redis slow, not down) is a
    503, not a wait of many Redis timeouts."""
    deadlines = Deadlines(timeout_s)
    long_lived = frozenset(streams)
    # Looked up once, not on every request (a location update's is a small request).
    served, clock, current_task = metrics.request, time.perf_counter, asyncio.current_task
    header, current, accepted = request_ids.HEADER, request_ids.current, request_ids.accepted

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # The id first: every log line written while serving the request carries it.
        request_id = accepted(request.headers.get(header))
        id_token = current.set(request_id)
        started = clock()
        status = 500
        task = None if handler in long_lived else current_task()
        try:
            expired = False
            try:
                if task is not None:
                    deadlines.start(task)
                try:
                    response = await handler(request)
                finally:
                    expired = task is not None and deadlines.end(task)
            except asyncio.CancelledError:
                # The deadline's alone, or also another's (a shutdown's): then it stands.
                if task is None or not expired or task.uncancel() > 0:
                    raise
                response = failure(request, BackendUnavailable("the request ran past its deadline"))
            except web.HTTPException as exc:
                if exc.status < 400:
                    status = exc.status
                    exc.headers[header] = request_id  # on the answer aiohttp makes of it
                    raise
                response = http_error(exc)
            except Exception as exc:
                if isinstance(exc, TimeoutError) and task is not None:
                    exc = BackendUnavailable("the request ran past its deadline")
                response = failure(request, exc)
            status = response.status
        finally:
            current.reset(id_token)
            info = request.match_info.route.resource
            served(
                request.method,
                "unmatched" if info is None else info.canonical,
                status,
                clock() - started,
            )
        if not response.prepared:  # a stream's own, once prepared (stamp_answer)
            response.headers[header] = request_id
        if status >= 400 and isinstance(response, web.Response):
            body = response.body
            if isinstance(body, bytes) and response.content_type == "application/json":
                response.body = request_ids.with_id(body, request_id)
        return response

    return middleware


def stamp(instance: str) -> Hook:
    """on_response_prepare: the instance's id on every answer; and the request's on the
    answers prepared while the middleware runs (streams and WebSocket upgrades: the
    middleware stamps the others itself as they leave it, the id's context reset)."""
    current = request_ids.current

    async def stamp_answer(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Instance-Id"] = instance
        request_id = current.get()
        if request_id is not None:
            response.headers[request_ids.HEADER] = request_id

    return stamp_answer
