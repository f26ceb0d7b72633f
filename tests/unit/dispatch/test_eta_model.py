"""The ETA model: defaults until it has seen pickups, then what the roads really take."""

from __future__ import annotations

import random

import pytest

from dispatch.adapters.memory_eta import MemoryEtaStore
from dispatch.domain.eta import EtaParams, Learning, hour_of_week, observe
from dispatch.domain.geo import LatLng
from dispatch.service_layer.eta import EtaModel
from tests.fake_clock import START_MS

# Two areas of one simulated city, 20 km apart: a grid of straight avenues and an old
# town of winding lanes.
GRID, OLD_TOWN = LatLng(52.52, 13.30), LatLng(52.52, 13.60)
TRUE_CIRCUITY = {GRID: 1.15, OLD_TOWN: 1.8}
TRUE_SPEED_MPS = 7.0


def pickups(rng: random.Random, area: LatLng, n: int) -> list[tuple[float, float, float]]:
    """(straight-line m, seconds, driven m) of `n` pickups with GPS and traffic noise."""
    out = []
    for _ in range(n):
        d = rng.uniform(300, 3000)
        path = d * TRUE_CIRCUITY[area] * rng.uniform(0.9, 1.1)
        out.append((d, path / (TRUE_SPEED_MPS * rng.uniform(0.85, 1.15)), path))
    return out


@pytest.mark.parametrize("with_paths", [True, False])
async def test_the_model_converges_on_each_areas_own_circuity(with_paths: bool) -> None:
    model = EtaModel(MemoryEtaStore(), region_res=5)
    rng = random.Random(7)
    now = START_MS
    for _ in range(200):
        for area in (GRID, OLD_TOWN):
            for d, s, path in pickups(rng, area, 1):
                await model.observe_pickup(
                    area, d, round(s * 1000), now, path if with_paths else None
                )
    for area, circuity in TRUE_CIRCUITY.items():
        learned = await model.params(area, now)
        truth_eta = 2000 * circuity / TRUE_SPEED_MPS
        # Within 10 % of what the road takes (noise is +-10 to 15 % per pickup).
        assert learned.eta_s(2000) == pytest.approx(truth_eta, rel=0.10)
        if with_paths:
            assert learned.circuity == pytest.approx(circuity, rel=0.08)
            assert learned.speed_mps == pytest.approx(TRUE_SPEED_MPS, rel=0.08)
    # An area nothing was learned in keeps the documented defaults.
    assert await model.params(LatLng(48.0, 2.0), now) == EtaParams()


async def test_what_is_learned_belongs_to_its_hour_of_the_week() -> None:
    model = EtaModel(MemoryEtaStore(), region_res=5)
    await model.observe_pickup(GRID, 1000, 600_000, START_MS, 1500)
    assert (await model.params(GRID, START_MS)).observations == 1
    assert (await model.params(GRID, START_MS + 3_600_000)).observations == 0


def test_a_glitch_is_clamped_and_a_short_pickup_teaches_nothing() -> None:
    learning = Learning(alpha=1.0)
    assert observe(EtaParams(), learning, 50, 30) is None
    wild = observe(EtaParams(), learning, 1000, 1, 90_000)
    assert wild is not None
    assert (wild.circuity, wild.speed_mps) == (3.0, 40.0)


def test_hour_of_week_starts_on_monday_utc() -> None:
    monday = 1_700_438_400_000  # 2023-11-20 00:00 UTC, a Monday
    assert hour_of_week(monday) == 0
    assert hour_of_week(monday + 7 * 24 * 3_600_000 - 1) == 167


async def test_an_arrival_teaches_the_model_of_the_pickup_area(world) -> None:  # type: ignore[no-untyped-def]
    from dispatch.service_layer import ride_steps
    from dispatch.service_layer.ride_requests import new_ride_id, request_ride
    from tests.unit.dispatch.conftest import PICKUP, driver, rider

    await world.driver_at("d1", 1000)
    here = LatLng(*PICKUP)
    ride = await request_ride(world.deps, rider("u1"), new_ride_id("u1", None), here, None)
    await ride_steps.accept(world.deps, driver("d1"), ride.id)
    world.clock.advance(400_000)  # 1 km straight, 400 s: slow going
    await ride_steps.arrive(world.deps, driver("d1"), ride.id)
    learned = await world.deps.eta.params(here, world.clock.now)
    assert learned.observations == 1
    assert learned.circuity > EtaParams().circuity
