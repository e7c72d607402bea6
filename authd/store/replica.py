"""Journal followers: how every serving index (the primary's and each replica's) learns of
changes, and how the control API learns that a change is INSYNC.

Two parts:
- `DelayLine` (pure core): holds journal entries until `observed_at + delay`, in order. It
  models a replica that hears of changes late (eventual consistency, an injectable delay).
- `IdlePoll` (pure core): how long the follower waits between looks: `active` seconds while
  entries come, doubling on every idle look up to the `idle` ceiling, fast again at once on
  activity, so an idle node costs next to nothing.
- `Follower` (trio shell): at start applies `source.snapshot()` to the index, then reads
  `source.journal_since(index.seq)` whenever woken (the control API wakes in-process
  followers on every accepted change; `authd.store.walwatch` wakes them on any process's
  commit to a SQLite file) or at each poll (`IdlePoll`), and applies entries through the same
  `index.apply`, so startup and runtime share one code path. With a `probe` (a store's
  cheap "data version", `walwatch.DataVersion`) a look whose version is unchanged skips the
  journal query. A snapshot's zones reach the index already built
  (`Follower._built`, issue 12): the zone a new store's import was handed, or one built
  straight from the snapshot's plain record sets, so a 1M-set start skips `Zone.build`.

`Propagation` answers the control API's question "which journal seq has every serving
replica applied?" from in-process followers and from progress files that replica processes
write (`<db>.replicas/<name>.seq`, updated atomically after each apply). A progress file
that has not been touched for `stale_after` seconds is a replica that is gone and no longer
counts (it is logged once), so one dead process cannot keep every change PENDING forever.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import trio

from authd import gcpause
from authd.model.journal import EntryKind, JournalEntry
from authd.zonefiles import fastbuild

log = logging.getLogger("authd.replica")


class ServingIndexLike(Protocol):
    """The contract `authd.dns.index.ServingIndex` fulfils."""

    @property
    def seq(self) -> int: ...

    def apply(self, entry: JournalEntry, built: Any = None) -> object: ...


class JournalSource(Protocol):
    def snapshot(self) -> list[JournalEntry]: ...

    def journal_since(self, seq: int) -> list[JournalEntry]: ...


class IdlePoll:
    """The follower's wait between looks at the journal (pure: the caller keeps the time).

    Args:
        active: the wait after a look that found something (or a wake-up).
        idle: the ceiling the wait doubles up to while looks find nothing; never below
            `active` (a PostgreSQL node's 1 s fallback poll stays 1 s).
    """

    SETTLE = 0.001  # the first re-look after a wake-up that found nothing committed yet

    def __init__(self, active: float = 0.05, idle: float = 0.5):
        self.active = active
        self.idle = max(idle, active)
        self.interval = active
        self._settle = 0.0

    def after(self, busy: bool, expecting: bool = False) -> float:
        """The wait after a look: `active` if it was busy, else twice the last, up to `idle`.

        `expecting`: woken by a write that the look did not see committed yet (inotify reports
        a WAL frame's write, the commit is visible only after its fsync), or `settling` from
        such a wake-up: look again soon, 1 ms, then a quarter later each time (a commit's
        fsync takes a few ms: a look lands soon after it), up to `active`."""
        if expecting:
            self._settle = min(self.active, self._settle * 1.25 if self._settle else self.SETTLE)
            self.interval = self.active
            return self._settle
        self._settle = 0.0
        self.interval = self.active if busy else min(self.idle, self.interval * 2)
        return self.interval

    @property
    def settling(self) -> bool:
        """Looking again soon after a wake-up that found nothing yet (see `after`)."""
        return 0.0 < self._settle < self.active


class DelayLine:
    """Entries become due `delay` seconds after they were first observed, in seq order."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self._queue: deque[tuple[float, JournalEntry]] = deque()
        self.observed_seq = 0

    def observe(self, entries: Iterable[JournalEntry], now: float) -> None:
        for e in entries:
            if e.seq > self.observed_seq:
                self._queue.append((now + self.delay, e))
                self.observed_seq = e.seq

    def due(self, now: float) -> list[JournalEntry]:
        out = []
        while self._queue and self._queue[0][0] <= now:
            out.append(self._queue.popleft()[1])
        return out

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)


_UNSEEN = object()
HEARTBEAT_WAIT = 5.0  # the longest wait of a follower that reports progress in a file


async def _inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class Follower:
    """Keeps one serving index in step with a store's journal.

    Args:
        name: for logs and progress files, e.g. "replica-1".
        source: the store (or a read-only view of it).
        index: the serving index to feed (`apply(entry)`, `seq`).
        delay: propagation delay in seconds (0 for the primary).
        poll_interval: how often to look for new entries when nobody wakes us and entries
            keep coming.
        idle_poll: the ceiling that wait backs off to while nothing comes (`IdlePoll`).
        call: runs a blocking store call (the control API's worker thread); default inline.
        progress_path: if set, the applied seq is written there after each apply.
        probe: returns the store's data version, cheaply, in the trio thread; a look at an
            unchanged version reads no journal. None: every look reads it.
    """

    def __init__(
        self,
        name: str,
        source: JournalSource,
        index: ServingIndexLike,
        *,
        delay: float = 0.0,
        poll_interval: float = 0.05,
        idle_poll: float = 0.5,
        call: Callable[..., Awaitable[Any]] = _inline,
        progress_path: Path | None = None,
        probe: Callable[[], object] | None = None,
    ):
        self.name, self.source, self.index = name, source, index
        self.line = DelayLine(delay)
        self.poll = IdlePoll(poll_interval, idle_poll)
        self.probe = probe
        self.journal_reads = 0  # journal queries made by the follow loop (tests count them)
        self.call = call
        self.progress_path = progress_path
        self._wake = trio.Event()
        self.applied = trio.Condition()  # notified after every apply, for waiters in tests
        self._last_progress = float("-inf")

    @property
    def delay(self) -> float:
        return self.line.delay

    @delay.setter
    def delay(self, value: float) -> None:
        self.line.delay = value

    @property
    def poll_interval(self) -> float:
        return self.poll.active

    @property
    def applied_seq(self) -> int:
        return self.index.seq

    def wake(self) -> None:
        """Look at the journal now (called from trio, e.g. after an accepted change)."""
        self._wake.set()

    async def bootstrap(self) -> None:
        snapshot = await self.call(self.source.snapshot)
        for entry in snapshot:
            self._apply(entry, prebuilt=True)
        self.line.observed_seq = max(self.line.observed_seq, self.index.seq)
        log.info("%s: loaded snapshot at seq %d (%d zones)", self.name, self.index.seq, len(snapshot))
        self._write_progress()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bootstrap, then follow forever. `task_status.started()` once the snapshot is in."""
        await self.bootstrap()
        task_status.started()
        seen: object = _UNSEEN  # the first look reads the journal, whatever the version says
        woken = False
        while True:
            self._wake = trio.Event()
            # the version is read before the journal: a commit between the two changes it
            # again, so the next look reads what this one missed
            version = self._version()
            entries: list[JournalEntry] = []
            changed = version is None or version != seen
            if changed:
                entries = await self.call(self.source.journal_since, self.line.observed_seq)
                self.journal_reads += 1
                seen = version
            now = trio.current_time()
            self.line.observe(entries, now)
            await self._apply_due(now)
            timeout = self.poll.after(busy=woken or bool(entries) or bool(len(self.line)),
                                      expecting=(woken or self.poll.settling) and not changed)
            nxt = self.line.next_due()
            if nxt is not None:
                timeout = min(timeout, max(0.0, nxt - trio.current_time()))
            if self.progress_path is not None:
                if trio.current_time() - self._last_progress > 1.0:
                    self._write_progress()  # heartbeat: an idle replica is still a live replica
                # however long the idle poll, well within Propagation's stale_after (10 s)
                timeout = min(timeout, HEARTBEAT_WAIT)
            with trio.move_on_after(timeout):
                await self._wake.wait()
            woken = self._wake.is_set()

    def _version(self) -> Any:
        if self.probe is None:
            return None
        try:
            return self.probe()
        except Exception as exc:  # noqa: BLE001 - e.g. the file went away: read the journal
            log.debug("%s: data version probe failed (%s): reading the journal", self.name, exc)
            return None

    async def _apply_due(self, now: float) -> None:
        due = self.line.due(now)
        if not due:
            return
        for entry in due:
            if entry.seq > self.index.seq:
                self._apply(entry)
        if self.line.delay:
            log.info("%s: applied up to seq %d (%.2fs behind the journal by design)",
                     self.name, self.index.seq, self.line.delay)
        self._write_progress()
        async with self.applied:
            self.applied.notify_all()

    def _apply(self, entry: JournalEntry, prebuilt: bool = False) -> None:
        try:
            built = self._built(entry) if prebuilt and entry.kind is EntryKind.SNAPSHOT \
                and not entry.deletes else None
            if built is not None:
                self.index.apply(entry, built)
            else:
                self.index.apply(entry)
        except Exception as exc:  # the index refuses what it cannot serve; keep following
            log.error("%s: could not apply %s seq %d (%s, change %s): %s; answers for %s stay as they were",
                      self.name, entry.kind.value, entry.seq, entry.zone_name, entry.change_id or "-",
                      exc, entry.zone_name)

    def _built(self, entry: JournalEntry) -> Any:
        """A SNAPSHOT's served zone without `Zone.build`: the one the store's import was
        handed (`take_built`: a new store seeded from a zone file), else one built straight
        from the snapshot's plain record sets (`fastbuild.from_sets`: a restart, issue 12),
        else None (the index builds it)."""
        take = getattr(self.source, "take_built", None)
        built = take(entry) if take is not None else None
        if built is None:
            try:
                with gcpause.paused(len(entry.puts)):
                    built = fastbuild.from_sets(entry.zone_name, entry.puts)
            except Exception:  # noqa: BLE001 - the index's own build says what is wrong
                built = None
        return built

    async def wait_applied(self, seq: int) -> None:
        """Return once this follower's index has applied `seq`.

        A follower with no delay first applies, right here, what this process committed up
        to `seq` and its store still holds in memory (`recent_entries`): the control API
        waits so for the batch it just committed, which then needs no wake-up of the follow
        loop and no journal read in the store's thread (issue 12's INSYNC path). The loop
        still reads the journal after every wake, so entries other processes wrote are
        never missed; it finds these applied already."""
        if self.index.seq < seq and not self.line.delay:
            await self._catch_up(seq)
        async with self.applied:
            while self.index.seq < seq:
                await self.applied.wait()

    async def _catch_up(self, seq: int) -> None:
        recent = getattr(self.source, "recent_entries", None)
        entries = recent(self.index.seq, seq) if recent is not None else None
        if not entries:
            return
        for entry in entries:
            if entry.seq > self.index.seq:
                self._apply(entry)
        # observed, as the loop observes what it reads: one that failed is logged once
        self.line.observed_seq = max(self.line.observed_seq, entries[-1].seq)
        self._write_progress()
        async with self.applied:
            self.applied.notify_all()

    def _write_progress(self) -> None:
        if self.progress_path is None:
            return
        self._last_progress = trio.current_time()
        tmp = self.progress_path.with_suffix(".tmp")
        tmp.write_text(f"{self.index.seq}\n")
        os.replace(tmp, self.progress_path)


def progress_dir(db_path: str | Path) -> Path:
    """Where replica processes following `db_path` report their applied seq."""
    return Path(str(db_path) + ".replicas")


class Propagation:
    """The lowest journal seq applied by every serving replica (the GetChange question)."""

    def __init__(self, status_dir: Path | None = None, stale_after: float = 10.0,
                 wall_clock: Callable[[], float] | None = None,
                 peers: Callable[[], dict[str, int]] | None = None):
        self.followers: list[Follower] = []
        self.peers = peers  # other nodes' applied seqs (a shared PostgreSQL store: authd.store.pgnodes)
        self.status_dir = status_dir
        self.stale_after = stale_after
        self._wall = wall_clock
        self._gone: set[str] = set()

    def add(self, follower: Follower) -> None:
        self.followers.append(follower)

    def wake_all(self, *_: Any) -> None:
        for f in self.followers:
            f.wake()

    def external(self) -> dict[str, int]:
        """Replica processes' applied seqs, from fresh progress files."""
        out: dict[str, int] = {}
        if self.status_dir is None or not self.status_dir.is_dir():
            return out
        now = self._wall() if self._wall else time.time()  # progress files carry wall-clock mtimes
        own = {f.name for f in self.followers}  # their files are this process's own writes
        for path in self.status_dir.glob("*.seq"):
            if path.stem in own:
                continue
            try:
                age = now - path.stat().st_mtime
                seq = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                continue
            if age > self.stale_after:
                if path.stem not in self._gone:
                    log.warning("replica %s: no progress for %.0fs, no longer counted for INSYNC", path.stem, age)
                    self._gone.add(path.stem)
                continue
            self._gone.discard(path.stem)
            out[path.stem] = seq
        return out

    def applied_seq(self) -> int:
        seqs = [f.applied_seq for f in self.followers] + list(self.external().values())
        if self.peers is not None:
            seqs += self.peers().values()
        return min(seqs) if seqs else 2**63

    def describe(self) -> dict[str, int]:
        d = {f.name: f.applied_seq for f in self.followers}
        d.update(self.external())
        if self.peers is not None:
            d.update(self.peers())
        return d
