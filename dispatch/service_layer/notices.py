"""What the service tells listeners about rides: typed notices on named topics.

A notice carries the ride as stored; the entrypoints decide what each listener sees
(the driver's WebSocket frames, the rider's event stream). Notices are best effort:
the stored ride is the truth, readable at any time."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from dispatch.domain.rides import Ride


class NoticeKind(enum.StrEnum):
    OFFER = "offer"  # the ride is offered to the topic's driver
    RIDE = "ride"  # the ride changed
    LEFT = "left"  # the ride moved on without the topic's driver (declined, timed out)


@dataclass(frozen=True, slots=True)
class RideNotice:
    kind: NoticeKind
    ride: Ride


def driver_topic(driver_id: str) -> str:
    return f"driver:{driver_id}"


def ride_topic(ride_id: str) -> str:
    return f"ride:{ride_id}"
