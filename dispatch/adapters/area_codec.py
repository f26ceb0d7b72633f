"""Areas as stored bytes (JSON), the same in memory and on Redis."""

from __future__ import annotations

from typing import Any

import orjson

from dispatch.domain.areas import Area, AreaKind, Polygon


def encode_area(area: Area) -> bytes:
    return orjson.dumps(
        {
            "id": area.id,
            "kind": area.kind.value,
            "name": area.name,
            "polygons": area.polygons,
            "dwell_s": area.dwell_s,
            "updated_at": area.updated_at,
        }
    )


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
    )
