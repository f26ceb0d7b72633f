"""Batched matching: rides wait in their region's queue (status searching) and each
window of a region is solved as one assignment (dispatch.domain.assignment) by the one
instance holding the region's lease.

Nothing is lost or solved twice: the ride's own record is the truth. A queue entry is
added before the ride is stored or sent back to searching, and removed only once the
ride has left searching (or never appeared); a window moves a ride from searching to
offered by compare-and-set, so of two solvers (a stalled holder and its successor) only
one can; and the driver is reserved by the atomic reservation with its fencing token
before the ride names it. A rider near a region border draws candidates across it (the
index's search is exact across regions); two regions wanting one driver are settled by
the reservation: the loser's rider waits for its next window.

A window that dies between reserving its drivers and storing its offers (the holder
killed, or stalled past its lease) would leave those drivers reserved for rides still
searching until their leases lapse. So the window first notes its pairs as holds, under
its lease fence in the lease's own atomic step; each window starts by settling the holds
left by earlier ones (free_stale_holds).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

from dispatch.domain import rides
from dispatch.domain.assignment import Edge
from dispatch.domain.drivers import DriverStatus
from dispatch.domain.eta import EtaParams
from dispatch.domain.rides import Ride, RideChange, RideStatus
from dispatch.service_layer.assignment import solve
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.effects import offer_timers, settle, settle_many
from dispatch.service_layer.match_window import (
    Batching,
    Hold,
    Queued,
    WindowObserver,
    WindowStats,
)
from dispatch.service_layer.product_search import upgrades_of
from dispatch.service_layer.quotes import count_request, count_requests
from dispatch.service_layer.region_jobs import run_region_job
from dispatch.service_layer.reservations import Chosen, release_driver, reserve_chosen
from geoindex import MAX_K, Neighbor

log = logging.getLogger(__name__)

ORPHAN_GRACE_MS = 10_000  # an entry whose ride is not stored yet: its request may be running
REGIONS_SEEN_MS = 3_600_000  # regions with a request this recent are looked at each window
PARALLEL = 64  # index searches and reservations in flight per window
# A rider whose candidates all went to others draws WIDEN times as many, up to
# WIDEN_ROUNDS times in one window (16 -> 64 -> 100, geoindex.MAX_K).
WIDEN = 4
WIDEN_ROUNDS = 2


def _batching(deps: Deps) -> Batching:
    assert deps.batching is not None, "batched matching is off"
    return deps.batching


async def enqueue(deps: Deps, ride: Ride, now_ms: int) -> None:
    """Queue a searching ride (before it is stored: a crash in between leaves an entry
    the window drops, never a ride nobody will solve)."""
    b = _batching(deps)
    await b.store.add(b.region_of(ride.pickup), ride.id, now_ms)


async def pass_back(deps: Deps, ride: Ride) -> Ride | None:
    """Batched offer_to_next: the offered driver declined or let the offer run out; the
    ride goes back to its region's queue without that driver (or ends once its attempts
    are used). None if another step changed the ride first."""
    now = deps.clock.now_ms()
    new = rides.pass_back(ride, deps.policy.max_attempts, now)
    if new.status is RideStatus.SEARCHING:
        await enqueue(deps, new, now)
    if not await deps.rides.replace(new):
        return None
    await settle(deps, RideChange(ride, new))  # frees the driver who passed
    return new


async def _in_chunks(jobs: list, size: int = PARALLEL) -> list:  # type: ignore[type-arg]
    out = []
    for start in range(0, len(jobs), size):
        out.extend(await asyncio.gather(*jobs[start : start + size]))
    return out


@dataclass(frozen=True, slots=True)
class _Candidate:
    driver_id: str
    distance_m: float
    eta_s: int
    serves: tuple[str, ...]  # what the reservation checks: the product, or its upgrades


def _k(deps: Deps, ride: Ride, scale: int = 1) -> int:
    """Enough to see past the ride's decliners; `scale` times the candidates for a ride
    whose first ones were all taken (see _crowded)."""
    return min(MAX_K, _batching(deps).config.candidates * scale + len(ride.declined))


async def _nearest_all(deps: Deps, searching: list[Ride], scale: int = 1) -> list[list[Neighbor]]:
    """Each ride's k nearest free drivers of its product within the window's radius: the
    rides of one k and product searched side by side (GeoIndex.nearest_many: one
    pipeline per round of their searches), PARALLEL of them per call."""
    radius = _batching(deps).config.radius_m
    groups: dict[tuple[int, str | None], list[int]] = {}
    for i, ride in enumerate(searching):
        groups.setdefault((_k(deps, ride, scale), ride.product), []).append(i)
    calls, slots = [], []
    for (k, product), members in groups.items():
        for start in range(0, len(members), PARALLEL):
            part = members[start : start + PARALLEL]
            points = [(searching[i].pickup.lat, searching[i].pickup.lng) for i in part]
            calls.append(deps.index.nearest_many(points, k, radius, product))
            slots.append(part)
    found: list[list[Neighbor]] = [[] for _ in searching]
    for part, hits in zip(slots, await asyncio.gather(*calls), strict=True):
        for i, neighbors in zip(part, hits, strict=True):
            found[i] = neighbors
    return found


def _upgrade_reach(deps: Deps, ride: Ride, own: list[Neighbor]) -> float:
    """How far the ride's upgrades are searched, as in immediate matching (find_offer):
    the largest of its radius steps, up to the window's radius, at which the product has
    no eligible driver left; 0 for a ride with no product or no upgrades."""
    if ride.product is None or not upgrades_of(deps, ride.product):
        return 0.0
    cfg = _batching(deps).config
    nearest_own = own[0].distance_m if own else math.inf
    steps = [s for s in deps.policy.radius_steps_m if s < cfg.radius_m] + [cfg.radius_m]
    return max((s for s in steps if s < nearest_own), default=0.0)


async def _upgrades_all(
    deps: Deps, searching: list[Ride], reaches: list[float]
) -> list[list[Neighbor]]:
    """Each ride's k nearest drivers of any of its upgrades within its reach (merged by
    distance, a driver serving two of them once; [] where the reach is 0), the searches
    of one (k, reach, upgrade) side by side as in _nearest_all: a window of many riders
    and no free driver searched each rider's upgrades one by one, which made it outlast
    its lease."""
    groups: dict[tuple[int, float, str], list[int]] = {}
    for i, (ride, reach) in enumerate(zip(searching, reaches, strict=True)):
        if reach > 0 and ride.product is not None:
            for up in upgrades_of(deps, ride.product):
                groups.setdefault((_k(deps, ride), reach, up), []).append(i)
    calls, slots = [], []
    for (k, reach, up), members in groups.items():
        for start in range(0, len(members), PARALLEL):
            part = members[start : start + PARALLEL]
            points = [(searching[i].pickup.lat, searching[i].pickup.lng) for i in part]
            calls.append(deps.index.nearest_many(points, k, reach, up))
            slots.append(part)
    merged: list[dict[str, Neighbor]] = [{} for _ in searching]
    for part, hits in zip(slots, await asyncio.gather(*calls), strict=True):
        for i, neighbors in zip(part, hits, strict=True):
            merged[i].update((n.driver_id, n) for n in neighbors)
    return [
        sorted(m.values(), key=lambda n: (n.distance_m, n.driver_id))[: _k(deps, ride)]
        for ride, m in zip(searching, merged, strict=True)
    ]


def _eligible(deps: Deps, ride: Ride, found: list[Neighbor], scale: int = 1) -> list[Neighbor]:
    """The drivers of `found` the ride may be offered: not its decliners, inside the
    service area its pickup is in; at most `scale` times the window's candidates."""
    zone = deps.areas.zone(ride.pickup.lat, ride.pickup.lng)
    return [
        n
        for n in found
        if n.driver_id not in ride.declined and deps.areas.admits(zone, n.lat, n.lng)
    ][: _batching(deps).config.candidates * scale]


def _candidates(
    deps: Deps, ride: Ride, road: EtaParams, own: list[Neighbor], ups: list[Neighbor]
) -> list[_Candidate]:
    """The ride's candidates: `own`, its product's eligible drivers, and `ups`, its
    upgrades' eligible drivers within the reach _upgrade_reach gave (the solver then
    weighs them by ETA like the rest); `road`: the ETA model's parameters at its pickup
    (read for the whole window at once)."""
    product = ride.product
    serves = () if product is None else (product,)
    out = [_Candidate(n.driver_id, n.distance_m, road.eta_s(n.distance_m), serves) for n in own]
    if product is None or not ups:
        return out
    upgrades = upgrades_of(deps, product)
    taken = {c.driver_id for c in out}  # a driver serving both: as its own product's
    out += [
        _Candidate(n.driver_id, n.distance_m, road.eta_s(n.distance_m), upgrades)
        for n in ups
        if n.driver_id not in taken
    ]
    return out


def _add_edges(
    ride: Ride,
    cands: list[_Candidate],
    pairs: dict[tuple[str, str], _Candidate],
    edges: list[Edge],
) -> None:
    """The solver's edges of `ride` to its candidates not yet among `pairs`."""
    for c in cands:
        if (ride.id, c.driver_id) not in pairs:
            pairs[(ride.id, c.driver_id)] = c
            edges.append(Edge(ride.id, c.driver_id, float(c.eta_s)))


def _crowded(
    deps: Deps, ride: Ride, found: list[Neighbor], road: EtaParams, waited_ms: float, scale: int
) -> bool:
    """An unmatched ride's search stopped at its k (`found`: what it returned) while its
    farthest driver would still have beaten staying unmatched: the next nearest drivers
    might too. (An unmatched ride's candidates that beat it were all taken: the solve
    is optimal.)"""
    k = _k(deps, ride, scale)
    if k >= MAX_K or len(found) < k:
        return False
    objective = _batching(deps).config.objective
    return objective.cost(road.eta_s(found[-1].distance_m), waited_ms) < objective.penalty_s


async def _end_search(deps: Deps, ride: Ride, now_ms: int) -> bool:
    new = rides.search_ended(ride, now_ms)
    if not await deps.rides.replace(new):
        return False
    await settle(deps, RideChange(ride, new))
    if ride.attempts == 0:
        await count_request(deps, new)  # the market hears the request's outcome once
    return True


async def _offer_all(
    deps: Deps, by_id: dict[str, Ride], chosen: list[Chosen], now_ms: int
) -> list[str]:
    """Per pair: 'matched', 'refused' (the driver's record said no) or 'changed' (the
    ride did). Each step goes out for the whole window at once: reservations, then the
    rides' compare-and-sets beside their offer timers, then the notices."""
    offers = await reserve_chosen(deps, chosen, now_ms)
    offered = {
        c.ride_id: (
            offer,
            RideChange(by_id[c.ride_id], rides.matched(by_id[c.ride_id], offer, now_ms)),
        )
        for c, offer in zip(chosen, offers, strict=True)
        if offer is not None
    }
    changes = [change for _, change in offered.values()]
    # A timer whose ride was not written finds it not offered and does nothing
    # (deadlines.expire_offer): set beside the writes, it costs the offers no wait.
    stored, _ = await asyncio.gather(
        deps.rides.replace_many([c.after for c in changes]),
        deps.deadlines.schedule_many(offer_timers(changes)),
    )
    matched = []
    changed = []  # the ride left searching meanwhile (cancelled): its driver goes back
    for (offer, change), ok in zip(offered.values(), stored, strict=True):
        if ok:
            matched.append(change)
        else:
            changed.append(release_driver(deps, offer.driver_id, change.after.id, offer.fence))
    await settle_many(deps, matched, offer_timers_set=True)
    await _in_chunks(changed)
    # A ride's first offer: counted as offered, with its ETA.
    await count_requests(deps, [c.after for c in matched if by_id[c.after.id].attempts == 0])
    done = {c.after.id for c in matched}
    return [
        "matched" if c.ride_id in done else "changed" if c.ride_id in offered else "refused"
        for c in chosen
    ]


async def free_stale_holds(
    deps: Deps, holds: list[Hold], loaded: dict[str, Ride]
) -> tuple[set[str], int]:
    """Free the drivers earlier windows of the region reserved for rides they never named:
    the rides whose holds stay for the next window, and how many drivers were freed.
    `loaded`: the rides, by id, as read; updated with those written here.

    Called as a window starts, under the region's lease: the holder's own earlier windows
    have ended (its rounds run one after the other), and those of older fences may only
    be stalled. Each such window offers a ride by compare-and-set over the version it
    read, so a ride still searching is first written again (rides.reclaimed): no window
    before can then store its offer, and one that tries gives its driver back itself.
    Only then is a driver still reserved for the ride released, by its own reservation
    token (a compare-and-set on the driver's record). A ride that names its hold's driver
    was offered it; one that changed meanwhile keeps its hold for the next window."""
    now = deps.clock.now_ms()
    searching = [
        r
        for h in holds
        if (r := loaded.get(h.ride_id)) is not None and r.status is RideStatus.SEARCHING
    ]
    again = [rides.reclaimed(r, now) for r in searching]
    kept = set()  # changed meanwhile: not this window's to solve
    for new, ok in zip(again, await deps.rides.replace_many(again), strict=True):
        if ok:
            loaded[new.id] = new
        else:
            kept.add(new.id)
    check = [
        h
        for h in holds
        if h.ride_id not in kept
        and ((r := loaded.get(h.ride_id)) is None or r.driver_id != h.driver_id)
    ]
    records = await _in_chunks([deps.drivers.get(h.driver_id) for h in check])
    freed = await _in_chunks(
        [
            release_driver(deps, h.driver_id, h.ride_id, rec.fence)
            for h, rec in zip(check, records, strict=True)
            if rec.status is DriverStatus.RESERVED and rec.ride_id == h.ride_id
        ]
    )
    return kept, sum(freed)


async def solve_region(
    deps: Deps, region: int, holder: str, fence: int, queued: Queued | None = None
) -> WindowStats:
    """One window of one region, under the lease `fence`; `queued`: its queue if already
    read (window_round reads it beside the lease's renewal)."""
    b = _batching(deps)
    cfg = b.config
    now = deps.clock.now_ms()
    stats = WindowStats(region=region)
    began = time.monotonic()
    if queued is None:
        queued = await b.store.pending(region, cfg.max_pending)
    entries = queued.entries
    ids = [e.ride_id for e in entries]
    queued_ids = set(ids)
    ids += [h.ride_id for h in queued.holds if h.ride_id not in queued_ids]
    loaded = {r.id: r for r in await deps.rides.get_many(ids) if r is not None}
    kept: set[str] = set()
    if queued.holds:
        kept, stats.freed = await free_stale_holds(deps, queued.holds, loaded)
    settled = [h.ride_id for h in queued.holds if h.ride_id not in kept]
    done: list[str] = []  # entries whose ride left searching (or never came)
    searching: list[Ride] = []
    for entry in entries:
        ride = loaded.get(entry.ride_id)
        if entry.ride_id in kept:
            continue
        if ride is None:
            if now - entry.since_ms > ORPHAN_GRACE_MS:
                done.append(entry.ride_id)
        elif ride.status is not RideStatus.SEARCHING:
            done.append(ride.id)
        elif now - entry.since_ms >= cfg.max_wait_ms:  # since it (re-)entered the queue
            if await _end_search(deps, ride, now):
                stats.gave_up += 1
                done.append(ride.id)
        else:
            searching.append(ride)
    stats.pending = len(searching)
    roads, nearest = await asyncio.gather(
        deps.eta.params_many([r.pickup for r in searching], now), _nearest_all(deps, searching)
    )
    own = [_eligible(deps, r, n) for r, n in zip(searching, nearest, strict=True)]
    reaches = [_upgrade_reach(deps, r, o) for r, o in zip(searching, own, strict=True)]
    ups = [
        _eligible(deps, r, u)
        for r, u in zip(searching, await _upgrades_all(deps, searching, reaches), strict=True)
    ]
    found = [
        _candidates(deps, r, p, o, u) for r, p, o, u in zip(searching, roads, own, ups, strict=True)
    ]
    pairs: dict[tuple[str, str], _Candidate] = {}
    edges: list[Edge] = []
    for ride, cands in zip(searching, found, strict=True):
        _add_edges(ride, cands, pairs, edges)
    started = time.process_time()
    waited = {r.id: float(now - r.created_at) for r in searching}
    chosen = solve(cfg.objective, waited, edges)
    stats.solve_s = time.process_time() - started
    # Riders whose every candidate went to another rider while nearer drivers than the
    # penalty's were left unseen (a crowded spot of a busy window) draw more and the
    # window is solved again: otherwise they wait a whole window more for nothing.
    scale = 1
    for _ in range(WIDEN_ROUNDS):
        crowded = [
            i
            for i, r in enumerate(searching)
            if r.id not in chosen and _crowded(deps, r, nearest[i], roads[i], waited[r.id], scale)
        ]
        if not crowded:
            break
        scale *= WIDEN
        wider = await _nearest_all(deps, [searching[i] for i in crowded], scale)
        for i, hits in zip(crowded, wider, strict=True):
            ride, nearest[i] = searching[i], hits
            own_more = _eligible(deps, ride, hits, scale)
            _add_edges(ride, _candidates(deps, ride, roads[i], own_more, []), pairs, edges)
        started = time.process_time()
        chosen = solve(cfg.objective, waited, edges)
        stats.solve_s += time.process_time() - started
        stats.widened += len(crowded)
    stats.candidates = len(edges)
    # Still ours? A holder that stalled past its lease leaves the window to its successor.
    # The pairs are noted in the same atomic step, before any driver is reserved.
    if not await _hold(deps, region, holder, fence, chosen):
        stats.carried = len(searching)
        return stats
    picks = []
    for r, d in chosen.items():
        c = pairs[(r, d)]
        picks.append(Chosen(r, d, c.distance_m, c.eta_s, c.serves))
    results = await _offer_all(deps, {r.id: r for r in searching}, picks, now)
    stats.took_s = time.monotonic() - began
    for ride_id, result in zip(chosen, results, strict=True):
        if result == "matched":
            stats.matched += 1
            done.append(ride_id)
        elif result == "refused":
            stats.refused += 1
    stats.carried = stats.pending - stats.matched
    await b.store.remove(region, done, [*settled, *chosen])
    if isinstance(deps.observer, WindowObserver):
        deps.observer.window_solved(stats)
    return stats


async def _hold(deps: Deps, region: int, holder: str, fence: int, chosen: dict[str, str]) -> bool:
    """Note the window's pairs under its lease; a lease that lapsed during a slow round
    comes back with its fence if no one took the region meanwhile (take_lease)."""
    b = _batching(deps)
    ttl = b.config.lease_ms
    if await b.store.hold(region, holder, fence, ttl, chosen):
        return True
    if await b.store.take_lease(region, holder, ttl, fence) != fence:
        return False
    return await b.store.hold(region, holder, fence, ttl, chosen)


@dataclass(slots=True)
class Pacing:
    """How run_window_job spreads a round's windows: the held regions' windows start
    `spread_s` apart in all, evenly, and none later than `spread_s` after its region's
    last (`last`: region -> time.monotonic() of its last window, kept from round to
    round)."""

    spread_s: float
    last: dict[int, float] = field(default_factory=dict)


async def window_round(
    deps: Deps, holder: str, held: dict[int, int], pacing: Pacing | None = None
) -> list[WindowStats]:
    """Take or renew every queued region's lease and solve the windows of those held.
    `held` (region -> fence) is this instance's, kept from round to round. Without
    `pacing` each window starts as soon as the one before it ends."""
    b = _batching(deps)
    now = deps.clock.now_ms()
    out = []
    regions = await b.store.regions(now - REGIONS_SEEN_MS)
    # Paced, each held region's queue is read every window whatever the regions before
    # it took (one after the other, a rider who just missed a read waited the window plus
    # any growth of the earlier regions' work), and one region's offers and the requests
    # they wake do not meet the next region's work. Regions not held yet (new ones, or
    # another instance's) go first, at once: a new region's first riders have waited for
    # it to be listed already. A region whose slot moved later (a region was added) keeps
    # its last one instead, so no region waits more than a window for the spreading.
    started = time.monotonic()
    order = [(started, r) for r in regions if r not in held]
    known = [r for r in regions if r in held]
    for i, region in enumerate(known):
        due = started
        if pacing is not None:
            due += i * pacing.spread_s / len(known)
            if region in pacing.last:
                due = min(due, pacing.last[region] + pacing.spread_s)
        order.append((due, region))
    order.sort(key=lambda x: x[0])
    if pacing is not None:
        pacing.last = {r: t for r, t in pacing.last.items() if r in held}
    for due, region in order:
        if pacing is not None:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            pacing.last[region] = time.monotonic()
        renew = b.store.take_lease(region, holder, b.config.lease_ms, held.get(region, 0))
        queued = None
        if region in held:  # most likely still ours: its queue is read meanwhile
            fence, queued = await asyncio.gather(
                renew, b.store.pending(region, b.config.max_pending)
            )
        else:
            fence = await renew
        if fence is None:
            held.pop(region, None)
            continue
        held[region] = fence
        out.append(await solve_region(deps, region, holder, fence, queued))
    return out


async def run_window_job(deps: Deps, holder: str, *, give_up_leases: bool = True) -> None:
    """Solve every window_ms until cancelled; then give the leases up (see region_jobs)."""
    batching = _batching(deps)
    pacing = Pacing(batching.config.window_ms / 1000)

    async def drop(region: int, fence: int) -> None:
        await batching.store.drop_lease(region, holder, fence)

    await run_region_job(
        "matching window",
        lambda held: window_round(deps, holder, held, pacing),
        drop,
        batching.config.window_ms / 1000,
        give_up_leases=give_up_leases,
    )
