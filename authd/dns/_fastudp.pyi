"""Types of the C UDP loop (`authd/dns/_fastudp.c`); see its `drain` docstring."""

from array import array
from collections.abc import Callable
from typing import Any

BATCH: int
RECV_SIZE: int

def drain(fd: int, exact: dict[bytes, Any] | None,
          fallback: Callable[[bytes, Any], bytes | None], counts: dict[bytes, int] | None,
          random: Callable[[], float], budget: int,
          direct: Callable[[bytes], bytes | None] | None = ...,
          rest: Callable[[bytes, Any], bytes | None] | None = ...,
          tally: dict[bytes, int] | None = ..., unanswered: bytes = ...,
          read: Callable[[bytes, tuple[bytes, ...], int, int], Any] | None = ...,
          copied: int = ..., zones: dict[tuple[bytes, ...], Any] | None = ...,
          plain: tuple | None = ...,
          census: tuple[tuple[int, ...], array, set[bytes]] | None = ..., /) -> int: ...

def read_question(data: bytes, /) -> tuple[tuple[bytes, ...], int, int] | None: ...
