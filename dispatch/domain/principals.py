"""Who is calling: a driver, a rider, a fleet gateway or an operator, taken from a verified
token."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

# The same alphabet as geoindex driver ids: ids end up inside Redis keys.
_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


class Role(enum.StrEnum):
    DRIVER = "driver"
    RIDER = "rider"
    FLEET = "fleet"
    OPS = "ops"  # an operator: watches the whole fleet (the ops map), acts for no one


_ROLES = frozenset(r.value for r in Role)


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    id: str

    @property
    def subject(self) -> str:
        return f"{self.role.value}:{self.id}"


def valid_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def parse_subject(subject: str) -> Principal:
    """`driver:d42` -> Principal(DRIVER, "d42"); ValueError for anything else."""
    role, sep, ident = subject.partition(":")
    if not sep or role not in _ROLES or not valid_id(ident):
        raise ValueError(f"not a valid subject: {subject!r}")
    return Principal(Role(role), ident)
