"""SQLite WAL checkpoints off the commit path: a thread that checkpoints once writes go idle.

Blocking I/O shell (sqlite3, threading), no trio. In WAL mode SQLite's default is to
checkpoint inside the COMMIT that takes the log past 1,000 pages, so on a million-name zone
about every second batch of 500 random UPSERTs (~510 pages each) paid for copying the log back
into the database file, and its fsync, before it was acknowledged: the INSYNC tail of issue 12.
`SQLiteStore` turns that off for all but a far backstop (`BACKSTOP_PAGES`) and calls
`committed()` after every COMMIT; this thread waits until `idle` seconds pass with no new
commit, then runs `PRAGMA wal_checkpoint(PASSIVE)` on its own connection. PASSIVE waits for
no reader or writer and takes no write lock (sqlite.org/c3ref/wal_checkpoint_v2.html), so a
batch that arrives meanwhile commits at once, and followers keep reading.

Durability is unchanged: a batch is acknowledged once its COMMIT has reached the disk in the
WAL (`synchronous=FULL` syncs the log at every commit), and recovery after a crash or power
loss replays the WAL whether or not a checkpoint has copied it yet (sqlite.org/wal.html,
"Checkpointing"). The checkpoint only moves committed pages, and syncs the log before and the
database file after (this connection runs with synchronous=FULL too).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger("authd.store")

IDLE = 0.05  # seconds without a commit before the log is checkpointed
# SQLite's own checkpoint at COMMIT stays on past this many pages (64 MB of 4 KB pages), so the
# log stays bounded if this thread never gets an idle moment (a steady stream of batches)
BACKSTOP_PAGES = 16_000
# Bytes the WAL file is cut back to when the log restarts after a checkpoint (SQLite's
# `journal_size_limit`): a store's first import leaves a log the size of the zone (414 MB for
# a 1M-name one), and without a limit the file keeps that size for as long as the store is
# open. Four times a 1,000-change batch (~510 pages of 4 KB), so ordinary batches overwrite
# blocks the file already has and their fsync moves no file size.
LOG_LIMIT = 8 * 1024 * 1024


class IdleCheckpointer:
    """Checkpoints the WAL of `path` in a daemon thread, `idle` seconds after the last commit.

    Args:
        path: the database file (its writer sets `wal_autocheckpoint` to `BACKSTOP_PAGES`).
        idle: quiet time after a commit before checkpointing (default `IDLE`).
    """

    def __init__(self, path: Path, idle: float | None = None):
        self.path = path
        self.idle = IDLE if idle is None else idle
        self.checkpoints = 0  # completed
        self.done = threading.Event()  # set after each checkpoint (tests wait on it)
        self._cv = threading.Condition()
        self._last: float | None = None  # monotonic time of the newest commit not checkpointed
        self._closing = False
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """A COMMIT just returned (called by the writer; cheap, never blocks on I/O)."""
        with self._cv:
            self._last = time.monotonic()
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._run, name=f"checkpoint {self.path.name}",
                                                daemon=True)
                self._thread.start()
            self._cv.notify()

    def close(self) -> None:
        """Stop the thread (after a checkpoint in progress finishes); the store's own close
        then checkpoints what is left, as SQLite does when its last connection closes."""
        with self._cv:
            self._closing = True
            self._cv.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA synchronous=FULL")
            while True:
                with self._cv:
                    while not self._closing:
                        if self._last is None:
                            self._cv.wait()
                            continue
                        left = self._last + self.idle - time.monotonic()
                        if left <= 0:
                            break
                        self._cv.wait(left)
                    if self._closing:
                        return
                    self._last = None
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                    self.done.set()
                except sqlite3.Error as exc:  # e.g. the file went away; the backstop remains
                    log.warning("checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()
