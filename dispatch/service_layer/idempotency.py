"""Run a request once per Idempotency-Key; retries get the stored answer (invariant 5)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable

from dispatch.service_layer.cleanup import CleanupBudget
from dispatch.service_layer.errors import IdempotencyInProgress, IdempotencyMismatch
from dispatch.service_layer.ports import Admission, Claim, ClaimState, IdempotencyStore

KEEP_MS = 24 * 3600 * 1000
# A holder touches its key every third of this while its request runs, so a holder
# that dies (its process killed mid-request) frees the key within this.
LOCK_MS = 3_000
WAIT_S = 10.0  # how long a duplicate waits for the first request to finish
ABANDON_WAIT_S = 0.25


def fingerprint(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


async def once(
    store: IdempotencyStore,
    key: str,
    request_fingerprint: str,
    produce: Callable[[Claim], Awaitable[tuple[bytes, bool]]],
    *,
    wait_s: float = WAIT_S,
    lock_ms: int = LOCK_MS,
    still_true: Callable[[Claim], Awaitable[bool]] | None = None,
    keep_ms: Callable[[], int] | None = None,
    cleanup: CleanupBudget | None = None,
    ride_id: str | None = None,
    admission: Admission | None = None,
) -> bytes:
    """The answer `produce` gave for the first request with this key (running it now if
    this is the first; it is given the claim, and says whether it stored the answer under
    the key itself, as the ride store can with its ride). Concurrent duplicates wait for
    it and get the same bytes.

    `still_true` vets a stored answer (the claim's payload) before it is replayed: one
    that describes what no longer exists (a ride lost in a Redis failover while its
    answer, on another master, survived) is forgotten, and the request runs again.
    `keep_ms`, asked once the answer is made, says how long to keep it (default
    KEEP_MS). `ride_id`: the ride the request stores, which the store may read with
    each claim (Claim.looked, Claim.ride); `admission`: the rider's admission of it, which
    the store may make with a claim that lets the request run (Claim.admitted)."""
    deadline = time.monotonic() + wait_s
    pause = 0.005
    while True:
        claim = await store.begin(key, request_fingerprint, lock_ms, ride_id, admission)
        if claim.state is ClaimState.DONE:
            if still_true is None or await still_true(claim):
                return claim.payload
            await store.forget(key, claim.payload)
            still_true = None  # once: whatever is stored next is answered as it is
            continue
        if claim.state is ClaimState.MISMATCH:
            raise IdempotencyMismatch("this Idempotency-Key was used with a different request")
        if claim.state is ClaimState.NEW:
            break
        if time.monotonic() >= deadline:
            raise IdempotencyInProgress("a request with this Idempotency-Key is still running")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.1)
    holding = _Holding(store, key, claim.token, lock_ms)
    try:
        payload, stored = await produce(claim)
    except BaseException:
        await holding.stop()
        # Best effort, briefly: the lock runs out by itself, and a slow store must not hold
        # a request that already failed (or ran out of time) any longer.
        # With `cleanup`, within what the request's other undoing left of its budget.
        if cleanup is not None:
            await cleanup.run(store.abandon(key, claim.token))
            raise
        with contextlib.suppress(Exception):
            await asyncio.wait_for(store.abandon(key, claim.token), ABANDON_WAIT_S)
        raise
    await holding.stop()
    if not stored:
        await store.finish(key, claim.token, payload, KEEP_MS if keep_ms is None else keep_ms())
    return payload


class _Holding:
    """Touches the key every third of `lock_ms` while the request runs. The touching task
    starts only once the first third has passed: most requests end long before, and then
    cost a timer, not a task."""

    def __init__(self, store: IdempotencyStore, key: str, token: str, lock_ms: int) -> None:
        self._store, self._key, self._token, self._lock_ms = store, key, token, lock_ms
        self._every_s = lock_ms / 3000
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._timer = asyncio.get_running_loop().call_later(self._every_s, self._start)

    def _start(self) -> None:
        self._task = asyncio.create_task(self._touching())

    async def _touching(self) -> None:
        while not self._stopped:
            with contextlib.suppress(Exception):  # a missed touch: the next one may land
                await self._store.touch(self._key, self._token, self._lock_ms)
            await asyncio.sleep(self._every_s)

    async def stop(self) -> None:
        """Stops touching without waiting for a touch in flight: one stuck in a Redis call
        (a master failing over) held its request past the request's deadline. A touch that
        lands later changes nothing: it extends only a key still running with this token,
        not one answered or given up (idem_touch.lua)."""
        self._timer.cancel()
        self._stopped = True  # should the client swallow the cancel, no touch after it
        if self._task is not None:
            self._task.cancel()
