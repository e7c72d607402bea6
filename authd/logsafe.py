"""One log record is one log line: control characters in anything logged are escaped.

Pure core (standard `logging` only). Request data (a URL path, a query, a header, a record
name) reaches log messages in many places; a CR or LF in it would let a client without
credentials write a forged line into the operator's log, and an ESC could drive their
terminal. Rather than trusting every call site, every entry point (`authd`, `enactor`,
`resolver`) installs `SafeFormatter` through `setup_logging`, so the escaping happens in one
place, after the message is formatted and for the traceback text too.

Escapes: `\\n`, `\\r`, `\\t`, `\\\\` for a literal backslash (so an escaped line is never
ambiguous), and `\\xHH` for every other C0 control, DEL and the C1 controls (U+0080..U+009F),
which some terminals also act on.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\\u2028\u2029]")


def _escape_one(match: re.Match[str]) -> str:
    c = match.group()
    named = _NAMED.get(c)
    if named is not None:
        return named
    code = ord(c)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with no line breaks or control characters left (see the module docstring)."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape_one, text)


class SafeFormatter(logging.Formatter):
    """A `logging.Formatter` whose output is always exactly one line.

    The message is escaped after `%`-formatting (so arguments from a request cannot add
    lines); an exception's traceback is kept, with its line breaks escaped as `\\n`, on the
    same line, so a grep for the request id or the logger name finds all of it.
    """

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = escape_controls(self.formatMessage(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        extra = [record.exc_text] if record.exc_text else []
        if record.stack_info:
            extra.append(self.formatStack(record.stack_info))
        for text in extra:
            line += " | " + escape_controls(text)
        return line


DEFAULT_FORMAT = "%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s"
DEFAULT_DATEFMT = "%Y-%m-%dT%H:%M:%S"


def setup_logging(
    level: int | str = logging.INFO,
    fmt: str = DEFAULT_FORMAT,
    datefmt: str | None = DEFAULT_DATEFMT,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to `stream` (stderr) through `SafeFormatter`, at `level`.

    Replaces `logging.basicConfig` in the entry points. Calling it again replaces the
    handler it installed before (never two copies of a line); other handlers are left alone.
    """
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.INFO)
    root = logging.getLogger()
    root.setLevel(level)
    for old in [h for h in root.handlers if getattr(h, "_authd_safe", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(SafeFormatter(fmt, datefmt))
    handler._authd_safe = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    return handler
