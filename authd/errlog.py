"""Unexpected errors in a server loop: one rate-limited log line per error class, and counters.

Pure core (the caller passes `now`; nothing here reads a clock). Issue 10: a fuzz run once wrote
29,000 tracebacks; a loop's error boundary reports through `ErrorLog.report` instead, which logs
at most one line per error class (exception type plus where) per interval, says how many of
that class it held back since the last line, and keeps a total per class for tests and metrics.
"""

from __future__ import annotations

import logging
from collections import Counter


class ErrorLog:
    """Counts unexpected errors per class and logs each class at most once per `interval`."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self.logger = logger
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def report(self, kind: str, message: str, now: float, level: int = logging.ERROR) -> bool:
        """Count one event of `kind`; log `message` unless `kind` was logged within `interval`.

        Returns True when a line was written.
        """
        self.counts[kind] += 1
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._held[kind] += 1
            return False
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        more = f" (+{held} more since the last line)" if held else ""
        self.logger.log(level, "%s: %s; %d so far%s", kind, message, self.counts[kind], more)
        return True

    def exception(self, where: str, exc: BaseException, now: float) -> bool:
        """`report` for an unexpected exception: its class is `where` plus the exception type.

        One line, no traceback; repr() keeps control characters out of the log.
        """
        return self.report(f"{where}: {type(exc).__name__}", repr(str(exc)[:200]), now)
