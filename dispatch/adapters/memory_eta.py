"""EtaStore in memory (the embedded backend)."""

from __future__ import annotations

from collections.abc import Sequence

from dispatch.domain.eta import EtaParams
from dispatch.service_layer.eta import EtaKey


class MemoryEtaStore:
    def __init__(self) -> None:
        self._params: dict[tuple[str, int], EtaParams] = {}

    async def get(self, keys: Sequence[EtaKey]) -> list[EtaParams | None]:
        return [self._params.get((k.cell, k.hour)) for k in keys]

    async def put(self, key: EtaKey, params: EtaParams) -> None:
        self._params[(key.cell, key.hour)] = params
