"""EtaStore on Redis / Redis Cluster.

Keys: eta:{r<region>}  hash: "<cell>/<hour of week>" -> "<circuity> <speed m/s> <n>"
under the region's hash tag, so a region's model lives in the region's slot beside its
index and market. Kept for ETA_KEEP_MS after the last update (an area that stops seeing
pickups falls back to the defaults)."""

from __future__ import annotations

from collections.abc import Sequence

from dispatch.adapters.redis_client import AnyRedis
from dispatch.domain.eta import EtaParams
from dispatch.service_layer.eta import EtaKey
from geoindex import translated

ETA_KEEP_MS = 90 * 24 * 3_600_000


def eta_key(region: int) -> str:
    return f"eta:{{r{region:x}}}"


def _field(key: EtaKey) -> str:
    return f"{key.cell}/{key.hour}"


class RedisEtaStore:
    def __init__(self, client: AnyRedis) -> None:
        self._r = client

    async def get(self, keys: Sequence[EtaKey]) -> list[EtaParams | None]:
        if not keys:
            return []
        with translated():
            pipe = self._r.pipeline(transaction=False)
            for k in keys:
                pipe.hget(eta_key(k.region), _field(k))
            raw = await pipe.execute()
        return [_parse(v) for v in raw]

    async def put(self, key: EtaKey, params: EtaParams) -> None:
        value = f"{params.circuity:.4f} {params.speed_mps:.3f} {params.observations}"
        with translated():
            pipe = self._r.pipeline(transaction=False)
            pipe.hset(eta_key(key.region), _field(key), value)
            pipe.pexpire(eta_key(key.region), ETA_KEEP_MS)
            await pipe.execute()


def _parse(value: bytes | str | None) -> EtaParams | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    circuity, speed, n = text.split()
    return EtaParams(float(circuity), float(speed), int(n))
