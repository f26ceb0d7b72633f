"""The ops stream's wire format: one columnar snapshot, then deltas of what changed.

Drivers are numbered by slot, their place in the view every page of this instance shares:
a delta names slots instead of ids, gap-coded (the first absolute, then the difference to
the one before), and moves drivers by offsets in 1e-5 degrees (about a metre) from what
was last sent. A driver moving every second then costs about nine bytes a second, so
10,000 of them stay well under 200 KB/s per page (docs/benchmarks.md). Slots of drivers
gone stay empty (null ids in a snapshot) until the view is renumbered, which sends every
page a new snapshot. docs/api.md gives the format."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from dispatch.domain.rides import Ride
from dispatch.service_layer.ops_view import Area, MapStatus, World

E5 = 100_000  # coordinates travel as integers in 1e-5 degrees
STATUSES = tuple(MapStatus)
_CODE = {status: code for code, status in enumerate(STATUSES)}

RideRow = tuple[str, str, str | None, int, int, int | None, int | None]


def e5(degrees: float) -> int:
    return round(degrees * E5)


def ride_row(ride: Ride) -> RideRow:
    drop = ride.dropoff
    return (
        ride.id,
        ride.status.value,
        ride.driver_id,
        e5(ride.pickup.lat),
        e5(ride.pickup.lng),
        None if drop is None else e5(drop.lat),
        None if drop is None else e5(drop.lng),
    )


def ride_columns(rows: Iterable[RideRow]) -> dict[str, list[Any]]:
    names = ("id", "status", "driver", "pickup_lat", "pickup_lng", "dropoff_lat", "dropoff_lng")
    cols: dict[str, list[Any]] = {name: [] for name in names}
    for row in rows:
        for name, value in zip(names, row, strict=True):
            cols[name].append(value)
    return cols


def gaps(sorted_slots: list[int]) -> list[int]:
    return [s - sorted_slots[i - 1] if i else s for i, s in enumerate(sorted_slots)]


@dataclass(slots=True)
class _Slot:
    id: str
    lat: int
    lng: int
    status: int


class View:
    """What every page of this instance was last sent, and how to say what changed."""

    def __init__(self, area: Area) -> None:
        self.area = area
        self._slots: list[_Slot | None] = []
        self._slot_of: dict[str, int] = {}
        self._rides: dict[str, RideRow] = {}
        self._figures: dict[str, Any] = {}

    @property
    def holes(self) -> int:
        return len(self._slots) - len(self._slot_of)

    def renumber(self) -> None:
        """Close the holes left by drivers gone; every page needs a new snapshot after."""
        live = [s for s in self._slots if s is not None]
        self._slots = list(live)
        self._slot_of = {s.id: i for i, s in enumerate(live)}

    def snapshot(self, t_ms: int) -> dict[str, Any]:
        cols: dict[str, list[Any]] = {"id": [], "lat": [], "lng": [], "status": []}
        for s in self._slots:
            cols["id"].append(None if s is None else s.id)
            cols["lat"].append(0 if s is None else s.lat)
            cols["lng"].append(0 if s is None else s.lng)
            cols["status"].append(0 if s is None else s.status)
        return {
            "t": t_ms,
            "area": {"lat": self.area.lat, "lng": self.area.lng, "radius_m": self.area.radius_m},
            "statuses": [s.value for s in STATUSES],
            "drivers": cols,
            "rides": ride_columns(self._rides.values()),
            "figures": self._figures,
        }

    def advance(self, world: World, t_ms: int) -> dict[str, Any] | None:
        """Take in `world`; the delta from the last view to it, or None if nothing changed."""
        delta: dict[str, Any] = {}
        self._drivers_delta(world, delta)
        self._rides_delta(world.rides, delta)
        figures = asdict(world.figures)
        if figures != self._figures:
            delta["figures"] = self._figures = figures
        if not delta:
            return None
        delta["t"] = t_ms
        return delta

    def _drivers_delta(self, world: World, delta: dict[str, Any]) -> None:
        moved: list[tuple[int, int, int]] = []
        changed: list[tuple[int, int]] = []
        added: list[_Slot] = []
        seen: set[str] = set()
        for d in world.drivers:
            seen.add(d.id)
            lat, lng, code = e5(d.lat), e5(d.lng), _CODE[d.status]
            slot = self._slot_of.get(d.id)
            if slot is None:
                added.append(_Slot(d.id, lat, lng, code))
                continue
            s = self._slots[slot]
            assert s is not None
            if lat != s.lat or lng != s.lng:
                moved.append((slot, lat - s.lat, lng - s.lng))
                s.lat, s.lng = lat, lng
            if code != s.status:
                changed.append((slot, code))
                s.status = code
        gone = sorted(slot for id_, slot in self._slot_of.items() if id_ not in seen)
        for slot in gone:
            s = self._slots[slot]
            assert s is not None
            del self._slot_of[s.id]
            self._slots[slot] = None
        for s in added:
            self._slot_of[s.id] = len(self._slots)
            self._slots.append(s)
        if moved:
            moved.sort()
            delta["moved"] = {
                "slot": gaps([m[0] for m in moved]),
                "dlat": [m[1] for m in moved],
                "dlng": [m[2] for m in moved],
            }
        if changed:
            changed.sort()
            delta["status"] = {
                "slot": gaps([c[0] for c in changed]),
                "status": [c[1] for c in changed],
            }
        if gone:
            delta["gone"] = gaps(gone)
        if added:
            delta["added"] = {
                "id": [s.id for s in added],
                "lat": [s.lat for s in added],
                "lng": [s.lng for s in added],
                "status": [s.status for s in added],
            }

    def _rides_delta(self, rides: list[Ride], delta: dict[str, Any]) -> None:
        rows = {ride.id: ride_row(ride) for ride in rides}
        upserts = [row for id_, row in rows.items() if self._rides.get(id_) != row]
        ended = [id_ for id_ in self._rides if id_ not in rows]
        self._rides = rows
        if upserts:
            delta["rides"] = ride_columns(upserts)
        if ended:
            delta["rides_gone"] = ended
