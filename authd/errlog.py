"""Rate-limited error lines: at most one per error class per interval, with a count (pure core).

A server loop that catches an unexpected error per packet must not write a traceback per
packet: one fuzz run once left 29,000 tracebacks and 64 MB of log (issue 10). `ErrorLog`
decides, for each error, whether a line is due now; when it is, the line also says how many
errors of the same class were suppressed since the previous line. No I/O and no clock: the
trio shell passes `now` and writes the line itself, so both authd and the resolver can use it
and tests drive time by hand.

Line shape (`ErrorLog.line`): ``class=KEY: TEXT (N more suppressed since the last line)``;
the caller puts its own prefix in front (``resolver internal error``). The ``class=`` tag is
what the fuzz harness (`bench/fuzz.py`) counts per second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Control characters and backslash are escaped so no peer-supplied text can forge a log line.
_ESCAPES = {c: f"\\x{c:02x}" for c in range(0x20)} | {0x7F: "\\x7f", ord("\\"): "\\\\"}


def escape(text: str) -> str:
    """`text` with control characters escaped (a newline in it cannot start a forged line)."""
    return text.translate(_ESCAPES)


@dataclass
class _Class:
    last: float
    suppressed: int = 0
    total: int = 0


@dataclass
class ErrorLog:
    """Per error class (any string key): at most one line each `interval` seconds.

    `max_classes` bounds memory if keys were ever derived from input: beyond it the least
    recently logged class is forgotten (a forgotten class simply logs again).
    """

    interval: float = 1.0
    max_classes: int = 1024
    classes: dict[str, _Class] = field(default_factory=dict)

    def note(self, key: str, now: float) -> int | None:
        """Count one error of class `key` at `now`.

        Returns None when the line is suppressed, else how many errors of this class were
        suppressed since the last line (0 for the first): the caller writes one line.
        """
        c = self.classes.get(key)
        if c is None:
            if len(self.classes) >= self.max_classes:
                oldest = min(self.classes, key=lambda k: self.classes[k].last)
                del self.classes[oldest]
            self.classes[key] = _Class(last=now, total=1)
            return 0
        c.total += 1
        if now - c.last < self.interval:
            c.suppressed += 1
            return None
        suppressed, c.suppressed, c.last = c.suppressed, 0, now
        return suppressed

    def line(self, key: str, text: str, suppressed: int) -> str:
        """The one log line for a noted error (`suppressed` as `note` returned it)."""
        tail = f" ({suppressed} more suppressed since the last line)" if suppressed else ""
        return f"class={escape(key)}: {escape(text)}{tail}"

    def total(self, key: str) -> int:
        """Every error of class `key` noted so far (suppressed or not)."""
        c = self.classes.get(key)
        return c.total if c is not None else 0


def describe(exc: BaseException) -> str:
    """`Type: message at file:line` of the innermost frame: enough to find it, no traceback."""
    tb = exc.__traceback__
    where = ""
    while tb is not None:
        if tb.tb_next is None:
            code = tb.tb_frame.f_code
            where = f" at {code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name}"
        tb = tb.tb_next
    return f"{type(exc).__name__}: {str(exc)[:200]}{where}"
