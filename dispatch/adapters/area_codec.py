"""Areas as stored bytes (JSON), the same in memory and on Redis."""

from __future__ import annotations

from typing import Any

import orjson

from dispatch.domain.areas import Area, AreaKind, Polygon
from dispatch.domain.fares import FareTable


def encode_area(area: Area) -> bytes:
    data: dict[str, Any] = {
        "id": area.id,
        "kind": area.kind.value,
        "name": area.name,
        "polygons": area.polygons,
        "dwell_s": area.dwell_s,
        "updated_at": area.updated_at,
    }
    if area.fare is not None:  # absent in areas stored before fares
        f = area.fare
        data["fare"] = [f.currency, f.base, f.per_km, f.per_min, f.minimum]
    return orjson.dumps(data)


def _polygon(raw: Any) -> Polygon:
    return tuple(tuple((float(x), float(y)) for x, y in ring) for ring in raw)


def decode_area(raw: bytes) -> Area:
    data = orjson.loads(raw)
    return Area(
        id=data["id"],
        kind=AreaKind(data["kind"]),
        name=data["name"],
        polygons=tuple(_polygon(p) for p in data["polygons"]),
        dwell_s=float(data["dwell_s"]),
        updated_at=int(data["updated_at"]),
        fare=FareTable(*data["fare"]) if "fare" in data else None,
    )
