"""The ops stream's market and area layers on the wire, beside the drivers of ops_wire.py:
in the snapshot every cell (of every product together, and of each product), area and
airport queue length; in a delta only the cells that changed (and the ids of those gone),
the areas when any changed (all of them again: they change rarely and a page redraws them
whole), and the queue lengths when one changed. docs/api.md gives the format."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dispatch.entrypoints.ops_layers import Layers
from dispatch.service_layer.area_index import CompiledArea
from dispatch.service_layer.market import CellView

CellRow = tuple[str, int, float, int, float | None, float]
CELL_COLUMNS = ("id", "supply", "demand_per_min", "requests", "no_driver_rate", "surge")


def cell_row(c: CellView) -> CellRow:
    return (c.cell, c.supply, c.demand_per_min, c.requests, c.no_driver_rate, c.surge)


def cell_columns(rows: Iterable[CellRow]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {name: [] for name in CELL_COLUMNS}
    for row in rows:
        for name, value in zip(CELL_COLUMNS, row, strict=True):
            cols[name].append(value)
    return cols


def area_columns(areas: Iterable[CompiledArea]) -> dict[str, list[Any]]:
    """Polygons as GeoJSON's: [longitude, latitude] rings, outline first, then holes."""
    cols: dict[str, list[Any]] = {"id": [], "kind": [], "name": [], "polygons": []}
    for c in areas:
        a = c.area
        cols["id"].append(a.id)
        cols["kind"].append(a.kind.value)
        cols["name"].append(a.name)
        cols["polygons"].append(
            [[[[x, y] for x, y in ring] for ring in poly] for poly in a.polygons]
        )
    return cols


class CellsView:
    """The market cells (of one product, or of all) every page was last sent."""

    def __init__(self) -> None:
        self._cells: dict[str, CellRow] = {}

    def snapshot(self) -> dict[str, Any]:
        return {"cells": cell_columns(self._cells.values())}

    def advance(self, cells: Iterable[CellView]) -> dict[str, Any] | None:
        """Take in `cells`; the cells new or changed and the ids of those gone, or None."""
        rows = {c.cell: cell_row(c) for c in cells}
        changed = [row for cell, row in rows.items() if self._cells.get(cell) != row]
        removed = sorted(set(self._cells) - set(rows))
        self._cells = rows
        if changed or removed:
            return {"cells": cell_columns(changed), "removed": removed}
        return None


class LayerView:
    """What every page of this instance was last sent of the layers."""

    def __init__(self) -> None:
        self._market = CellsView()
        self._by_product: dict[str, CellsView] = {}
        self._areas_version: int | None = None
        self._areas: list[CompiledArea] = []
        self._queues: dict[str, int] = {}

    def snapshot(self) -> dict[str, Any]:
        return {
            "market": self._market.snapshot(),
            "market_by_product": {p: v.snapshot() for p, v in self._by_product.items()},
            "areas": area_columns(self._areas),
            "queues": dict(self._queues),
        }

    def advance(self, layers: Layers) -> dict[str, Any]:
        """Take in `layers`; what changed since the last (empty if nothing did)."""
        delta: dict[str, Any] = {}
        if (market := self._market.advance(layers.market)) is not None:
            delta["market"] = market
        by_product = {}
        for product, cells in layers.market_by_product.items():
            view = self._by_product.setdefault(product, CellsView())
            if (changed := view.advance(cells)) is not None:
                by_product[product] = changed
        if by_product:
            delta["market_by_product"] = by_product
        if layers.areas_version != self._areas_version:
            self._areas_version = layers.areas_version
            self._areas = list(layers.areas)
            delta["areas"] = area_columns(self._areas)
        if layers.queues != self._queues:
            self._queues = dict(layers.queues)
            delta["queues"] = dict(self._queues)
        return delta
