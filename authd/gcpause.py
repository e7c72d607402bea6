"""Pausing Python's cyclic garbage collector while a big zone is read, built or stored.

Pure core helper (no I/O). Loading a million-name zone allocates millions of small objects
(tuples, strings, record sets, the index's dicts) and frees almost none of them; each
allocation burst sets off a collection, and every full collection walks everything built so
far, so a load spent as long in the collector as in its own work (a third to a half of the
time in the profile of a 200,000-name load, issue 12). None of those objects form cycles:
reference counting frees whatever the load drops. So the collector waits until the load is
done, and after a big one `gc.freeze()` moves what it built out of the collector's sight, so
later collections (which the server's own allocations still trigger) stay cheap. A serving
node goes one step further (`hold`, `due`, `FULL_EVERY`): it runs its collections itself,
between change batches, never inside one.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

BIG = 50_000  # records in a load past which what it built is frozen afterwards


@contextmanager
def paused(size: int = 0) -> Iterator[None]:
    """No automatic collection inside; nested pauses leave it to the outermost one.

    Args:
        size: how many records the load handles; at least `BIG` freezes its objects after
            and gives the heap pages its transients held back (`trim`), however it ends: a
            big load's peak is mostly what it frees at its end (a new store's import: its
            rows' encodings and journal parts), which glibc would otherwise keep resident.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        try:
            if size >= BIG:
                gc.freeze()
                trim()
        finally:
            gc.enable()


# --- between batches: a serving node's collections on its own schedule (issue 12) ---------
#
# Left to itself the collector runs wherever an allocation crosses its threshold, which in a
# server that allocates mostly while applying a change batch means inside the batch: a young
# collection mid-batch walks the batch's ~50k live objects (24-40 ms seen on a loaded
# 2-core machine, 224 ms once), and the first full one after the load's freeze walked every
# set changed since (608 ms on a 200k-name zone; `authd.gcwatch`'s log lines). A node instead
# collects once a second, between batches: the young generations (what is new since the
# previous tick: 3,500 objects after 500 UPSERTs, 6,000 after 1,000 CREATEs, in process), and
# every FULL_EVERY-th time the old one as well, which holds only what survived since the
# load's freeze (the zones loaded at startup stay frozen, out of every collection's sight).
#
# Survivors are not frozen at each tick: an object frozen alive that later becomes part of an
# unreachable cycle is never collected, and what is alive at a tick includes what is in
# flight (a trio task, an HTTP connection, an exception and its traceback), which often dies
# as a cycle; frozen every second, a long-running node would keep a little of it each time.
#
# They are frozen after each full collection (`freeze_after_full`), at most once in
# FULL_EVERY ticks. Left in the old generation, everything a batch adds to the zones (five
# tracked objects per changed set: the record set, its key, the compiled entry, its wire
# and owner name) is walked again by every full collection, for as long as the node runs,
# until the changed part of the zone is as big as the zone: on the 1M-name zone a full
# collection took 39.5 ms after 60 batches and 351.6 ms after 200 (`authd.gcwatch`'s lines,
# `python -m bench._scale_insync --names 1000000 --batches 100 --restart`), and it holds up
# DNS for as long as it runs. What a freeze keeps that later dies in a cycle is what was in
# flight at that instant, right after a full collection, once in FULL_EVERY ticks, while the
# collections of the batch path find no cycles at all ("0 collected" in every line of those
# runs); the frozen count is logged with each full collection, so a leak would show there.

FULL_EVERY = 20  # the old generation every 20th collection, as CPython's threshold2 (20)
YOUNG = 700  # net new tracked objects before a collection is worth running (CPython's own)


def freeze_after_full() -> None:
    """After a full collection (the only moment nothing collectable is left): move the
    survivors out of later collections' sight, as the load's objects are (see above)."""
    gc.freeze()


def due(young: int) -> bool:
    """Whether a node's collector task collects (generations 0 and 1, or every
    FULL_EVERY-th time all three and then freezes) at this tick. `young`:
    `gc.get_count()[0]`, the net allocations since the last collection."""
    return young >= YOUNG


_holders = 0  # nodes in this process that run their own collections
_was_enabled = False


def hold() -> None:
    """Stop automatic collections for a node that runs them itself (`due`); nested holds
    (several nodes in one test process) leave it to the last `release`."""
    global _holders, _was_enabled
    if _holders == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _holders += 1


def release() -> None:
    """Undo one `hold`; the last one gives automatic collection back if it was on."""
    global _holders
    _holders -= 1
    if _holders == 0 and _was_enabled:
        gc.enable()


def trim() -> bool:
    """Give freed heap pages back to the system after a big transient peak (the end of a
    big `paused`). glibc's malloc_trim(3); False where the C library has none."""
    trim_ = _malloc_trim()
    return bool(trim_(0)) if trim_ is not None else False


@functools.cache
def _malloc_trim() -> Any:
    """libc's malloc_trim, looked up once, or None."""
    import ctypes
    import ctypes.util

    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn
