"""The ops stream's wire format: one columnar snapshot, then deltas of what changed.

Drivers are numbered by slot, their place in the view every page of this instance shares:
a delta names slots instead of ids, gap-coded (the first absolute, then the difference to
the one before), and moves drivers by offsets in 1e-5 degrees (about a metre) from what
was last sent. A driver moving every second then costs about nine bytes a second, so
10,000 of them stay well under 200 KB/s per page (docs/benchmarks.md). What a driver
serves travels as a ProductBits mask, in the snapshot and when it changes (a new vehicle):
the page filters by product without a list of names per driver. Slots of drivers
gone stay empty (null ids in a snapshot) until the view is renumbered, which sends every
page a new snapshot. docs/api.md gives the format."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.domain.rides import Ride
from dispatch.service_layer.ops_view import Area, Drivers, MapStatus, World

E5 = 100_000  # coordinates travel as integers in 1e-5 degrees
STATUSES = tuple(MapStatus)  # a status's code is its place here (ops_view.STATUS_CODE)

RideRow = tuple[str, str, str | None, str | None, int, int, int | None, int | None]


def e5(degrees: float) -> int:
    return round(degrees * E5)


def ride_row(ride: Ride) -> RideRow:
    drop = ride.dropoff
    return (
        ride.id,
        ride.status.value,
        ride.driver_id,
        ride.product,  # None: requested before there were products
        e5(ride.pickup.lat),
        e5(ride.pickup.lng),
        None if drop is None else e5(drop.lat),
        None if drop is None else e5(drop.lng),
    )


def ride_columns(rows: Iterable[RideRow]) -> dict[str, list[Any]]:
    names = (
        "id", "status", "driver", "product", "pickup_lat", "pickup_lng", "dropoff_lat",
        "dropoff_lng",
    )  # fmt: skip
    cols: dict[str, list[Any]] = {name: [] for name in names}
    for row in rows:
        for name, value in zip(names, row, strict=True):
            cols[name].append(value)
    return cols


def gaps(sorted_slots: npt.NDArray[np.int64]) -> list[int]:
    return np.diff(sorted_slots, prepend=0).tolist()  # type: ignore[no-any-return]


def _e5(degrees: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    return np.rint(degrees * E5).astype(np.int64)  # as e5(): round half to even


class View:
    """What every page of this instance was last sent, and how to say what changed.

    Slots are columns (ids, positions in 1e-5 degrees, status codes, product masks), so
    taking in a look of 10,000 drivers costs one dict lookup per driver and a few numpy
    passes, not a Python comparison per driver: the feed holds the event loop for
    milliseconds. `products` names the masks' bits, bit i for products[i]."""

    def __init__(self, area: Area, products: tuple[str, ...] = ()) -> None:
        self.area = area
        self.products = products
        self._ids: list[str | None] = []
        self._slot_of: dict[str, int] = {}
        self._lat = np.zeros(0, np.int64)
        self._lng = np.zeros(0, np.int64)
        self._status = np.zeros(0, np.int8)
        self._products = np.zeros(0, np.int32)
        self._rides: dict[str, RideRow] = {}
        self._figures: dict[str, Any] = {}
        self._figures_by_product: dict[str, dict[str, Any]] = {}

    @property
    def holes(self) -> int:
        return len(self._ids) - len(self._slot_of)

    def renumber(self) -> None:
        """Close the holes left by drivers gone; every page needs a new snapshot after."""
        live = np.array([i is not None for i in self._ids], np.bool_)
        ids = [i for i in self._ids if i is not None]
        self._ids = list(ids)
        self._slot_of = {id_: slot for slot, id_ in enumerate(ids)}
        self._lat, self._lng, self._status = self._lat[live], self._lng[live], self._status[live]
        self._products = self._products[live]

    def snapshot(self, t_ms: int) -> dict[str, Any]:
        # A hole's position, status and products are zeroed when its driver goes.
        return {
            "t": t_ms,
            "area": {"lat": self.area.lat, "lng": self.area.lng, "radius_m": self.area.radius_m},
            "statuses": [s.value for s in STATUSES],
            "products": list(self.products),
            "drivers": {
                "id": list(self._ids),
                "lat": self._lat.tolist(),
                "lng": self._lng.tolist(),
                "status": self._status.tolist(),
                "products": self._products.tolist(),
            },
            "rides": ride_columns(self._rides.values()),
            "figures": self._figures,
            "figures_by_product": self._figures_by_product,
        }

    def advance(self, world: World, t_ms: int) -> dict[str, Any] | None:
        """Take in `world`; the delta from the last view to it, or None if nothing changed."""
        delta: dict[str, Any] = {}
        self._drivers_delta(world.drivers, delta)
        self._rides_delta(world.rides, delta)
        figures = asdict(world.figures)
        if figures != self._figures:
            delta["figures"] = self._figures = figures
        by_product = {p: asdict(f) for p, f in world.figures_by_product.items()}
        if by_product != self._figures_by_product:  # all again: a few numbers a product
            delta["figures_by_product"] = self._figures_by_product = by_product
        if not delta:
            return None
        delta["t"] = t_ms
        return delta

    def _drivers_delta(self, drivers: Drivers, delta: dict[str, Any]) -> None:
        n = len(drivers)
        lat, lng, status = _e5(drivers.lat), _e5(drivers.lng), drivers.status
        products = drivers.products
        slot = np.fromiter(map(self._slot_of.get, drivers.ids, repeat(-1)), np.int64, n)
        known = slot >= 0
        # Ascending slots, so that deltas name them gap-coded.
        order = np.argsort(slot[known], kind="stable")
        at, idx = slot[known][order], np.flatnonzero(known)[order]
        dlat, dlng = lat[idx] - self._lat[at], lng[idx] - self._lng[at]
        if (moved := (dlat != 0) | (dlng != 0)).any():
            delta["moved"] = {
                "slot": gaps(at[moved]),
                "dlat": dlat[moved].tolist(),
                "dlng": dlng[moved].tolist(),
            }
        if (changed := status[idx] != self._status[at]).any():
            delta["status"] = {
                "slot": gaps(at[changed]),
                "status": status[idx][changed].tolist(),
            }
        if (served := products[idx] != self._products[at]).any():
            delta["products"] = {
                "slot": gaps(at[served]),
                "products": products[idx][served].tolist(),
            }
        self._lat[at], self._lng[at], self._status[at] = lat[idx], lng[idx], status[idx]
        self._products[at] = products[idx]
        seen = np.zeros(len(self._ids), np.bool_)
        seen[at] = True
        gone = [s for s in np.flatnonzero(~seen).tolist() if self._ids[s] is not None]
        for s in gone:
            del self._slot_of[self._ids[s]]  # type: ignore[arg-type]
            self._ids[s] = None
        if gone:
            hole = np.array(gone, np.int64)
            self._lat[hole], self._lng[hole], self._status[hole] = 0, 0, 0
            self._products[hole] = 0
            delta["gone"] = gaps(hole)
        if (new := np.flatnonzero(~known)).size:
            ids = [drivers.ids[i] for i in new.tolist()]
            self._slot_of.update((id_, len(self._ids) + k) for k, id_ in enumerate(ids))
            self._ids += ids
            self._lat = np.concatenate([self._lat, lat[new]])
            self._lng = np.concatenate([self._lng, lng[new]])
            self._status = np.concatenate([self._status, status[new]])
            self._products = np.concatenate([self._products, products[new]])
            delta["added"] = {
                "id": ids,
                "lat": lat[new].tolist(),
                "lng": lng[new].tolist(),
                "status": status[new].tolist(),
                "products": products[new].tolist(),
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
