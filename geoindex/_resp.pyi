from collections.abc import Callable, Mapping, Sequence
from typing import Any

from geoindex.model import Position

def pack_command(command: tuple[Any, ...], /) -> Any: ...  # bytes, or NotImplemented
def format_g17(value: float, /) -> str | None: ...
def fix_texts(
    positions: Sequence[Position],
    key_head: str,
    tail: str,
    head: int,
    low: int,
    parents: Mapping[int, Any],
    write_region: Callable[[int], int] | None,
    /,
) -> tuple[list[str], list[str], list[tuple[Position, int, float, float, int]]]: ...
def position_init_for(position: type, /) -> Any: ...
def region_changes(
    prepared: list[tuple[Position, int, float, float, int]],
    replies: list[Any],
    states: dict[bytes, bytes],
    state_of: Callable[[bytes], bytes],
    named: set[bytes],
    accepted: Any,
    stale: Any,
    gone: Callable[[str, float, int, int], Any],
    /,
) -> tuple[list[Any], dict[int, list[Any]]]: ...
