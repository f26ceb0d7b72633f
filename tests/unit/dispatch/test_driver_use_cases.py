"""Driver use cases: fixes, staleness (invariant 3), status and who may act (invariant 7)."""

from __future__ import annotations

import pytest

from dispatch.domain.drivers import DriverStatus
from dispatch.domain.errors import DriverBusy
from dispatch.domain.principals import Principal, Role
from dispatch.service_layer import drivers
from dispatch.service_layer.drivers import Fix
from dispatch.service_layer.errors import Forbidden, InvalidRequest, NotFound
from geoindex import Position, UpsertResult

from .conftest import PICKUP, World, driver, rider


async def test_a_fix_is_stored_and_an_older_one_never_overwrites_it(world: World) -> None:
    now = world.clock.now
    d = world.deps
    first = await drivers.update_location(d, driver("a"), "a", Fix(52.5, 13.4, now, 5))
    assert (first.result, first.stored) == (UpsertResult.ACCEPTED, None)
    for fix in (Fix(52.6, 13.5, now - 1, 6), Fix(52.6, 13.5, now + 1, 5), Fix(52.6, 13.5, now, 6)):
        stale = await drivers.update_location(d, driver("a"), "a", fix)
        assert stale.result is UpsertResult.STALE
        assert stale.stored is not None and (stale.stored.ts_ms, stale.stored.seq) == (now, 5)
    state = await d.index.get("a")
    assert state is not None and (state.lat, state.ts_ms, state.seq) == (
        pytest.approx(52.5, abs=1e-5),
        now,
        5,
    )
    assert (world.seen.accepted, world.seen.stale) == (1, 3)


async def test_a_driver_token_cannot_move_another_driver(world: World) -> None:
    now = world.clock.now
    with pytest.raises(Forbidden):
        await drivers.update_location(world.deps, driver("a"), "b", Fix(52.5, 13.4, now, 1))
    for who in (rider("a"), Principal(Role.FLEET, "a")):
        with pytest.raises(Forbidden):
            await drivers.update_location(world.deps, who, "a", Fix(52.5, 13.4, now, 1))
    with pytest.raises(Forbidden):
        await drivers.set_status(world.deps, driver("a"), "b", DriverStatus.OFFLINE)
    with pytest.raises(Forbidden):
        await drivers.get_driver(world.deps, driver("a"), "b")
    assert await world.deps.index.get("b") is None


async def test_a_fix_from_the_future_is_refused(world: World) -> None:
    fix = Fix(52.5, 13.4, world.clock.now + drivers.MAX_FUTURE_MS + 1, 1)
    with pytest.raises(InvalidRequest):
        await drivers.update_location(world.deps, driver("a"), "a", fix)
    assert await world.deps.index.get("a") is None


async def test_only_a_fleet_token_posts_batches(world: World) -> None:
    batch = [Position(f"d{i}", 52.5, 13.4, world.clock.now, 1) for i in range(3)]
    with pytest.raises(Forbidden):
        await drivers.update_locations(world.deps, driver("d0"), batch)
    results = await drivers.update_locations(world.deps, Principal(Role.FLEET, "gw"), batch)
    assert results == [UpsertResult.ACCEPTED] * 3


async def test_offline_drivers_leave_search_and_come_back(world: World) -> None:
    await world.driver_at("a", 100)
    rec, state = await drivers.set_status(world.deps, driver("a"), "a", DriverStatus.OFFLINE)
    assert rec.status is DriverStatus.OFFLINE and state is not None and not state.available
    assert await world.deps.index.nearest(*PICKUP, 5, 1000) == []
    await drivers.set_status(world.deps, driver("a"), "a", DriverStatus.AVAILABLE)
    assert len(await world.deps.index.nearest(*PICKUP, 5, 1000)) == 1


async def test_a_reserved_driver_cannot_go_offline(world: World) -> None:
    from dispatch.domain.geo import LatLng
    from dispatch.service_layer.ride_requests import request_ride

    await world.driver_at("a", 100)
    await request_ride(world.deps, rider("u"), "r_1", LatLng(*PICKUP), None)
    with pytest.raises(DriverBusy):
        await drivers.set_status(world.deps, driver("a"), "a", DriverStatus.OFFLINE)
    rec, _ = await drivers.get_driver(world.deps, driver("a"), "a")
    assert (rec.status, rec.ride_id) == (DriverStatus.RESERVED, "r_1")


async def test_a_driver_nothing_is_known_of_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        await drivers.get_driver(world.deps, driver("typo"), "typo")
    # Known once it has a fix, or a status of its own.
    await drivers.update_location(world.deps, driver("a"), "a", Fix(52.5, 13.4, world.clock.now, 1))
    rec, state = await drivers.get_driver(world.deps, driver("a"), "a")
    assert (rec.status, state is not None) == (DriverStatus.AVAILABLE, True)
    await drivers.set_status(world.deps, driver("b"), "b", DriverStatus.OFFLINE)
    rec, state = await drivers.get_driver(world.deps, driver("b"), "b")
    assert (rec.status, state) == (DriverStatus.OFFLINE, None)


async def test_a_fix_with_no_areas_anywhere_reads_the_clock_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []
    now_ms = world.clock.now_ms
    monkeypatch.setattr(world.clock, "now_ms", lambda: reads.append(1) or now_ms())
    assert world.deps.fences.idle()
    outcome = await drivers.update_location(
        world.deps, driver("a"), "a", Fix(52.5, 13.4, world.clock.now, 1)
    )
    assert outcome.result is UpsertResult.ACCEPTED and len(reads) == 1  # the future check's
