"""The shapes of the region split endpoints (ops tokens; geoindex/split.py)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from dispatch.entrypoints.contract import Shape

Resolution = Annotated[int, msgspec.Meta(ge=0, le=15)]
ParentCell = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{15}$")]  # an H3 cell, hex


class SplitRequest(Shape):
    res: Resolution  # the parent's region resolution; region_res unsplits it


class SplitParent(Shape):
    res: int  # where the parent's drivers are going (or are)
    migrating_from: int | None  # while a change runs: the resolution before
    writes: int  # the resolution writes use now
    reads: list[int]  # the resolutions searches read now


class RegionSplit(Shape):
    version: int
    region_res: int
    parents: dict[str, SplitParent]
