"""The ETA model's short-lived copy of a cell's parameters: a ride request's ETA is most
often no store read, and never older than the copy's few seconds."""

from __future__ import annotations

from collections.abc import Sequence

from dispatch.adapters.memory_eta import MemoryEtaStore
from dispatch.domain.eta import EtaParams
from dispatch.domain.geo import LatLng
from dispatch.service_layer.eta import CACHE_S, EtaKey, EtaModel
from tests.fake_clock import START_MS

HERE = LatLng(52.52, 13.40)


class CountingStore(MemoryEtaStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, keys: Sequence[EtaKey]) -> list[EtaParams | None]:
        self.reads += 1
        return await super().get(keys)


async def test_a_cell_is_read_once_until_its_copy_runs_out() -> None:
    store, now = CountingStore(), [100.0]
    model = EtaModel(store, region_res=5, monotonic=lambda: now[0])
    assert await model.params(HERE, START_MS) == EtaParams()
    assert await model.params(HERE, START_MS) == EtaParams()
    assert store.reads == 1
    # Another instance learns meanwhile: seen once the copy runs out, not before.
    other = EtaModel(store, region_res=5)
    learned = await other.observe_pickup(HERE, 1000, 300_000, START_MS, 1600)
    assert learned is not None
    reads = store.reads
    assert await model.params(HERE, START_MS) == EtaParams()
    now[0] += CACHE_S + 0.01
    assert await model.params(HERE, START_MS) == learned
    assert store.reads == reads + 1


async def test_what_this_instance_learns_it_uses_at_once() -> None:
    store = CountingStore()
    model = EtaModel(store, region_res=5, monotonic=lambda: 0.0)
    assert await model.params(HERE, START_MS) == EtaParams()
    learned = await model.observe_pickup(HERE, 1000, 300_000, START_MS, 1600)
    assert learned is not None and learned != EtaParams()
    assert await model.params(HERE, START_MS) == learned


async def test_another_hour_or_cell_is_its_own_read() -> None:
    store = CountingStore()
    model = EtaModel(store, region_res=5, monotonic=lambda: 0.0)
    await model.params(HERE, START_MS)
    await model.params(HERE, START_MS + 3_600_000)
    await model.params(LatLng(48.85, 2.35), START_MS)
    assert store.reads == 3


async def test_no_copy_when_switched_off() -> None:
    store = CountingStore()
    model = EtaModel(store, region_res=5, cache_s=0)
    await model.params(HERE, START_MS)
    await model.params(HERE, START_MS)
    assert store.reads == 2
