"""RedisGeoIndex: the index on Redis or Redis Cluster (one implementation for both).

Keys (prefix "gi" by default):
  gi:d:{<driver>}            hash: lat, lng, ts, seq, score, region, prev (region), ver,
                             avail, prods (comma-joined, "-" for none); the sweep drops
                             the position but keeps avail, prods and ver (for a day at
                             least: its TTL, driver_upsert.lua) so a returning driver
                             keeps its availability and products
  gi:{r<region>}:geo         zset: available drivers, score = res-15 cell (see cells.py),
                             member = pack("<ddd", lat, lng, ts) + id, so a scan needs
                             no second lookup per candidate
  gi:{r<region>}:geo:<p>     zset: the same, for the available drivers serving product p
                             (a search for p scans only them: its cost follows k, not
                             the drivers of other products nearer the query)
  gi:{r<region>}:meta        hash: driver -> pack("<dddd", ver, ts, lat, lng) + prods +
                             flag (a available, b busy, t tombstone)
  gi:{r<region>}:seen        zset: driver -> its fix time when it entered the region, at
                             or below the time it may go (region_expire.lua, the sweep)
  gi:regions                 set of regions ever written, for the sweep
  gi:split                   hash: the split list (geoindex/split.py): a region is a
                             position's cell at region_res, or at a finer resolution
                             inside a listed parent
A region's keys share one hash tag, so one Lua call per region reads or writes them all.
A write first changes the driver's own key (compare-and-set, new version), then the
regions it touches; region_apply.lua orders region changes by version, so concurrent
writes of one driver, even across region borders, converge on the newest. A batch's
writes go one call per node: its drivers' keys in one driver_upsert.lua call, its
regions in one region_apply.lua call (keys of several slots of one node, see
_upsert_drivers and _apply_now).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from h3 import _cy as h3_cy
from redis import exceptions as rx
from redis.asyncio import RedisCluster

from geoindex import limits
from geoindex._resp import fix_texts as _fix_texts
from geoindex._resp import region_changes as _region_changes
from geoindex.cells import FINE_RES, SCORE_MASK
from geoindex.columns import Columns, nearest_rows
from geoindex.errors import BackendUnavailable
from geoindex.knn import Scans, k_nearest
from geoindex.memory import wall_clock_ms
from geoindex.model import DriverState, Neighbor, Position, UpsertResult
from geoindex.redis_edge import NOT_RUN, Call, Script, ScriptRunner, translated
from geoindex.redis_pipeline import NodeKeys
from geoindex.rounds import Asked, Rounds, Run, send_together
from geoindex.search import DensityHints, SearchConfig
from geoindex.split import SPLIT_SET, Layout, LayoutCache, RedisSplitStore, migrate
from geoindex.supply import (
    CellIds,
    SupplyCell,
    any_split,
    checked_products,
    count_supply,
    id_rows,
    named_cells,
    supply_cells,
    table_columns,
)
from geoindex.within import check_limit

KNN = Script("knn")
REGION_APPLY = Script("region_apply")
REGION_EXPIRE = Script("region_expire")
REGION_COUNT = Script("region_count")
REGION_WITHIN = Script("region_within")
DRIVER_UPSERT = Script("driver_upsert")
DRIVER_CHANGE = Script("driver_change")
ALL_SCRIPTS = (
    KNN,
    REGION_APPLY,
    REGION_EXPIRE,
    REGION_COUNT,
    REGION_WITHIN,
    DRIVER_UPSERT,
    DRIVER_CHANGE,
    SPLIT_SET,
)

SWEEP_BATCH = 1_000
# region_apply.lua declares the product sets it may touch: a call names the products it
# writes and up to this many others seen lately (a driver's stored entry may name one its
# change does not); one naming none of those asks for them and is sent again.
KNOWN_PRODUCTS = 64
APPLY_ATTEMPTS = 3  # the first, the one declaring what it asked for, and one for a race
DRIVER_MEMORY_MS = 24 * 3_600_000
_MEMBER_HEAD = struct.Struct("<ddd")  # lat, lng, ts before the id in a geo member
_META_HEAD = struct.Struct("<dddd")  # ver, ts, lat, lng before a meta value's products
# One driver's change to a region, as region_apply.lua takes it: id, the meta value (the
# version first, the flag last), the geo member (b"" unless available), the geo score,
# the fix time (for the sweep's seen set).
Change = tuple[str, bytes, bytes, int | str, int | str]
Ops = Mapping[int, Sequence[str | Change]]  # region -> its changes
# The head of a meta value and its flag, as region_within.lua returns them in bulk.
_HEAD_TS = struct.Struct("<d")  # a meta value's fix time, after its version
_HEAD = np.dtype([("ver", "<f8"), ("ts", "<f8"), ("lat", "<f8"), ("lng", "<f8"), ("flag", "S1")])
_AVAILABLE = ord("a")  # a meta value's last byte for an available driver
# h3-py's compiled functions, called without the public API's Python wrapper around each
# (cells.position_score and score_latlng's arithmetic): a fix takes both, and the wrappers
# were a third of their cost.
_latlng_to_cell, _cell_to_latlng = h3_cy.latlng_to_cell, h3_cy.cell_to_latlng
_FINE_CELL = 1 << 59 | FINE_RES << 52  # a res-15 cell's index less its score (score_to_cell)
# A fix as driver_upsert.lua reads it: "lat lng ts seq score region" and a tail (_fix_tail)
_FIX = "%.17g %.17g %d %s %d %x%s"


def fix_texts_in_python(
    positions: Sequence[Position],
    key_head: str,
    tail: str,
    head: int,
    low: int,
    parents: Mapping[int, Any],
    write_region: Any,
) -> tuple[list[str], list[str], list[tuple[Position, int, float, float, int]]]:
    """What _resp.fix_texts does in C, in Python (the tests hold the two to one answer):
    per fix its driver key, its text for driver_upsert.lua (lat and lng as 17 significant
    digits: the same double back through float() and Lua's tonumber, at two thirds of
    repr's cost) and (position, score, lat, lng, region)."""
    keys, fixes, prepared = [], [], []
    for p in positions:
        score = _latlng_to_cell(p.lat, p.lng, FINE_RES) & SCORE_MASK
        lat, lng = _cell_to_latlng(_FINE_CELL | score)
        region = head | score | low  # the parent at region_res
        if parents and region in parents:
            region = write_region(score)
        keys.append(f"{key_head}{p.driver_id}}}")
        seq = "-" if p.seq is None else p.seq
        fixes.append(_FIX % (lat, lng, p.ts_ms, seq, score, region, tail))
        prepared.append((p, score, lat, lng, region))
    return keys, fixes, prepared


class RedisGeoIndex:
    def __init__(
        self,
        client: Any,
        *,
        ttl_ms: int = 30_000,
        clock: Any = wall_clock_ms,
        config: SearchConfig | None = None,
        prefix: str = "gi",
        new_drivers_available: bool = True,
        default_products: Sequence[str] = (),
        split_refresh_s: float = 2.0,
    ) -> None:
        self.ttl_ms = ttl_ms
        self._redis = client
        self._scripts = ScriptRunner(client, ALL_SCRIPTS)
        self._clock = clock
        self._config = config or SearchConfig()
        self._hints = DensityHints()
        # Scans of concurrent searches waiting for the next turn of the loop (_scan_together).
        self._scan_queue: Asked = []
        self._scan_senders: set[asyncio.Task[None]] = set()
        self._searching = 0  # nearest() calls under way
        self._prefix = prefix
        self._known_regions: set[int] = set()
        # Region writes of concurrent callers (upserts, availability changes) waiting for
        # the one in flight; they then leave together, one call per region.
        self._region_queue: list[tuple[Ops, asyncio.Future[None]]] = []
        self._region_sender: asyncio.Task[None] | None = None
        # A driver's own key (and with it, its availability) outlives a silence of a day;
        # then Redis drops it by itself.
        self._driver_pexpire = DRIVER_MEMORY_MS
        self._new_avail = "1" if new_drivers_available else "0"
        # What a driver that never had products set serves (a store reserving drivers
        # next to the index reads `prods` from driver_key and falls back to these).
        self.default_products = limits.check_products(default_products)
        self._default_prods = _joined_products(self.default_products)
        # What every fix's text ends with, and every driver key starts with.
        self._fix_tail = f" {self._driver_pexpire} {self._new_avail} {self._default_prods}"
        self._driver_key_head = f"{prefix}:d:{{"
        # driver_upsert.lua's "avail prods" of accepted fixes: the end of the meta value
        # it makes, and the products an available driver is written under (_state).
        self._states: dict[bytes, bytes] = {}
        self._state_products: dict[bytes, tuple[str, ...]] = {}
        self._products: OrderedDict[str, None] = OrderedDict.fromkeys(self.default_products)
        # Every instance reads the split list from Redis, its version checked at most
        # every split_refresh_s (a migration waits longer than that between phases).
        self._split = RedisSplitStore(self._scripts, prefix, self._config.region_res)
        self._split_refresh_s = split_refresh_s
        self._layouts = LayoutCache(
            self._config.region_res, self._split.version, self._split.load, split_refresh_s
        )

    # -- keys -----------------------------------------------------------------------------
    def driver_key(self, driver_id: str) -> str:
        """The hash holding the driver's last fix, under the configured prefix: its field
        `ts` is the fix time in ms. Its hash tag is `{<driver_id>}`, so a script that runs
        on keys tagged `{<driver_id>}` may read `ts` in the same atomic step (this is how
        a store next to the index checks freshness). Read-only for anyone but the index."""
        return f"{self._prefix}:d:{{{driver_id}}}"

    def _region_keys(self, region: int) -> list[str]:
        tag = f"{self._prefix}:{{r{region:x}}}"
        return [f"{tag}:geo", f"{tag}:meta", f"{tag}:seen"]

    def _apply_keys(self, region: int, products: set[str]) -> list[str]:
        """region_apply.lua's keys: the region's, then its sets of `products`."""
        keys = self._region_keys(region)
        return keys + [f"{keys[0]}:{p}" for p in sorted(products)]

    def _remember(self, products: Iterable[str]) -> None:
        """Products region writes declare up front: the most recently named ones."""
        for p in products:
            self._products[p] = None
            self._products.move_to_end(p)
        while len(self._products) > KNOWN_PRODUCTS:
            self._products.popitem(last=False)

    # -- writes ---------------------------------------------------------------------------
    async def upsert(self, positions: Sequence[Position]) -> list[UpsertResult]:
        return await self.upsert_valid(limits.check_batch(positions))

    async def upsert_valid(self, positions: Sequence[Position]) -> list[UpsertResult]:
        """A batch's fixes (checked by the caller, GeoIndex.upsert_valid): its drivers' keys
        first, then the regions of the fixes accepted. Per fix only what each needs: two
        H3 calls, the region by arithmetic, one text and, once accepted, its change."""
        if not positions:
            return []
        layout = await self._layouts.get()
        head, low = _parent_bits(layout.region_res)
        # Per fix (in C, geoindex/_resp.c): its key, the res-15 cell, that cell's centre,
        # the region (the parent at region_res, or for a split parent's cell
        # layout.write_region's) and its text, as fix_text makes it.
        keys, fixes, prepared = _fix_texts(
            positions, self._driver_key_head, self._fix_tail, head, low,
            layout.parents, layout.write_region,
        )  # fmt: skip
        replies = await self._upsert_drivers(keys, fixes)
        named: set[bytes] = set()
        # In C (geoindex/_resp.c), what region_changes_in_python does.
        results, ops = _region_changes(
            prepared, replies, self._states, self._state, named,
            UpsertResult.ACCEPTED, UpsertResult.STALE, _gone,
        )  # fmt: skip
        self._remember(product for state in named for product in self._state_products[state])
        await self._apply(ops)
        return results

    def region_changes_in_python(
        self, prepared: Sequence[tuple[Position, int, float, float, int]], replies: Sequence[Any]
    ) -> tuple[list[UpsertResult], dict[int, list[str | Change]], set[bytes]]:
        """What _resp.region_changes does in C, in Python (the tests hold the two to one
        answer): driver_upsert.lua's replies read into each fix's result and its regions'
        changes, and the states ("avail prods") they named."""
        ops: dict[int, list[str | Change]] = {}
        results = []
        states = self._states
        named = set()
        for (p, score, lat, lng, region), reply in zip(prepared, replies, strict=True):
            if not reply:  # driver_upsert.lua: '' when stale, else "ver prev avail prods"
                results.append(UpsertResult.STALE)
                continue
            results.append(UpsertResult.ACCEPTED)
            ver, old_region, state = _b(reply).split(b" ", 2)
            meta_tail = states.get(state) or self._state(state)
            named.add(state)
            driver_id, ts = p.driver_id, p.ts_ms
            value = _META_HEAD.pack(int(ver), ts, lat, lng) + meta_tail  # int: no strtod
            if meta_tail[-1] == _AVAILABLE:  # in geo: its member and score
                member = _MEMBER_HEAD.pack(lat, lng, ts) + driver_id.encode()
                change: Change = (driver_id, value, member, score, ts)
            else:
                change = (driver_id, value, b"", 0, ts)
            ops.setdefault(region, []).append(change)
            if old_region and int(old_region, 16) != region:
                gone = _gone(driver_id, float(ver), ts, int(old_region, 16))
                ops.setdefault(int(old_region, 16), []).append(gone)
        return results, ops, named

    def _state(self, state: bytes) -> bytes:
        """The end of a meta value (products, flag) for driver_upsert.lua's "avail prods"
        (few distinct ones: kept), and the products an available driver is written under."""
        avail, prods = state.split(b" ")
        available = avail == b"1"
        self._states[state] = (b"" if prods == b"-" else prods) + (b"a" if available else b"b")
        self._state_products[state] = _products(prods.decode()) if available else ()
        return self._states[state]

    def _by_node(self, keys: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """The positions of `keys` grouped by the node holding them, where a node holds
        several (a call each, NodeKeys), and the rest (a call a key: a node holding one,
        or a key whose node only redis-py knows)."""
        if not self._scripts.cluster:  # one node holds them all, or redis-py sends each
            if len(keys) > 1 and self._scripts.node(keys[0]) is not None:
                return [list(range(len(keys)))], []
            return [], list(range(len(keys)))
        nodes: dict[Any, list[int]] = {}
        alone = []
        for i, key in enumerate(keys):
            node = self._scripts.node(key)
            if node is None:
                alone.append(i)
            else:
                nodes.setdefault(node, []).append(i)
        groups = [at for at in nodes.values() if len(at) > 1]
        return groups, alone + [at[0] for at in nodes.values() if len(at) == 1]

    async def _upsert_drivers(self, keys: Sequence[str], fixes: Sequence[str]) -> list[Any]:
        """driver_upsert.lua's reply to each (driver key, fix): one call per node for the
        drivers it holds (a call's own cost is a third of a driver's), one a driver where
        a node holds one or a node call did not run (a slot moving: those go again one by
        one, by the path that follows redirections)."""
        groups, alone = self._by_node(keys)
        calls: list[Call] = []
        for at in groups:
            if len(at) == len(keys):  # every driver: one call
                args: list[str] = [""] * (2 * len(keys))
                args[::2], args[1::2] = keys, fixes
                calls.append((DRIVER_UPSERT, NodeKeys(keys), args))
            else:
                args = [x for i in at for x in (keys[i], fixes[i])]
                calls.append((DRIVER_UPSERT, NodeKeys(keys[i] for i in at), args))
        calls += [(DRIVER_UPSERT, [keys[i]], (keys[i], fixes[i])) for i in alone]
        got = await self._scripts.run(calls)
        if not alone and len(groups) == 1 and got[0] is not NOT_RUN and len(got[0]) == len(keys):
            return list(got[0])  # the common case: one node call for every driver
        replies: list[Any] = [None] * len(keys)
        again: list[int] = []
        for at, reply in zip([*groups, *([i] for i in alone)], got, strict=True):
            if reply is NOT_RUN:
                again += at
            else:
                for i, one in zip(at, reply, strict=True):
                    replies[i] = one
        if again:
            got = await self._scripts.run(
                [(DRIVER_UPSERT, [keys[i]], (keys[i], fixes[i])) for i in again]
            )
            for i, reply in zip(again, got, strict=True):
                replies[i] = reply[0]
        return replies

    async def _apply(self, ops: Ops) -> None:
        """Write each region's changes (each a Change, or as text: "flag id ver ts score
        lat lng prods"); returns once they are written. Alone, they go at once; while
        another caller's are in flight, they wait for them and then go with every other
        caller's that arrived meanwhile, merged by region: a region's changes from many
        callers in one call (region_apply.lua orders them by version, as it does calls).
        A dense city split into many fine regions otherwise pays a call's fixed cost for
        one or two changes."""
        if not ops:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._region_queue.append((ops, done))
        if self._region_sender is None:
            self._region_sender = asyncio.create_task(self._send_regions())
        await done

    async def _send_regions(self) -> None:
        try:
            while self._region_queue:
                waiting, self._region_queue = self._region_queue, []
                merged: dict[int, list[str | Change]] = {}
                for ops, _ in waiting:
                    for region, changes in ops.items():
                        merged.setdefault(region, []).extend(changes)
                try:
                    await self._apply_now(merged)
                except Exception as exc:  # each caller fails as its own call would have
                    for _, done in waiting:
                        if not done.done():
                            done.set_exception(exc)
                except BaseException:  # cancelled (the loop is closing): so are they all
                    waiting += self._region_queue
                    self._region_queue = []
                    for _, done in waiting:
                        done.cancel()
                    raise
                else:
                    for _, done in waiting:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._region_sender = None

    async def _apply_now(self, ops: Ops) -> None:
        """Run region_apply.lua on each region's changes: one call per node for the
        regions it holds, one a region where a node holds one. A call of one region
        declares its keys and the product sets its changes name and those seen before; a
        region whose stored drivers name others asks for them, having written nothing. A
        node call that did not run (a slot moving) wrote nothing: its regions go again one
        a call."""
        # A region's part of a call: its geo key, how many changes, the changes. Changes
        # given as text are made Changes here, their products remembered (an upsert
        # remembers its own).
        regions = list(ops)
        geos = [self._region_keys(r)[0] for r in regions]
        args: dict[int, list[Any]] = {}
        for r, geo in zip(regions, geos, strict=True):
            part: list[Any] = [geo, len(ops[r])]
            for op in ops[r]:
                if isinstance(op, str):
                    op = _change(op)
                    self._remember(_change_products(op))
                part += op
            args[r] = part
        groups, alone = self._by_node(geos)
        check = "1" if self._scripts.cluster else "0"  # a node call's keys, before it writes
        node_calls: list[Call] = []
        for at in groups:
            node_args = [check]
            for i in at:
                node_args += args[regions[i]]
            node_calls.append((REGION_APPLY, NodeKeys(geos[i] for i in at), node_args))
        declared = {regions[i]: set(self._products) for i in alone}
        for _ in range(APPLY_ATTEMPTS + 1):  # a node call, then a region's own attempts
            replies = await self._scripts.run(
                node_calls
                + [
                    (REGION_APPLY, self._apply_keys(r, declared[r]), ["0", *args[r]])
                    for r in declared
                ]
            )
            again = {
                regions[i]: set(self._products)
                for at, reply in zip(groups, replies[: len(node_calls)], strict=True)
                if reply is NOT_RUN
                for i in at
            }
            asked = {
                r: {_s(p) for p in reply[1:]}
                for r, reply in zip(declared, replies[len(node_calls) :], strict=True)
                if isinstance(reply, list)
            }
            self._remember(p for products in asked.values() for p in products)
            again.update((r, declared[r] | products) for r, products in asked.items())
            if not again:
                break
            groups, node_calls, declared = [], [], again
        else:
            raise BackendUnavailable(f"region_apply.lua kept asking for product sets: {asked}")
        new = ops.keys() - self._known_regions
        if new:
            with translated():
                await self._redis.sadd(f"{self._prefix}:regions", *(f"{r:x}" for r in new))
            self._known_regions |= new

    async def _change(self, driver_ids: Sequence[str], op: str, arg: int | str = 0) -> list[str]:
        """Run driver_change.lua on each driver, then mirror the change into its region."""
        if not driver_ids:
            return []
        args = self._change_args(op, arg)
        replies = await self._scripts.run(
            [(DRIVER_CHANGE, [self.driver_key(d)], args) for d in driver_ids]
        )
        return await self._mirror(driver_ids, op, replies)

    def _change_args(self, op: str, arg: int | str = 0) -> list[str | int]:
        return [op, arg, self._driver_pexpire, self._default_prods]

    async def _mirror(
        self, driver_ids: Sequence[str], op: str, replies: Sequence[Any]
    ) -> list[str]:
        """Mirror driver_change.lua's replies (one per driver, `op` on each) into the
        drivers' regions; the drivers it changed."""
        ops: dict[int, list[str]] = {}
        changed = []
        for driver_id, reply in zip(driver_ids, replies, strict=True):
            if int(reply[0]) == 0:
                continue
            changed.append(driver_id)
            ver, region, ts, lat, lng, score, avail, prods = (_s(x) for x in reply[1:9])
            flag = "t" if op == "del" else "a" if avail == "1" else "b"
            ts_out = ts if flag != "t" else str(self._clock())
            ops.setdefault(int(region, 16), []).append(
                f"{flag} {driver_id} {ver} {ts_out} {score} {lat} {lng} {prods}"
            )
        await self._apply(ops)
        return changed

    async def remove(self, driver_ids: Sequence[str]) -> int:
        ids = [limits.check_driver_id(i) for i in driver_ids]
        return len(await self._change(ids, "del"))

    async def set_available(self, driver_id: str, available: bool) -> bool:
        limits.check_driver_id(driver_id)
        return bool(await self._change([driver_id], "1" if available else "0"))

    def availability_step(self, available: bool) -> tuple[Script, list[str | int]]:
        """set_available's first half for a store that runs it inside a script of its own
        on the driver's slot (dispatch's reservation): driver_change.lua, to be called on
        driver_key(driver_id) with these arguments; its reply then goes to
        mirror_availability, which writes the region as set_available does."""
        return DRIVER_CHANGE, self._change_args("1" if available else "0")

    async def mirror_availability(
        self, driver_id: str, available: bool, reply: Sequence[Any]
    ) -> bool:
        """set_available's second half: `reply` is driver_change.lua's answer to
        availability_step(available) on this driver."""
        limits.check_driver_id(driver_id)
        return bool(await self._mirror([driver_id], "1" if available else "0", [reply]))

    async def set_available_many(self, driver_ids: Sequence[str], available: bool) -> int:
        ids = [limits.check_driver_id(i) for i in driver_ids]
        return len(await self._change(ids, "1" if available else "0"))

    async def set_products(self, driver_id: str, products: Sequence[str]) -> bool:
        limits.check_driver_id(driver_id)
        prods = _joined_products(limits.check_products(products))
        return bool(await self._change([driver_id], "prods", prods))

    async def expire(self, cutoff_ms: int) -> list[str]:
        limits.check_ts(cutoff_ms)
        with translated():
            members = await self._redis.smembers(f"{self._prefix}:regions")
        regions = [int(_s(r), 16) for r in members]
        tomb_cutoff = cutoff_ms - self.ttl_ms
        gone: set[str] = set()
        while regions:
            replies = await self._scripts.run(
                [
                    (REGION_EXPIRE, self._region_keys(r), [cutoff_ms, tomb_cutoff, SWEEP_BATCH])
                    for r in regions
                ]
            )
            ids = sorted({_s(m) for reply in replies for m in reply[1:]})
            # Drop the position from the driver's own key too (its availability stays for
            # its return), unless a fresh fix arrived meanwhile.
            if ids:
                await self._scripts.run(
                    [
                        (
                            DRIVER_CHANGE,
                            [self.driver_key(d)],
                            self._change_args("expire", cutoff_ms),
                        )
                        for d in ids
                    ]
                )
            gone.update(ids)
            regions = [
                r for r, reply in zip(regions, replies, strict=True) if reply[0] >= SWEEP_BATCH
            ]
        return sorted(gone)

    # -- the split list (geoindex/split.py) ------------------------------------------------
    async def region_split(self) -> Layout:
        """The split list as every instance reads it (fresh from Redis)."""
        return await self._split.load()

    async def split_region(self, parent: str, res: int, settle_s: float | None = None) -> Layout:
        """Index `parent`'s drivers at `res` (region_res: unsplit it) and re-home them.
        Each phase waits `settle_s` (default: three refresh intervals) for every instance
        to read it, so the whole change takes about two of those plus the move."""
        settle = 3 * self._split_refresh_s if settle_s is None else settle_s
        return await migrate(self._split, parent, res, self._rehome, settle)

    async def _rehome(self, regions: list[int], layout: Layout) -> int:
        """Move the fresh drivers of `regions` (a migrating parent's old ones) to their
        region in `layout`, each by a versioned move on its own key; returns how many."""
        min_ts = self._clock() - self.ttl_ms
        moved = 0
        for region in regions:
            meta = self._region_keys(region)[1]
            cursor: int | None = None
            while cursor != 0:
                with translated():
                    cursor, rows = await self._redis.hscan(meta, cursor or 0, count=SWEEP_BATCH)
                ids = [
                    _s(i)
                    for i, v in rows.items()
                    if v[-1:] != b"t" and _HEAD_TS.unpack_from(v, 8)[0] >= min_ts
                ]
                moved += await self._rehome_drivers(ids, region, layout)
        return moved

    async def _rehome_drivers(self, ids: list[str], region: int, layout: Layout) -> int:
        if not ids:
            return 0
        with translated():
            pipe = self._redis.pipeline(transaction=False)
            for d in ids:
                pipe.hget(self.driver_key(d), "score")
            scores = await pipe.execute()
        moves = [
            (d, layout.write_region(int(score)))
            for d, score in zip(ids, scores, strict=True)
            if score is not None
        ]
        replies = await self._scripts.run(
            [
                (
                    DRIVER_CHANGE,
                    [self.driver_key(d)],
                    ["rehome", f"{region:x} {target:x}", self._driver_pexpire, "-"],
                )
                for d, target in moves
            ]
        )
        ops: dict[int, list[str]] = {}
        for (driver_id, target), reply in zip(moves, replies, strict=True):
            if int(reply[0]) == 0:
                continue  # moved by a fix of its own meanwhile, or gone
            ver, _, ts, lat, lng, score, avail, prods = (_s(x) for x in reply[1:9])
            flag = "a" if avail == "1" else "b"
            ops.setdefault(target, []).append(
                f"{flag} {driver_id} {ver} {ts} {score} {lat} {lng} {prods}"
            )
            ops.setdefault(region, []).append(f"t {driver_id} {ver} {self._clock()} 0 0 0 -")
        await self._apply(ops)
        return sum(len(v) for r, v in ops.items() if r != region)

    # -- reads ----------------------------------------------------------------------------
    async def get(self, driver_id: str) -> DriverState | None:
        limits.check_driver_id(driver_id)
        with translated():
            lat, lng, ts, seq, avail, prods = await self._redis.hmget(
                self.driver_key(driver_id), "lat", "lng", "ts", "seq", "avail", "prods"
            )
        if ts is None:
            return None
        return DriverState(
            driver_id,
            float(lat),
            float(lng),
            int(ts),
            int(seq) if seq is not None else None,
            _s(avail) == "1",
            _products(_s(prods) if prods is not None else self._default_prods),
        )

    async def nearest(
        self, lat: float, lng: float, k: int, radius_m: float, product: str | None = None
    ) -> list[Neighbor]:
        self._searching += 1
        try:
            return await self._nearest(lat, lng, k, radius_m, product, self._scan_together)
        finally:
            self._searching -= 1

    async def _scan_together(self, calls: Sequence[Call]) -> list[Any]:
        """The replies to one search's scans, sent with the scans every other search asked
        for in the same turn of the event loop: one write and one batch of replies for
        them all instead of a connection taken, a write and a read each (a third of the
        client's time a query at 20 concurrent searches). Alone, a search waits for no one
        (the batch leaves on the loop's next turn). A failed batch fails each search in it."""
        mine: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if not self._scan_queue:
            sender = asyncio.create_task(self._send_scans())
            self._scan_senders.add(sender)  # the loop holds tasks weakly
            sender.add_done_callback(self._scan_senders.discard)
        self._scan_queue.append((calls, mine))
        return await mine

    async def _send_scans(self) -> None:
        asked, self._scan_queue = self._scan_queue, []
        if not isinstance(self._redis, RedisCluster):
            return await self._send_scan_batch(asked)
        # On a cluster a search waits only for the nodes its scans read (a node throttled
        # or failing over holds up no search that does not read it): the searches reading
        # the same nodes leave together, each such batch on its own.
        batches: dict[Any, Asked] = {}
        for search in asked:
            batches.setdefault(self._nodes_read(search[0]), []).append(search)
        await asyncio.gather(*(self._send_scan_batch(b) for b in batches.values()))

    def _nodes_read(self, calls: Sequence[Call]) -> frozenset[str] | None:
        try:
            return frozenset(self._redis.get_node_from_key(keys[0]).name for _, keys, _ in calls)
        except rx.SlotNotCoveredError:  # mid-failover: the runner's fallback decides
            return None

    async def _send_scan_batch(self, asked: Asked) -> None:
        # Searches in step with each other keep this process and Redis waiting in turn:
        # a batch holding more than half of them hands half its replies out first, and
        # their next scans are in Redis while the others' replies are worked on.
        first = len(asked) // 2 if 2 * len(asked) > self._searching else 0
        with contextlib.suppress(Exception):  # each search in the batch holds the failure
            await send_together(self._scripts.run, asked, first=first)

    async def nearest_many(
        self,
        points: Sequence[tuple[float, float]],
        k: int,
        radius_m: float,
        product: str | None = None,
    ) -> list[list[Neighbor]]:
        limits.check_searches(points, k, radius_m, product)
        rounds = Rounds(self._scripts.run, len(points))

        async def search(lat: float, lng: float) -> list[Neighbor]:
            try:
                return await self._nearest(lat, lng, k, radius_m, product, rounds.run)
            finally:
                await rounds.leave()

        return list(await asyncio.gather(*(search(lat, lng) for lat, lng in points)))

    async def _nearest(
        self, lat: float, lng: float, k: int, radius_m: float, product: str | None, run: Run
    ) -> list[Neighbor]:
        """`run`: where the scans' script calls go (the runner, or a round of many)."""
        lat, lng = limits.check_latlng(lat, lng)
        k, radius_m = limits.check_k(k), limits.check_radius(radius_m)
        suffix = "" if product is None else ":" + limits.check_product(product)
        where, min_ts = [repr(lat), repr(lng), k], self._clock() - self.ttl_ms
        layout = await self._layouts.get()

        async def scan(scans: Scans, cap_m: float) -> list[bytes]:
            head = [*where, repr(cap_m), min_ts]
            replies = await run(
                [
                    (
                        KNN,
                        [self._region_keys(r)[0] + suffix],
                        [*head, rows.astype("<f8").tobytes()],
                    )
                    for r, rows in scans.items()
                ]
            )
            return replies[0] if len(replies) == 1 else [m for reply in replies for m in reply]

        return await k_nearest(
            lat, lng, k, radius_m, self._config, layout.scans, scan, self._hints, product
        )

    async def supply(
        self, lat: float, lng: float, radius_m: float, resolution: int
    ) -> dict[str, int]:
        cells = supply_cells(lat, lng, radius_m, resolution, self._config.region_res)
        return await self._count_supply(cells)

    async def supply_in(self, cells: Sequence[str], product: str | None = None) -> dict[str, int]:
        suffix = "" if product is None else ":" + limits.check_product(product)
        return await self._count_supply(named_cells(cells, self._config.region_res), suffix)

    async def supply_table(
        self, cells: Sequence[str] | CellIds, products: Sequence[str]
    ) -> npt.NDArray[np.int64]:
        suffixes = [":" + p for p in checked_products(products)]
        layout = await self._layouts.get()
        if isinstance(cells, np.ndarray):
            ids = id_rows(cells, self._config.region_res)
            if not any_split(layout.parents, ids.regions):  # a row per cell, no Python per cell
                return await self._count_ranges(ids.regions, ids.lo, ids.hi, suffixes)
            named = ids.as_cells()
        else:
            named = named_cells(cells, self._config.region_res)
        rows = layout.supply_cells(named)
        return table_columns(named, rows, await self._count_rows(rows, suffixes))

    async def _count_supply(self, cells: list[SupplyCell], suffix: str = "") -> dict[str, int]:
        """`suffix`: a product's sets (":<product>") instead of every driver's."""
        cells = (await self._layouts.get()).supply_cells(cells)
        counts = iter((await self._count_rows(cells, [suffix]))[0].tolist())
        return count_supply(cells, lambda region, lo, hi: next(counts))

    async def _count_rows(
        self, rows: list[SupplyCell], suffixes: Sequence[str]
    ) -> npt.NDArray[np.int64]:
        """Fresh drivers in each row's score range of its region, in the region's sets
        named by `suffixes` ("" every driver's, ":<product>" a product's): a row per
        suffix, a column per row."""
        flat = itertools.chain.from_iterable(rows)
        table = np.fromiter(flat, dtype=np.uint64, count=4 * len(rows)).reshape(-1, 4)
        return await self._count_ranges(table[:, 1], table[:, 2], table[:, 3], suffixes)

    async def _count_ranges(
        self, regions: CellIds, lo: CellIds, hi: CellIds, suffixes: Sequence[str]
    ) -> npt.NDArray[np.int64]:
        """_count_rows of rows given as arrays: one script call per region, every set in
        it, the ranges grouped by region and packed with numpy (a recompute counts
        thousands of cells)."""
        out = np.zeros((len(suffixes), len(regions)), dtype=np.int64)
        if not len(regions) or not suffixes:
            return out
        order = np.argsort(regions, kind="stable")
        distinct, starts = np.unique(regions[order], return_index=True)
        groups = np.split(order, starts[1:])
        bounds = np.column_stack([lo, hi]).astype("<f8")
        min_ts = self._clock() - self.ttl_ms
        calls = [
            (
                REGION_COUNT,
                [self._region_keys(r)[0] + s for s in suffixes],
                [min_ts, bounds[rows_of].tobytes()],
            )
            for r, rows_of in zip(distinct.tolist(), groups, strict=True)
        ]
        for rows_of, reply in zip(groups, await self._scripts.run(calls), strict=True):
            out[:, rows_of] = np.array(reply, dtype=np.int64).reshape(len(suffixes), -1)
        return out

    async def within(
        self, lat: float, lng: float, radius_m: float, limit: int
    ) -> list[DriverState]:
        return (await self.within_columns(lat, lng, radius_m, limit)).states()

    async def within_columns(self, lat: float, lng: float, radius_m: float, limit: int) -> Columns:
        lat, lng = limits.check_latlng(lat, lng)
        radius_m, limit = limits.check_radius(radius_m), check_limit(limit)
        heads, ids, prods = await self._area_rows(lat, lng, radius_m, limit)
        lats, lngs = heads["lat"], heads["lng"]
        rows = nearest_rows(lat, lng, radius_m, limit, ids, lats, lngs)
        kept = rows.tolist()
        decoded: dict[str, tuple[str, ...]] = {}  # a fleet has few product sets
        return Columns(
            [ids[r] for r in kept],
            lats[rows],
            lngs[rows],
            heads["ts"][rows].astype(np.int64),
            heads["flag"][rows] == b"a",
            [
                decoded[p] if p in decoded else decoded.setdefault(p, _products(p))
                for p in (prods[r] for r in kept)
            ],
        )

    async def _area_rows(
        self, lat: float, lng: float, radius_m: float, limit: int
    ) -> tuple[np.ndarray[Any, Any], list[str], list[str]]:
        """The fresh drivers of every region the disk touches, one row each (heads as
        _HEAD, ids, products fields), in no particular order."""
        regions = (await self._layouts.get()).area_regions(lat, lng, radius_m)
        args = [repr(lat), repr(lng), repr(radius_m), self._clock() - self.ttl_ms, limit]
        replies = await self._scripts.run(
            [(REGION_WITHIN, self._region_keys(r)[1:2], args) for r in regions]
        )
        heads = np.frombuffer(b"".join(bytes(r[0]) for r in replies), _HEAD)
        ids: list[str] = []
        prods: list[str] = []
        for _, joined_ids, joined_prods in replies:
            if joined_ids:
                ids += _s(joined_ids).split(" ")
                prods += _s(joined_prods).split(" ")
        if len(set(ids)) == len(ids):
            return heads, ids, prods
        # A driver crossing a border may show in both regions for a moment: newest wins.
        newest: dict[str, int] = {}
        versions = heads["ver"].tolist()
        for row, driver_id in enumerate(ids):
            if driver_id not in newest or versions[newest[driver_id]] < versions[row]:
                newest[driver_id] = row
        rows = sorted(newest.values())
        return heads[rows], [ids[r] for r in rows], [prods[r] for r in rows]

    async def close(self) -> None:
        with translated():
            await self._redis.aclose()


def _parent_bits(res: int) -> tuple[int, int]:
    """A res-15 score's parent at `res` is `head | score | low`: H3's index of a cell at
    `res` is the fine cell's with that resolution and every finer digit 7
    (h3.cell_to_parent's own arithmetic, without a call)."""
    return 1 << 59 | res << 52, (1 << 3 * (FINE_RES - res)) - 1


def _change(op: str) -> Change:
    """A region change given as text ("flag id ver ts score lat lng prods", the numbers
    as Redis or repr() writes them), as region_apply.lua takes it."""
    flag, driver_id, ver, ts, score, lat, lng, prods = op.split(" ")
    return _packed(flag, driver_id, float(ver), ts, score, float(lat), float(lng), prods.encode())


def _packed(
    flag: str,
    driver_id: str,
    ver: float,
    ts: int | str,
    score: int | str,
    lat: float,
    lng: float,
    prods: bytes,
) -> Change:
    """A region change as region_apply.lua takes it: the meta value (version, fix time,
    position, products, the flag: a available, b busy, t gone to another region) and, for
    an available driver only, its geo member and score. No products are packed as none at
    all (not "-"): region_apply.lua tells such a value by its length alone."""
    value = _META_HEAD.pack(ver, float(ts), lat, lng) + (b"" if prods == b"-" else prods)
    value += flag.encode()
    if flag != "a":
        return (driver_id, value, b"", 0, ts)
    member = _MEMBER_HEAD.pack(lat, lng, float(ts)) + driver_id.encode()
    return (driver_id, value, member, score, ts)


def _gone(driver_id: str, ver: float, ts: int, old_region: int) -> Change:
    """The change that takes a driver out of the region it left (old_region's)."""
    return _packed("t", driver_id, ver, ts, 0, 0.0, 0.0, b"-")


def _change_products(change: Change) -> tuple[str, ...]:
    """The products an available driver's region change adds it under."""
    value = change[1]
    return _products(value[32:-1].decode()) if value[-1:] == b"a" else ()


def _joined_products(products: tuple[str, ...]) -> str:
    return ",".join(products) or "-"


def _products(joined: str) -> tuple[str, ...]:
    return tuple(p for p in joined.split(",") if p and p != "-")


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _b(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
