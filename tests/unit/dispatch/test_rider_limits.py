"""Per-rider limits as the use cases see them, and how long a ride request's traces stay."""

from __future__ import annotations

import pytest

from dispatch.adapters.memory_rider_limits import MemoryLimitStore
from dispatch.domain.geo import LatLng
from dispatch.domain.retention import NO_DRIVER_KEEP_MS, kept_for
from dispatch.domain.rides import request as new_ride
from dispatch.service_layer.rider_limits import (
    QUOTES,
    RIDES,
    Rate,
    RiderLimits,
    RiderRateLimited,
    take,
)

DAY_MS = 24 * 3600 * 1000


async def test_the_limit_refuses_past_the_burst_with_a_retry_after() -> None:
    limits = RiderLimits(MemoryLimitStore(), {RIDES: Rate(0.5, 2)})
    await limits.take(RIDES, "r1", 0)
    await limits.take(RIDES, "r1", 0)
    with pytest.raises(RiderRateLimited) as refused:
        await limits.take(RIDES, "r1", 100)
    assert refused.value.retry_after_s == 2  # 1.9 s, in whole seconds up
    await limits.take(RIDES, "r1", 2_000)
    for _ in range(20):  # an action without a rate is not limited
        await limits.take(QUOTES, "r1", 0)
    await take(None, RIDES, "r1", 0)  # no limits wired: nothing to do


def test_a_no_driver_answer_is_kept_an_hour_and_any_other_a_day() -> None:
    nobody = new_ride("r_1", "rider", LatLng(52.5, 13.4), None, None, 0)
    assert nobody.status == "no_driver"
    assert kept_for(nobody, DAY_MS) == NO_DRIVER_KEEP_MS == 3600 * 1000
    assert kept_for(nobody, 1000) == 1000
