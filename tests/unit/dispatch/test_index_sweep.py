"""The index sweep gives back the memory of drivers silent longer than the TTL."""

from dispatch.service_layer.index_sweep import sweep_index_once
from tests.unit.dispatch.conftest import World


async def test_sweep_removes_only_drivers_silent_longer_than_the_ttl(world: World) -> None:
    await world.driver_at("quiet", 100)
    world.clock.advance(world.deps.index.ttl_ms - 1_000)
    await world.driver_at("busy", 200)
    world.clock.advance(2_000)  # "quiet" is now past the TTL, "busy" is not
    assert await sweep_index_once(world.deps) == ["quiet"]
    assert await world.deps.index.get("quiet") is None
    assert await world.deps.index.get("busy") is not None
    assert await sweep_index_once(world.deps) == []
