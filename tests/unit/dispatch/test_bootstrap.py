"""bootstrap wires the geo index from settings."""

from dispatch.bootstrap import bootstrap
from dispatch.settings import from_env
from geoindex import MemoryGeoIndex


async def test_the_region_resolution_comes_from_settings() -> None:
    async with bootstrap(from_env({"DISPATCH_REGION_RES": "3"})) as runtime:
        index = runtime.deps.index
        assert isinstance(index, MemoryGeoIndex)
        assert index._config.region_res == 3


async def test_a_region_resolution_finer_than_search_is_refused_at_start() -> None:
    import pytest

    with pytest.raises(ValueError):
        async with bootstrap(from_env({"DISPATCH_REGION_RES": "12"})):
            pass
