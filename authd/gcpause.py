"""Pausing Python's cyclic garbage collector while a big zone is read, built or stored.

Pure core helper (no I/O). Loading a million-name zone allocates millions of small objects
(tuples, strings, record sets, the index's dicts) and frees almost none of them; each
allocation burst sets off a collection, and every full collection walks everything built so
far, so a load spent as long in the collector as in its own work (a third to a half of the
time in the profile of a 200,000-name load, issue 12). None of those objects form cycles:
reference counting frees whatever the load drops. So the collector waits until the load is
done, and after a big one `gc.freeze()` moves what it built out of the collector's sight, so
later collections (which the server's own allocations still trigger) stay cheap.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BIG = 50_000  # records in a load past which what it built is frozen afterwards


@contextmanager
def paused(size: int = 0) -> Iterator[None]:
    """No automatic collection inside; nested pauses leave it to the outermost one.

    Args:
        size: how many records the load handles; at least `BIG` freezes its objects after.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if size >= BIG:
            gc.freeze()
        gc.enable()
