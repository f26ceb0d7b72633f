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
    """The ride once no longer searching, or as it is after `wait_s` (None if it is not
    stored). Called right after the request stored the ride as searching."""
    # The stored ride is read only when no notice came for a window and NOTICE_LATE_S
    # (notices are best effort), and once at the end if none ever came: not right after
    # subscribing. That read only covered a change made between the request storing the
    # ride and this listener's claim, a few round trips: a window would have had to read
    # the ride, search, solve, reserve and store its offer within them. Such a change
    # is found by the first read, as a lost notice is; every held request saves a read
    # (a third of the CPU this wait cost: the claim, the read, the give-up).
    window_s = deps.batching.config.window_ms / 1000 if deps.batching is not None else 0.0
    poll_s = window_s + NOTICE_LATE_S
    async with deps.notifier.subscribe(ride_topic(ride_id)) as sub:
        ride: Ride | None = None  # as last heard or read; None: nothing yet
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            left = deadline - loop.time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, poll_s)):
                    notice = await sub.get()
                    # A notice carries the ride as stored by its change: a newer version
                    # is the answer without reading it back (a window's offers wake
                    # many waiting requests at once).
                    if notice.ride.id == ride_id and (
                        ride is None or notice.ride.version > ride.version
                    ):
                        ride = notice.ride
                        if ride.status is not RideStatus.SEARCHING:
                            return ride
                    continue
            # No notice within poll_s: the stored ride decides.
            ride = await deps.rides.get(ride_id)
            if ride is None or ride.status is not RideStatus.SEARCHING:
                return ride
        return ride if ride is not None else await deps.rides.get(ride_id)
