from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from geoindex import Position

# Contiguous arrays of the documented item type (int64, int32, float64 or bytes).
Buffer = bytes | np.ndarray[Any, Any]

def cell_at(lat: float, lng: float, res: int, /) -> int: ...
def cells(lats: Buffer, lngs: Buffer, res: int, out: Buffer, /) -> None: ...

class Probe:
    def __init__(
        self,
        cells: Buffer,
        keys: Buffer,
        levels: Buffer,
        edges: Buffer,
        locals: Buffer,
        seg_ranges: Buffer,
        rasters: Buffer,
        segs: Buffer,
        combo_ranges: Buffer,
        combo_areas: Buffer,
        combos: tuple[tuple[Any, ...], ...],
        areas: tuple[Any, ...],
        exact: Callable[[int, float, float], bool],
        res: int,
    ) -> None: ...
    def holding(self, lat: float, lng: float, /) -> Sequence[Any]: ...
    def holding_near(self, cell: int, lat: float, lng: float, /) -> tuple[Sequence[Any], float]: ...
    def holding_many(
        self, cells: Buffer, lats: Buffer, lngs: Buffer, offsets: Buffer, near: Buffer | None, /
    ) -> bytes: ...

class Seen:
    """What an instance last found for each driver's fix (geofence.Geofence)."""

    def __init__(self) -> None: ...
    def screen(
        self,
        probe: Probe,
        holds: tuple[tuple[str, int], ...],
        fixes: Sequence[tuple[str, float, float]] | Sequence[Position],
        version: int,
        now_ms: int,
        known_only: bool,
        /,
    ) -> list[tuple[str, dict[str, int], bytes]]: ...
    def remember(self, driver_id: str, look: bytes, due: int, /) -> None: ...
    def forget(self, driver_id: str, /) -> None: ...
    def clear(self) -> None: ...
    def areas(self, driver_id: str, /) -> tuple[int, ...] | None: ...
    def __len__(self) -> int: ...
