"""Hold a ride request's answer until its window has matched it (batched mode's
`Prefer: wait`): the ride as it stands when it leaves searching, or when time is up."""

from __future__ import annotations

import asyncio
import contextlib

from dispatch.domain.rides import Ride, RideStatus
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.notices import ride_topic

NOTICE_LATE_S = 1.0  # beyond a window, a notice not come yet is taken as lost


async def until_matched(deps: Deps, ride_id: str, wait_s: float) -> Ride | None:
    """The ride once no longer searching, or as it is after `wait_s`."""
    # Notices are best effort, so the stored ride is read again when none came for a
    # window and NOTICE_LATE_S: a window's offer normally comes within one window, and
    # reading every second made most held requests read their ride once more for nothing.
    window_s = deps.batching.config.window_ms / 1000 if deps.batching is not None else 0.0
    poll_s = window_s + NOTICE_LATE_S
    async with deps.notifier.subscribe(ride_topic(ride_id)) as sub:
        # Read after subscribing: a change between the two is then never missed.
        ride = await deps.rides.get(ride_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while ride is not None and ride.status is RideStatus.SEARCHING:
            left = deadline - loop.time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, poll_s)):
                    notice = await sub.get()
                    # A notice carries the ride as stored by its change: a newer version
                    # is the answer without reading it back (a window's offers wake
                    # many waiting requests at once).
                    if notice.ride.id == ride_id and notice.ride.version > ride.version:
                        ride = notice.ride
                        continue
            # No notice within poll_s: the stored ride decides.
            ride = await deps.rides.get(ride_id)
        return ride
