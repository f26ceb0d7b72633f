"""An instance's ride changes for the ops channel, sent in batches: one SPUBLISH every
FLUSH_EVERY_S (at once when FLUSH_AT wait) carries what came meanwhile, in order, where
one per change cost a round trip per ride step. The ops map looks once a second: a
change reaching it up to one interval later changes nothing a person sees.

Nothing is sent while no instance listens (an instance listens while an ops page is
open there, and claims the ops topic in the holder registry for as long): a publisher
asks at most once every CHECK_EVERY_S, with a batch it sends all the same, so a page
that opens misses about a second of changes at most. An instance that is not asked
sends one batch a second, not one a ride.

A batch of one is the message itself, as an instance before batches sent it; a batch of
more is BATCH_MARK, then each message after its length (decimal) and a newline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from dispatch.adapters.redis_holders import holders_of, lookups
from dispatch.service_layer.ops_view import OPS_TOPIC
from geoindex import ScriptRunner

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 0.05
FLUSH_AT = 200  # messages waiting: sent at once
CHECK_EVERY_S = 1.0  # how stale "nobody listens" may be
BATCH_MARK = b"*\n"  # no topic starts with it: a message holds one topic's notice first


def batch(messages: Sequence[bytes]) -> bytes:
    if len(messages) == 1:
        return messages[0]
    return BATCH_MARK + b"".join(b"%d\n%s" % (len(m), m) for m in messages)


def unbatch(message: bytes) -> list[bytes]:
    """The messages of a batch, in order; a single message (batch() of one, or from an
    instance before batches) as it is."""
    if not message.startswith(BATCH_MARK):
        return [message]
    out: list[bytes] = []
    at = len(BATCH_MARK)
    while at < len(message):
        eol = message.index(b"\n", at)
        end = eol + 1 + int(message[at:eol])
        out.append(message[eol + 1 : end])
        at = end
    return out


class OpsOutbox:
    def __init__(self, edge: ScriptRunner, channel: bytes) -> None:
        self._edge = edge
        self._channel = channel
        self._waiting: list[bytes] = []
        self._wake = asyncio.Event()  # something waits (again: FLUSH_AT of it)
        self._listened = True  # as last asked; until then, sent
        self._asked_at: float | None = None  # loop time
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.sent = 0  # messages

    def wanted(self) -> bool:
        """Whether messages added now would be sent: not while nobody listened a moment
        ago (they would be dropped, as a publish to nobody is; not worth encoding)."""
        return self._listened or self._ask_due()

    def add(self, messages: Sequence[bytes]) -> None:
        if not messages or not self.wanted():
            return
        was_empty = not self._waiting
        self._waiting += messages
        if was_empty or len(self._waiting) >= FLUSH_AT:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ops-outbox")

    async def close(self) -> None:
        """Sends what waits, then stops."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            if len(self._waiting) < FLUSH_AT and not self._closing:
                # The interval's messages gather, unless FLUSH_AT wait meanwhile.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FLUSH_EVERY_S):
                        await self._wake.wait()
            self._wake.clear()
            await self._flush()
        while self._waiting:  # closing: what came during the last send
            await self._flush()

    async def _flush(self) -> None:
        messages, self._waiting = self._waiting, []
        if not messages:
            return
        ask = self._ask_due()
        commands: list[tuple[Any, tuple[Any, ...]]] = [
            (self._channel, ("SPUBLISH", self._channel, batch(messages)))
        ]
        if ask:  # its key shares the channel's slot: the same write
            commands += lookups([OPS_TOPIC])
        try:
            replies = await self._edge.commands(commands)
        except Exception as exc:  # best effort, as every notice
            log.warning("%d ops notices lost: %s", len(messages), exc)
            return
        self.sent += 1
        if ask:
            self._listened = bool(holders_of(replies[1:])[0])
            self._asked_at = asyncio.get_running_loop().time()

    def _ask_due(self) -> bool:
        now = asyncio.get_running_loop().time()
        return self._asked_at is None or now >= self._asked_at + CHECK_EVERY_S
