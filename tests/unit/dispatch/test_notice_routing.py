"""Where a topic's holders live (the slot of the topic's subject) and how the ops channel's
batches are framed: several notices in one message, order kept, a single message (as an
instance before batches sent it) read as it is."""

from __future__ import annotations

from redis.crc import key_slot

from dispatch.adapters.ops_outbox import batch, unbatch
from dispatch.adapters.pubsub_notifier import OPS_CHANNEL, decode, encode
from dispatch.adapters.redis_client import driver_key, ride_key
from dispatch.adapters.redis_holders import holders_key
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Offer, request
from dispatch.service_layer.notices import NoticeKind, RideNotice, driver_topic, ride_topic
from dispatch.service_layer.ops_view import OPS_TOPIC


def slot(key: str | bytes) -> int:
    return key_slot(key.encode() if isinstance(key, str) else key)


def test_a_drivers_holders_share_the_slot_of_the_drivers_own_keys() -> None:
    for driver_id in ("d1", "d:with:colons", "7f3a-9"):
        key = holders_key(driver_topic(driver_id))
        assert slot(key) == slot(driver_key(driver_id)) == slot(f"gi:d:{{{driver_id}}}")
        assert key == f"dispatch:holders:driver:{{{driver_id}}}"


def test_a_rides_holders_share_the_rides_slot() -> None:
    key = holders_key(ride_topic("r_abc"))
    assert key == "dispatch:holders:ride:{r_abc}"
    assert slot(key) == slot(ride_key("r_abc"))


def test_the_ops_topics_holders_share_the_ops_channels_slot_and_others_keep_their_own() -> None:
    assert slot(holders_key(OPS_TOPIC)) == slot(OPS_CHANNEL)
    assert holders_key("wait:x") == "dispatch:holders:{wait:x}"


def notices(n: int) -> list[RideNotice]:
    offer = Offer("d1", 7, 10.0, 5, 99)
    return [
        RideNotice(NoticeKind.RIDE, request(f"r{i}", "u1", LatLng(52.5, 13.4), None, offer, i + 1))
        for i in range(n)
    ]


def test_a_batch_carries_several_notices_in_their_order() -> None:
    sent = [encode(OPS_TOPIC, notice) for notice in notices(12)]  # lengths of 2 digits and 3
    message = batch(sent)
    assert message.startswith(b"*\n")
    parts = unbatch(message)
    assert parts == sent
    assert [decode(p) for p in parts] == [(OPS_TOPIC, n) for n in notices(12)]


def test_a_single_notice_goes_and_is_read_as_an_older_instance_sends_it() -> None:
    (notice,) = notices(1)
    old = encode(OPS_TOPIC, notice)
    assert batch([old]) == old
    assert unbatch(old) == [old]
    assert decode(unbatch(old)[0]) == (OPS_TOPIC, notice)
