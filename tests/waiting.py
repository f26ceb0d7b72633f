"""Waiting for a condition instead of sleeping and hoping: poll it until it holds or a
deadline passes, then fail saying what was waited for and what was last seen."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


def _name(check: Callable[[], Any], what: str | None) -> str:
    if what:
        return what
    doc = inspect.getdoc(check)
    if doc:
        return doc.splitlines()[0]
    return str(getattr(check, "__name__", repr(check)))


def _timed_out(name: str, timeout_s: float, last: object) -> AssertionError:
    seen = f"last check failed: {last}" if isinstance(last, BaseException) else f"last: {last!r}"
    return AssertionError(f"waited {timeout_s:g} s for {name}; {seen}")


@overload
async def eventually(
    check: Callable[[], Awaitable[T]],
    timeout_s: float = ...,
    interval_s: float = ...,
    *,
    what: str | None = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T],
    timeout_s: float = ...,
    interval_s: float = ...,
    *,
    what: str | None = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    timeout_s: float = 5.0,
    interval_s: float = 0.01,
    *,
    what: str | None = None,
) -> Any:
    """Call `check` (sync or async) every `interval_s` until it returns something true, and
    return that. A check may also assert: an AssertionError counts as "not yet". After
    `timeout_s` (a check still running then is cancelled), fail naming `what` (or the
    check's docstring, or its name) and the last answer or assertion."""
    name = _name(check, what)
    last: object = None
    deadline = asyncio.timeout(timeout_s)
    try:
        async with deadline:
            while True:
                try:
                    result = check()
                    if inspect.isawaitable(result):
                        result = await result
                except AssertionError as exc:
                    last = exc
                else:
                    if result:
                        return result
                    last = result
                await asyncio.sleep(interval_s)
    except TimeoutError:
        if not deadline.expired():
            raise  # the check's own timeout, not ours
        cause = last if isinstance(last, BaseException) else None
        raise _timed_out(name, timeout_s, last) from cause


def wait_until(
    check: Callable[[], T],
    timeout_s: float = 5.0,
    interval_s: float = 0.01,
    *,
    what: str | None = None,
) -> T:
    """`eventually` for synchronous tests: poll a plain function with time.sleep."""
    name = _name(check, what)
    last: object = None
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
        except AssertionError as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            cause = last if isinstance(last, BaseException) else None
            raise _timed_out(name, timeout_s, last) from cause
        time.sleep(interval_s)
