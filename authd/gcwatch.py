"""How long the cyclic garbage collector stops the server, per generation (issue 12: the INSYNC
tail of change batches on a million-name zone).

Trio-free shell helper: a `gc.callbacks` hook that times every collection with
`time.perf_counter` (so not a pure module). The node installs one after its load; each
collection of the oldest generation, and any collection over `SLOW_MS`, gets a log line (INFO,
so the default level shows what stopped a slow change batch), and the totals stay on the
watcher for tests and benches.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("authd.gc")

SLOW_MS = 2.0  # a younger collection longer than this is logged too


@dataclass
class GcWatch:
    """Collections seen since `install`: count and total ms per generation, the longest."""

    counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    total_ms: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    longest_ms: float = 0.0
    _started: float | None = None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:
            return  # installed in the middle of a collection
        ms = (time.perf_counter() - self._started) * 1e3
        self._started = None
        gen = info.get("generation", 2)
        self.counts[gen] += 1
        self.total_ms[gen] += ms
        self.longest_ms = max(self.longest_ms, ms)
        if gen == 2 or ms > SLOW_MS:
            log.info("gc: generation %d collection took %.1f ms (%d collected, %d uncollectable; "
                     "%d objects frozen)", gen, ms, info.get("collected", 0),
                     info.get("uncollectable", 0), gc.get_freeze_count())

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


def install() -> GcWatch:
    """Start timing collections; returns the watcher (`uninstall()` stops it)."""
    watch = GcWatch()
    gc.callbacks.append(watch)
    return watch
