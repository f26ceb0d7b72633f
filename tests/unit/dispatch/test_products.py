"""Products: the catalog and its checks, and matching that offers a ride only to drivers
serving its product (its upgrades only when none of them is near), immediate and batched."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dispatch.bootstrap import bootstrap
from dispatch.domain.drivers import DriverStatus
from dispatch.domain.geo import LatLng
from dispatch.domain.products import DEFAULT_CATALOG, NAME, ProductError, catalog_from
from dispatch.domain.rides import RideStatus
from dispatch.service_layer import drivers, ride_steps
from dispatch.service_layer.batching import window_round
from dispatch.service_layer.quotes import make_quote
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from dispatch.settings import Settings, SettingsError, from_env
from geoindex.limits import PRODUCT_PATTERN
from tests.fake_clock import FakeClock
from tests.unit.dispatch.conftest import PICKUP, Recorder, World, driver, rider

HERE = LatLng(*PICKUP)


def test_the_default_catalog_has_economy_comfort_xl_and_an_accessible_product() -> None:
    c = DEFAULT_CATALOG
    assert list(c.products) == ["economy", "comfort", "xl", "wav"] and c.default == "economy"
    assert c.product("xl").seats == 6
    assert c.product("wav").flags == {"accessible"}
    assert c.product("economy").upgrades == ("comfort", "xl")


def test_the_domain_and_the_index_share_one_rule_for_product_names() -> None:
    assert NAME.pattern == PRODUCT_PATTERN.pattern


def test_a_vehicle_serves_only_products_it_fits() -> None:
    c = DEFAULT_CATALOG
    assert c.vehicle(6, [], ["xl", "economy", "xl"]).products == ("economy", "xl")
    assert c.vehicle(4, ["accessible"], ["wav"]).flags == {"accessible"}
    for seats, flags, products, says in [
        (4, [], ["xl"], "xl needs 6 seats, the vehicle has 4"),
        (6, [], ["wav"], "wav needs a vehicle that is accessible"),
        (4, [], ["limo"], "unknown product 'limo'"),
        (4, ["hover"], ["economy"], "unknown vehicle flag 'hover'"),
        (4, [], [], "at least one product"),
    ]:
        with pytest.raises(ProductError, match=says):
            c.vehicle(seats, flags, products)


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ([], "expected"),
        ({"products": [{"name": "a", "seats": 4, "colour": "red"}]}, "each product"),
        ({"products": [{"name": "A", "seats": 4}]}, "bad product name"),
        ({"products": [{"name": "a", "seats": 0}]}, "seats must be from 1"),
        ({"products": [{"name": "a", "seats": True}]}, "seats must be a whole number"),
        ({"products": [{"name": "a", "seats": 4, "upgrades": ["b"]}]}, "upgrade 'b'"),
        ({"products": [{"name": "a", "seats": 4}, {"name": "a", "seats": 4}]}, "distinct"),
        ({"products": [{"name": "b", "seats": 4}]}, "default product 'a' is not configured"),
        ({"products": [{"name": "a", "seats": 4, "fare_factor": 0}]}, r"fare_factor must be in"),
        ({"products": [{"name": "a", "seats": 4, "fare_factor": 11}]}, r"fare_factor must be in"),
        ({"products": [{"name": "a", "seats": 4, "fare_factor": "2"}]}, "must be a number"),
    ],
)
def test_a_bad_products_file_says_what_is_wrong(doc: object, says: str) -> None:
    with pytest.raises(ProductError, match=says):
        catalog_from(doc, "a")


def test_a_products_document_becomes_the_catalog() -> None:
    doc = {
        "products": [
            {"name": "moto", "seats": 1},
            {"name": "car", "seats": 3, "upgrades": ["van"]},
            {"name": "van", "seats": 7, "flags": ["cargo"], "fare_factor": 1.75},
        ]
    }
    c = catalog_from(doc, "car")
    assert c.product("car").upgrades == ("van",) and c.flags == {"cargo"}
    assert (c.product("van").fare_factor, c.product("car").fare_factor) == (1.75, 1.0)


def test_an_unknown_default_product_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="^DISPATCH_DEFAULT_PRODUCT the default product"):
        from_env({"DISPATCH_DEFAULT_PRODUCT": "limo"})
    assert from_env({"DISPATCH_DEFAULT_PRODUCT": "xl"}).default_product == "xl"


async def serving(world: World, driver_id: str, north_m: float, *products: str) -> None:
    await world.driver_at(driver_id, north_m)
    if products:
        await world.deps.index.set_products(driver_id, products)


async def ask(world: World, who: str, product: str | None):  # type: ignore[no-untyped-def]
    ride_id = new_ride_id(who, None)
    return await request_ride(world.deps, rider(who), ride_id, HERE, None, product=product)


async def test_an_accessible_request_goes_to_the_accessible_car_past_nearer_ones(
    world: World,
) -> None:
    for i in range(5):
        await serving(world, f"e{i}", 100 + 10 * i, "economy", "xl")
    await serving(world, "w1", 900, "wav")
    ride = await ask(world, "u1", "wav")
    assert (ride.status, ride.driver_id, ride.product) == (RideStatus.OFFERED, "w1", "wav")
    assert (await world.deps.rides.get(ride.id)).product == "wav"  # type: ignore[union-attr]
    assert (await ask(world, "u2", "wav")).status is RideStatus.NO_DRIVER  # no upgrades


async def test_a_driver_without_a_vehicle_serves_the_default_product(world: World) -> None:
    await serving(world, "plain", 200)
    assert (await ask(world, "u1", "xl")).status is RideStatus.NO_DRIVER
    assert (await ask(world, "u2", "economy")).driver_id == "plain"


async def test_upgrades_take_a_ride_only_when_no_driver_of_its_product_is_in_reach(
    world: World,
) -> None:
    # The policy's radius steps are 1, 3 and 5 km: own product first at every step.
    await serving(world, "xl_near", 100, "xl")
    await serving(world, "eco_2k", 2_000, "economy")
    ride = await ask(world, "u1", "economy")
    assert ride.driver_id == "xl_near"  # the 1 km step has no economy car: its upgrade
    await serving(world, "eco_500", 500, "economy")
    await serving(world, "xl_200", 200, "xl")
    assert (await ask(world, "u2", "economy")).driver_id == "eco_500"
    assert (await ask(world, "u3", "economy")).driver_id == "xl_200"  # 1 km: none left
    assert (await ask(world, "u4", "comfort")).status is RideStatus.NO_DRIVER


async def test_a_declined_ride_is_offered_again_only_within_its_product(world: World) -> None:
    await serving(world, "w1", 300, "wav")
    await serving(world, "w2", 600, "wav", "economy")
    await serving(world, "e1", 100, "economy")
    ride = await ask(world, "u1", "wav")
    assert ride.driver_id == "w1"
    ride = await ride_steps.decline(world.deps, driver("w1"), ride.id)
    assert (ride.driver_id, ride.product) == ("w2", "wav")


async def test_a_vehicle_set_with_the_status_call_decides_the_rides_offered(
    world: World,
) -> None:
    await serving(world, "d1", 200)
    vehicle = DEFAULT_CATALOG.vehicle(4, ["accessible"], ["wav"])
    await drivers.set_status(world.deps, driver("d1"), "d1", DriverStatus.OFFLINE)
    _, state = await drivers.set_status(
        world.deps, driver("d1"), "d1", DriverStatus.AVAILABLE, vehicle
    )
    assert state is not None and state.products == ("wav",)
    assert (await ask(world, "u1", "economy")).status is RideStatus.NO_DRIVER
    assert (await ask(world, "u2", "wav")).driver_id == "d1"


async def test_a_quote_gives_the_pickup_eta_of_the_products_nearest_driver(
    world: World,
) -> None:
    await serving(world, "e1", 100, "economy")
    await serving(world, "w1", 2_000, "wav")
    economy = await make_quote(world.deps, rider("u1"), HERE, None, "economy")
    wav = await make_quote(world.deps, rider("u1"), HERE, None, "wav")
    assert economy.pickup_eta_s is not None and wav.pickup_eta_s is not None
    assert wav.pickup_eta_s > economy.pickup_eta_s
    assert (await make_quote(world.deps, rider("u1"), HERE, None, "comfort")).pickup_eta_s is None


@pytest.fixture
async def batched() -> AsyncIterator[World]:
    clock = FakeClock()
    settings = Settings(match_window_ms=2_000, match_max_wait_s=30)
    async with bootstrap(settings, clock=clock, observer=Recorder()) as runtime:
        yield World(runtime.deps, clock, runtime.deps.observer)  # type: ignore[arg-type]


async def test_a_window_pairs_riders_only_with_drivers_of_their_product(batched: World) -> None:
    await serving(batched, "e1", 100, "economy")
    await serving(batched, "w1", 800, "wav")
    wav = await ask(batched, "u1", "wav")
    eco = await ask(batched, "u2", "economy")
    batched.clock.advance(2_000)
    await window_round(batched.deps, "i1", {})
    wav, eco = await batched.deps.rides.get(wav.id), await batched.deps.rides.get(eco.id)
    assert wav is not None and eco is not None
    assert (wav.status, wav.driver_id) == (RideStatus.OFFERED, "w1")
    assert (eco.status, eco.driver_id) == (RideStatus.OFFERED, "e1")


async def test_a_window_lends_upgrades_where_immediate_matching_would(batched: World) -> None:
    # As in immediate matching: within the 1 km step no economy car, so its upgrade there.
    await serving(batched, "xl_near", 100, "xl")
    await serving(batched, "eco_2k", 2_000, "economy")
    first = await ask(batched, "u1", "economy")
    batched.clock.advance(2_000)
    await window_round(batched.deps, "i1", {})
    first = await batched.deps.rides.get(first.id)
    assert first is not None and (first.status, first.driver_id) == (RideStatus.OFFERED, "xl_near")
    assert (await batched.deps.drivers.get("xl_near")).fence == first.fence
    # An economy car within that step: the nearer XL car is no candidate.
    await serving(batched, "eco_500", 500, "economy")
    await serving(batched, "xl_200", 200, "xl")
    second = await ask(batched, "u2", "economy")
    comfort = await ask(batched, "u3", "comfort")  # no upgrades: never an XL car
    batched.clock.advance(2_000)
    await window_round(batched.deps, "i1", {})
    second = await batched.deps.rides.get(second.id)
    comfort = await batched.deps.rides.get(comfort.id)
    assert second is not None and second.driver_id == "eco_500"
    assert comfort is not None and comfort.status is RideStatus.SEARCHING
