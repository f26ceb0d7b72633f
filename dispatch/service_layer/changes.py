"""What follows every stored ride change: its timer, the notifications, the metrics."""

from __future__ import annotations

import orjson

from dispatch.domain.rides import TERMINAL, Ride, RideStatus
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.matching import ride_item
from dispatch.service_layer.views import ride_view


def driver_topic(driver_id: str) -> str:
    return f"driver:{driver_id}"


def ride_topic(ride_id: str) -> str:
    return f"ride:{ride_id}"


def offer_frame(ride: Ride) -> bytes:
    return orjson.dumps(
        {"type": "offer", "ride": ride_view(ride), "expires_at": ride.offer_expires_at}
    )


def ride_frame(ride: Ride, *, for_other_driver: bool = False) -> bytes:
    return orjson.dumps(
        {"type": "ride", "ride": ride_view(ride, for_other_driver=for_other_driver)}
    )


def ride_event(ride: Ride) -> bytes:
    """A rider's event: the view, with the version so streams can drop reordered ones."""
    return orjson.dumps({"v": ride.version, "ride": ride_view(ride)})


async def ride_changed(deps: Deps, ride: Ride, previous: Ride | None) -> None:
    """Call after `ride` was stored. `previous` is the version it replaced, if any."""
    if ride.status is RideStatus.OFFERED and ride.offer_expires_at is not None:
        await deps.deadlines.schedule(ride_item(ride.id), ride.offer_expires_at)
    elif previous is not None and previous.status is RideStatus.OFFERED:
        await deps.deadlines.cancel(ride_item(ride.id))
    if ride.status in TERMINAL and (previous is None or previous.status not in TERMINAL):
        await deps.riders.drop(ride.rider_id, ride.id)  # no longer counts (rider_rides)
    deps.observer.ride_changed(ride)
    await deps.notifier.publish(ride_topic(ride.id), ride_event(ride))
    new_offer = ride.status is RideStatus.OFFERED and (
        previous is None or previous.driver_id != ride.driver_id
    )
    if ride.driver_id is not None:
        frame = offer_frame(ride) if new_offer else ride_frame(ride)
        await deps.notifier.publish(driver_topic(ride.driver_id), frame)
    if previous is not None and previous.driver_id not in (None, ride.driver_id):
        # The driver who passed on the ride hears that it left them.
        assert previous.driver_id is not None
        await deps.notifier.publish(
            driver_topic(previous.driver_id), ride_frame(ride, for_other_driver=True)
        )
