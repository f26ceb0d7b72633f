"""The reservation checks the product in the same atomic step as the compare-and-set, on
memory, a single Redis and a Redis Cluster: a driver whose vehicle changed after the
search that found it cannot be reserved for a product it no longer serves."""

from __future__ import annotations

from .conftest import Backend

LEASE = 30_000


async def test_a_driver_is_reserved_only_for_a_product_it_serves(backend: Backend) -> None:
    now = backend.clock.now
    await backend.fix("d1")
    await backend.deps.index.set_products("d1", ["economy", "xl"])
    drivers = backend.deps.drivers
    assert await drivers.reserve("d1", "r1", now, now + LEASE, ("wav",)) is None
    assert await drivers.reserve("d1", "r1", now, now + LEASE, ("comfort", "xl")) is not None


async def test_a_vehicle_changed_after_the_search_is_refused(backend: Backend) -> None:
    now = backend.clock.now
    await backend.fix("d1")
    await backend.deps.index.set_products("d1", ["wav"])
    found = await backend.deps.index.nearest(52.52, 13.40, 1, 100, "wav")
    assert [n.driver_id for n in found] == ["d1"]
    await backend.deps.index.set_products("d1", ["economy"])  # between search and reserve
    assert await backend.deps.drivers.reserve("d1", "r1", now, now + LEASE, ("wav",)) is None


async def test_a_driver_that_never_set_a_vehicle_serves_the_default_product(
    backend: Backend,
) -> None:
    now = backend.clock.now
    await backend.fix("d1")
    drivers = backend.deps.drivers
    assert await drivers.reserve("d1", "r1", now, now + LEASE, ("xl",)) is None
    assert await drivers.reserve("d1", "r1", now, now + LEASE, ("economy",)) is not None
