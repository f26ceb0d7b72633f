"""A request's hold on its Idempotency-Key ends with the request, whatever its touch is
doing: a touch stuck in a Redis call during a failover once held ride requests past their
deadline."""

from __future__ import annotations

import asyncio
import time

from dispatch.adapters.memory_idempotency import MemoryIdempotencyStore
from dispatch.service_layer.idempotency import once
from dispatch.service_layer.ports import Claim


class StuckTouches(MemoryIdempotencyStore):
    """Every touch hangs until released and shrugs off being cancelled meanwhile, as a
    client call can while a master fails over."""

    def __init__(self) -> None:
        super().__init__(lambda: int(time.time() * 1000))
        self.touches = 0
        self.released = asyncio.Event()
        self.ended = False

    async def touch(self, key: str, token: str, lock_ms: int) -> None:
        self.touches += 1
        if self.ended:  # the test is over: a loop still touching stops here
            raise asyncio.CancelledError
        while not self.released.is_set():
            try:
                await self.released.wait()
            except asyncio.CancelledError:
                continue


async def test_a_request_ends_while_the_touch_of_its_key_hangs() -> None:
    store = StuckTouches()

    async def produce(claim: Claim) -> tuple[bytes, bool]:
        await asyncio.sleep(0.05)  # past a third of the lock: the key is being touched
        return b"the answer", False

    call = asyncio.create_task(once(store, "k", "fingerprint", produce, lock_ms=30))
    try:
        done, _ = await asyncio.wait({call}, timeout=0.3)
        assert call in done  # not held by the touch in flight
        assert call.result() == b"the answer"
        assert store.touches == 1
        store.released.set()  # the stuck call returns at last
        await asyncio.sleep(0.05)  # five touch intervals
        assert store.touches == 1  # and nothing touches the key after its request ended
    finally:
        store.ended = True
        store.released.set()
        await asyncio.wait({call}, timeout=1.0)
