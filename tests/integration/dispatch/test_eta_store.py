"""The ETA model's store on every backend: what one instance learns, another reads."""

from __future__ import annotations

from dispatch.domain.eta import EtaParams
from dispatch.domain.geo import LatLng
from tests.integration.dispatch.conftest import Backend

BERLIN = LatLng(52.52, 13.405)


async def test_learned_parameters_are_stored_per_cell_and_hour(backend: Backend) -> None:
    eta = backend.deps.eta
    now = backend.clock.now
    assert await eta.params(BERLIN, now) == EtaParams()
    learned = await eta.observe_pickup(BERLIN, 1000, 300_000, now, 1600)
    assert learned is not None
    stored = await eta.params(BERLIN, now)
    assert stored.observations == 1
    assert abs(stored.circuity - learned.circuity) < 1e-3
    assert abs(stored.speed_mps - learned.speed_mps) < 1e-2
    # A cell elsewhere and the next hour are untouched.
    assert await eta.params(LatLng(48.85, 2.35), now) == EtaParams()
    assert await eta.params(BERLIN, now + 3_600_000) == EtaParams()
