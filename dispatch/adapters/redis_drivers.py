"""DriverStore on Redis / Redis Cluster: one hash per driver, changed only by Lua
compare-and-set scripts (lua/driver_*.lua) that mirror dispatch.domain.drivers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from dispatch.adapters.durable import ScriptCalls
from dispatch.adapters.redis_client import UNTOUCHED_KEEP_MS, call_id, driver_key, script
from dispatch.domain.drivers import DriverRecord, DriverStatus
from dispatch.domain.errors import DriverBusy
from dispatch.service_layer.ports import Reservation
from geoindex import Script, ScriptRunner, translated
from geoindex.redis_index import DRIVER_CHANGE


def _with_index_change(reserve: Script, change: Script) -> Script:
    """`reserve` with the geo index's own change of a driver (driver_change.lua) in front
    of it as the Lua function index_change(KEYS, ARGV): both are on the driver's slot, so
    a reservation takes the driver out of the index's record in the same atomic step."""
    source = f"local function index_change(KEYS, ARGV)\n{change.source}\nend\n{reserve.source}"
    return Script.from_source(reserve.name, source)


RESERVE = _with_index_change(script("driver_reserve"), DRIVER_CHANGE)
CONFIRM = script("driver_confirm")
RELEASE = _with_index_change(script("driver_release"), DRIVER_CHANGE)
EXPIRE_LEASE = _with_index_change(script("driver_expire_lease"), DRIVER_CHANGE)
SET_STATUS = script("driver_set_status")
SCRIPTS = (RESERVE, CONFIRM, RELEASE, EXPIRE_LEASE, SET_STATUS)
MAX_HIDING = 10_000


class FixTimes(Protocol):
    """Where the geo index keeps a driver's last fix (RedisGeoIndex is one): a hash with
    field `ts`, tagged {<driver_id>} like our own record, and how long a fix stays fresh;
    and its availability change in two halves, the first run inside the reservation."""

    ttl_ms: int
    default_products: tuple[str, ...]  # what a driver that never had `prods` set serves

    def driver_key(self, driver_id: str) -> str: ...

    def availability_step(self, available: bool) -> tuple[Script, list[str | int]]: ...

    async def mirror_availability(
        self, driver_id: str, available: bool, reply: Sequence[Any]
    ) -> bool: ...

    async def set_available(self, driver_id: str, available: bool) -> bool: ...


def _s(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _reserved(ask: Reservation, reply: Any, lease_until: int) -> DriverRecord | None:
    if reply[0] == 0:  # {0, reason}; a fence is a string
        return None
    return DriverRecord(
        ask.driver_id, DriverStatus.RESERVED, ask.ride_id, int(reply[0]), lease_until
    )


class RedisDriverStore:
    def __init__(
        self, scripts: ScriptRunner, index: FixTimes, durable: ScriptCalls | None = None
    ) -> None:
        self._scripts = scripts
        self._r = scripts.client
        # Reserve, confirm and release: a double booking depends on them, so with
        # DISPATCH_DURABLE_WRITES they are answered only once a replica has them.
        self._critical: ScriptCalls = durable or scripts
        # For the freshness of the last fix (invariant 4), read in the reserving script,
        # which also makes the index's own change when the driver leaves its search.
        self._index = index
        change, self._hide_args = index.availability_step(False)
        again, self._show_args = index.availability_step(True)
        assert change == again == DRIVER_CHANGE, "the driver's scripts embed the index's own"
        # reserve(hide=True)'s index replies, until hidden() mirrors them into the region
        # (by driver and fence; dropped by a release, bounded against a caller that
        # never came back).
        self._hiding: dict[tuple[str, int], Any] = {}

    async def get(self, driver_id: str) -> DriverRecord:
        with translated():
            raw = await self._r.hmget(driver_key(driver_id), "status", "ride", "fence", "lease")
        status, ride, fence, lease = (_s(v) for v in raw)
        return DriverRecord(
            driver_id,
            DriverStatus(status or "available"),
            ride or None,
            int(fence or 0),
            int(lease or 0),
        )

    async def set_status(self, driver_id: str, status: DriverStatus, now_ms: int) -> DriverRecord:
        if status not in (DriverStatus.AVAILABLE, DriverStatus.OFFLINE):
            raise ValueError("a driver may only set itself available or offline")
        res = await self._scripts.call(
            SET_STATUS, [driver_key(driver_id)], [status.value, now_ms, UNTOUCHED_KEEP_MS]
        )
        if int(res[0]) == 0:
            raise DriverBusy(f"driver is {_s(res[1])} for ride {_s(res[2])}")
        return await self.get(driver_id)

    async def reserve(
        self,
        driver_id: str,
        ride_id: str,
        now_ms: int,
        lease_until: int,
        serves: tuple[str, ...] = (),
        hide: bool = False,
    ) -> DriverRecord | None:
        ask = Reservation(driver_id, ride_id, serves)
        keys, args = self._reserve_call(ask, now_ms, lease_until)
        if hide:
            args += ["1", *self._hide_args]
        res = await self._critical.call(RESERVE, keys, args)
        rec = _reserved(ask, res, lease_until)
        if rec is not None and hide and len(res) > 1:  # not a re-sent call's first answer
            if len(self._hiding) >= MAX_HIDING:
                self._hiding.pop(next(iter(self._hiding)))
            self._hiding[(driver_id, rec.fence)] = res[1:]
        return rec

    async def hidden(self, driver_id: str, fence: int) -> None:
        change = self._hiding.pop((driver_id, fence), None)
        if change is not None:
            await self._index.mirror_availability(driver_id, False, change)
        else:  # its reply was a re-sent call's (made no index change) or was dropped
            await self._index.set_available(driver_id, False)

    async def reserve_many(
        self, asks: Sequence[Reservation], now_ms: int, lease_until: int
    ) -> list[DriverRecord | None]:
        calls = [self._reserve_call(a, now_ms, lease_until) for a in asks]
        if self._critical is self._scripts:  # one pipeline
            replies = await self._scripts.run([(RESERVE, keys, args) for keys, args in calls])
        else:  # durable: each script travels with its own WAIT
            replies = await asyncio.gather(*(self._critical.call(RESERVE, *c) for c in calls))
        return [_reserved(a, r, lease_until) for a, r in zip(asks, replies, strict=True)]

    def _reserve_call(
        self, ask: Reservation, now_ms: int, lease_until: int
    ) -> tuple[list[str], list[str | int]]:
        # One script: the freshness and product checks and the compare-and-set are one
        # atomic step.
        keys = [driver_key(ask.driver_id), self._index.driver_key(ask.driver_id)]
        args: list[str | int] = [
            ask.ride_id,
            now_ms,
            lease_until,
            self._index.ttl_ms,
            call_id(),
            UNTOUCHED_KEEP_MS,
            ",".join(ask.serves),
            ",".join(self._index.default_products) or "-",
        ]
        return keys, args

    async def confirm(self, driver_id: str, ride_id: str, fence: int, now_ms: int) -> bool:
        args = [ride_id, fence, now_ms, UNTOUCHED_KEEP_MS]
        return bool(int(await self._critical.call(CONFIRM, [driver_key(driver_id)], args)))

    async def release(self, driver_id: str, ride_id: str, fence: int, show: bool = False) -> bool:
        self._hiding.pop((driver_id, fence), None)
        args: list[str | int] = [ride_id, fence, call_id(), UNTOUCHED_KEEP_MS]
        return await self._freed(self._critical, RELEASE, driver_id, args, show)

    async def expire_lease(self, driver_id: str, now_ms: int, show: bool = False) -> bool:
        args: list[str | int] = [now_ms, call_id(), UNTOUCHED_KEEP_MS]
        return await self._freed(self._scripts, EXPIRE_LEASE, driver_id, args, show)

    async def _freed(
        self,
        runner: ScriptCalls,
        freeing: Script,
        driver_id: str,
        args: list[str | int],
        show: bool,
    ) -> bool:
        """Run a script that frees the driver; with `show`, the index's change bringing it
        back to the search runs in the same script, then the region is written."""
        keys = [driver_key(driver_id)]
        if show:
            keys.append(self._index.driver_key(driver_id))
            args += ["1", *self._show_args]
        res = await runner.call(freeing, keys, args)
        if not isinstance(res, list):  # without show, or a re-sent call's first answer
            freed = bool(int(res))
            if freed and show:
                await self._index.set_available(driver_id, True)
            return freed
        await self._index.mirror_availability(driver_id, True, res[1:])
        return True
