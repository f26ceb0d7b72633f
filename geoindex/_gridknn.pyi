from geoindex.model import Neighbor

class Grid:
    def __len__(self) -> int: ...
    def add(self, driver_id: str, ts_ms: int, lat: float, lng: float, /) -> None: ...
    def remove(self, driver_id: str, /) -> None: ...
    def nearest(
        self, lat: float, lng: float, k: int, radius_m: float, min_ts: int, /
    ) -> list[Neighbor]: ...
    def box_count(self) -> int: ...

def disk(
    origin: int, rings: int, region_res: int, /
) -> tuple[int, bytes, bytes, bytes, tuple[int, ...]]: ...
def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float, /) -> float: ...
def plan(
    xyz: object,
    lohi: object,
    regions: object,
    size: int,
    lat: float,
    lng: float,
    spread_m: float,
    spill_m: float,
    radius_m: float,
    /,
) -> tuple[float, bytes, bytes]: ...
