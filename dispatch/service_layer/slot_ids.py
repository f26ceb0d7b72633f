"""Ids that land in a chosen Redis Cluster slot: an id with five hex digits appended,
chosen so that a key tagged with the id ({<id>}) shares the slot of keys tagged {<tag>}.

A key's slot is CRC16/XMODEM of its hash tag mod 16384 (its low 14 bits). That CRC is
linear over GF(2), and zero bytes after a zero register add nothing, so for a suffix S of
k bytes crc(M || S) = crc(M || 0^k) xor crc(S): the suffix needs only
crc(S) = crc(M || 0^k) xor slot in its low 14 bits. Every one of the 16384 values is the
CRC of some five hex digits; S is found as a head of two digits and a tail of three
(crc(head || 000) xor crc(tail)), from two small tables built at import."""

from __future__ import annotations

from binascii import crc_hqx  # CRC16/XMODEM with initial value 0: Redis Cluster's
from itertools import product

SLOTS = 16384
SUFFIX_LEN = 5
_HEX = "0123456789abcdef"
_MASK = SLOTS - 1


def slot_of(tag: str) -> int:
    """The Redis Cluster slot of keys tagged {<tag>} (a tag holding no brace)."""
    return crc_hqx(tag.encode(), 0) & _MASK


def _low(text: str) -> int:
    return crc_hqx(text.encode(), 0) & _MASK


# Heads in a fixed order, with their CRC followed by the tail's three zero bytes; tails by
# the low 14 bits of their CRC (the first in order: the choice is deterministic).
_HEADS = [(_low(h + "\0\0\0"), h) for h in map("".join, product(_HEX, repeat=2))]
_TAILS: dict[int, str] = {}
for _tail in map("".join, product(_HEX, repeat=3)):
    _TAILS.setdefault(_low(_tail), _tail)


def in_slot(base: str, tag: str) -> str:
    """`base` and five hex digits, in the slot of keys tagged {<tag>}: always the same
    digits for the same base and tag."""
    return to_slot(base, slot_of(tag))


def to_slot(base: str, slot: int) -> str:
    """`base` and five hex digits, whose slot is `slot`."""
    need = crc_hqx((base + "\0" * SUFFIX_LEN).encode(), 0) ^ slot
    for head_crc, head in _HEADS:
        tail = _TAILS.get((need ^ head_crc) & _MASK)
        if tail is not None:
            return base + head + tail
    raise AssertionError("every slot is reached by five hex digits")  # tested for all
