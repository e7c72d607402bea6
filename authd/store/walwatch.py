"""How a follower of a SQLite file learns, cheaply and at once, that someone committed to it.

Shell (sqlite3, ctypes, trio). Two parts, both optional to the follower (`authd.store.replica`),
which falls back to reading the journal every poll:

- `DataVersion`: `PRAGMA data_version` on a dedicated read-only connection. Its value changes
  whenever another connection, in this process or any other, has committed to the file
  (sqlite.org/pragma.html#pragma_data_version), so an idle poll is one tiny statement in the
  trio thread instead of a journal query in the store's worker thread. The connection must
  not be the writer's own: data_version does not change for a connection's own commits.
- `WalWatch` / `serve_wal_watch`: Linux inotify on the file's directory, for IN_MODIFY of its
  `-wal` file: every commit in WAL mode appends frames to it (sqlite.org/wal.html), so a
  commit by another process (the `authd` CLI, a second node on the same file) wakes the
  followers within a scheduler tick instead of at their next poll. Where inotify is missing
  (another OS, the watch limit reached) `WalWatch.open` returns None and the poll remains.
  The directory is watched, not the file: the `-wal` file is deleted when its last
  connection closes and created again by the next writer.

`parse_events` (the inotify record layout, `struct inotify_event` in inotify(7)) is pure.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import sqlite3
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import trio

log = logging.getLogger("authd.store")

IN_MODIFY = 0x00000002
IN_Q_OVERFLOW = 0x00004000  # the kernel dropped events: treat as "something changed"
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of NUL-padded name


def parse_events(buf: bytes) -> list[tuple[int, int, str]]:
    """(watch descriptor, mask, name) of each inotify event record in `buf`."""
    out: list[tuple[int, int, str]] = []
    off = 0
    while off + _EVENT.size <= len(buf):
        wd, mask, _cookie, length = _EVENT.unpack_from(buf, off)
        off += _EVENT.size
        name = buf[off:off + length].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        off += length
        out.append((wd, mask, name))
    return out


class DataVersion:
    """`PRAGMA data_version` of `path` on a connection of its own (see the module docstring).

    Calling it returns the current version; one call is a few microseconds and never waits
    for a writer (a WAL reader takes no lock a writer holds), so the trio thread may make it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                     check_same_thread=False)
        # the trio thread waits this long at most; busy, the follower reads the journal instead
        self._conn.execute("PRAGMA busy_timeout=10")

    def __call__(self) -> int:
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        self._conn.close()


class WalWatch:
    """An inotify descriptor watching `path`'s directory for writes to `path`-wal."""

    def __init__(self, fd: int, wal_name: str):
        self.fd = fd
        self.wal_name = wal_name

    @classmethod
    def open(cls, path: str | Path) -> WalWatch | None:
        """The watch, or None where inotify is not available (then followers poll)."""
        if not sys.platform.startswith("linux"):
            return None
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        path = Path(path).resolve()
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            log.warning("no WAL watch for %s (inotify: %s): followers poll", path,
                        os.strerror(ctypes.get_errno()))
            return None
        wd = libc.inotify_add_watch(fd, str(path.parent).encode(), IN_MODIFY)
        if wd < 0:
            err = ctypes.get_errno()
            os.close(fd)
            log.warning("no WAL watch for %s (inotify: %s%s): followers poll", path, os.strerror(err),
                        "; raise fs.inotify.max_user_watches" if err == errno.ENOSPC else "")
            return None
        return cls(fd, path.name + "-wal")

    def changed(self, buf: bytes) -> bool:
        """Whether these events say the WAL was written (or that events were lost)."""
        return any(name == self.wal_name or mask & IN_Q_OVERFLOW for _wd, mask, name in parse_events(buf))

    def drain(self) -> bool:
        """Read every pending event; whether any of them is a write to the WAL."""
        hit = False
        while True:
            try:
                buf = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return hit
            if not buf:
                return hit
            hit = self.changed(buf) or hit

    def close(self) -> None:
        os.close(self.fd)


# After a wake-up, the watch waits this long before reading again. A commit writes its WAL
# frames one write(2) at a time, each an IN_MODIFY: read as they came, a 500-page commit woke
# the trio thread ~50 times (3,000-4,000 wake-ups in 64 batches of issue 12's bench, each an
# epoll round, a read, a parse and every follower's look), on the thread that was compiling
# the same batch for its index; a checkpoint's page writes to the database file, in the
# same directory, woke it as often. Events left unread meanwhile are coalesced by the kernel
# (identical ones into one, inotify(7)), so a burst costs a wake-up at its start and one at
# most every COALESCE after; the last write's is read at most COALESCE late, and a follower
# woken before the commit was visible keeps looking on its own (`IdlePoll.after`, settling).
COALESCE = 0.002


async def serve_wal_watch(watch: WalWatch, on_change: Callable[[], object], *,
                          coalesce: float = COALESCE,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Call `on_change()` after a burst of writes to the WAL begins, and again at most every
    `coalesce` seconds while it lasts (see COALESCE); never returns. Closes the watch when
    cancelled."""
    try:
        task_status.started()
        while True:
            await trio.lowlevel.wait_readable(watch.fd)
            if watch.drain():
                on_change()
            await trio.sleep(coalesce)  # (a checkpoint's writes to the file itself burst too)
    finally:
        watch.close()
