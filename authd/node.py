"""One authd node with its control plane: store, zone seeding, the primary serving index fed
from the journal, DNS, the Route 53 API, and in-process replicas on their own addresses.

Trio shell: it wires parts together and starts tasks; every decision lives elsewhere
(`authd.model.changes`, `authd.zonefiles.seed`, `authd.store.replica`, `authd.dns.index`). `run_node` is what
`authd serve --store/--control/--replicas` runs, and what tests and the enactor's demo start
in a nursery: `node = await nursery.start(run_node, NodeConfig(...))`.

Two shapes:
- a primary (`replica_mode=False`): opens the store read-write, seeds it from `zones/`
  (see `authd.zonefiles.seed` for the rule), serves DNS from a primary index, the control API if
  asked, and `replicas` more indexes each on 127.0.0.(2+i), each behind its own
  propagation delay. GetChange is INSYNC once the primary index and every replica applied it.
- a replica process (`replica_mode=True`): opens the SQLite file read-only, follows its
  journal, serves DNS, and reports its progress in `<db>.replicas/<name>.seq` so the
  primary's GetChange waits for it too.

Followers of a SQLite file look at its data version before its journal, back off to
`idle_poll` while nothing comes, and are woken by any process's commit to its WAL
(`authd.store.walwatch`). A stop (Ctrl-C) while a new store is seeded does not wait for the
seed: its threads are interrupted and abandoned (`_in_thread`), and nothing uncommitted stays.

With a PostgreSQL store (`store_path` = `postgresql://...`) every node is a peer: any of
them seeds (one at a time), serves DNS and the change API, learns of new journal entries
through LISTEN/NOTIFY (polling as the fallback), and registers with a heartbeat in the
`nodes` table; GetChange waits for every live node (`authd.store.pgnodes`, `authd.store.nodes`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from authd import gcpause, gcwatch
from authd.control.app import ControlAPI, check_listen, serve_control
from authd.dns.index import ServingIndex
from authd.dns.server import serve_dns
from authd.health.prober import Prober
from authd.model.limits import Limits
from authd.store.memstore import MemoryStore
from authd.store.replica import Follower, Propagation, progress_dir
from authd.store.sqlstore import SQLiteStore
from authd.store.walwatch import DataVersion, WalWatch, serve_wal_watch
from authd.zonefiles.seed import Seeding, prepare_seed, seed_dir

log = logging.getLogger("authd.node")


@dataclass
class NodeConfig:
    store_path: str | None = None  # SQLite file; None = in memory (nothing survives exit)
    zones_dir: str | None = "zones/"  # seed from here (primary only); None = no seeding
    dns_host: str = "127.0.0.1"
    dns_port: int = 5380  # authd.cli.main.DEFAULT_LISTEN; 0 = ephemeral (each replica then picks its own too)
    control: tuple[str, int] | None = None  # Route 53 API address; None = no API
    credentials: Mapping[str, str] | None = None  # None = test/test, loopback only
    replicas: int = 0
    replica_delays: list[float] = field(default_factory=list)  # per replica; missing = default
    propagation_delay: float = 0.0  # default delay for replicas (and for a replica process)
    replica_mode: bool = False
    replica_name: str = "replica"
    poll_interval: float = 0.05  # how often file followers look for new journal entries
    idle_poll: float = 0.5  # the ceiling that wait backs off to while nothing comes (IdlePoll)
    wal_watch: bool = True  # SQLite: wake followers on any process's commit (inotify, Linux)
    seed: int | None = None
    node_name: str | None = None  # PostgreSQL store: this node's name (default authd-HOST-PORT)
    node_timeout: float = 10.0  # PostgreSQL store: a node silent this long stops counting
    heartbeat: float = 1.0  # PostgreSQL store: seconds between heartbeats
    cache: bool = True
    compiled: bool = True  # answer from compiled templates (authd.dns.compiled) first
    allow_axfr: bool = False
    probe_any_address: bool = False  # health checks may probe non-loopback targets
    health_checks: bool = True  # run the prober (primary with the control API only)
    geomap: Any = None  # authd.dns.geo.GeoMap: where clients are (`--geo-map FILE`)
    limits: Limits = field(default_factory=Limits)  # Route 53 quotas (`--limit NAME=VALUE`)
    watch_empty: list[tuple[str, str]] = field(default_factory=list)  # (name, type) to watch
    watch_log: str | None = None  # JSON lines of authd.dns.emptywatch transitions (primary index)
    metrics: bool = True  # /metrics on the change API (authd.metrics); counts every query
    dns_options: dict[str, Any] = field(default_factory=dict)  # more serve_dns keywords


@dataclass
class ServingReplica:
    name: str
    host: str
    port: int
    index: Any
    follower: Follower


@dataclass
class Node:
    """Handles on a running node, for tests and demos."""

    store: Any
    propagation: Propagation
    primary: ServingReplica
    replicas: list[ServingReplica]
    app: ControlAPI | None = None
    control_url: str | None = None
    prober: Prober | None = None
    name: str = "primary"
    peers: Any = None  # authd.store.pgnodes.Peers with a PostgreSQL store
    link: Any = None  # authd.store.pgnodes.DatabaseLink with a PostgreSQL store

    @property
    def servers(self) -> list[ServingReplica]:
        return [self.primary, *self.replicas]


def replica_address(i: int) -> str:
    """Replica i (1-based) listens on 127.0.0.(1+i): 127.0.0.2, 127.0.0.3, ..."""
    return f"127.0.0.{1 + i}"


async def run_node(cfg: NodeConfig, *, task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED) -> None:
    """Start everything, `task_status.started(node)`, then serve until cancelled."""
    rng = random.Random(cfg.seed)

    def new_index() -> ServingIndex:
        return ServingIndex(rng=random.Random(rng.random()), cache=cfg.cache, allow_axfr=cfg.allow_axfr,
                            geomap=cfg.geomap, compiled=cfg.compiled)

    if cfg.control is not None:
        check_listen(cfg.control[0], cfg.credentials)
    status_dir: Path | None
    seeding: Seeding | None = None  # a new store's imports, run while DNS answers
    unwinding: list[trio.Event] = []  # threads a stop left running (see _in_thread)
    pg = _is_postgres(cfg.store_path)
    if pg:
        from authd.store.pgstore import PostgresStore

        store = PostgresStore(str(cfg.store_path))
        status_dir = None
        if cfg.zones_dir and not cfg.replica_mode:
            with store.exclusive():  # nodes starting together seed one at a time
                for line in seed_dir(store, cfg.zones_dir):
                    log.info("seed: %s", line)
    elif cfg.replica_mode:
        if not cfg.store_path:
            raise ValueError("a replica follows a store file: give --store FILE")
        store: Any = SQLiteStore(cfg.store_path, readonly=True)
        status_dir = progress_dir(cfg.store_path)
        status_dir.mkdir(exist_ok=True)
    else:
        store = SQLiteStore(cfg.store_path) if cfg.store_path else MemoryStore(instant_insync=False)
        if cfg.zones_dir:
            # in threads a Ctrl-C does not wait for: reading a 1M-name file takes seconds, and
            # its parse (pure Python) would hold a stop for all of them (no grace: nothing to
            # roll back that a crash would not; a write under way is interrupted all the same)
            try:
                seeding = await _in_thread(prepare_seed, store, cfg.zones_dir, store=store,
                                           unwinding=unwinding, grace=0.0)
                for line in seeding.lines:
                    log.info("seed: %s", line)
                if not seeding.early:  # the imports first; DNS then serves the store's snapshot
                    for line in await _in_thread(seeding.run, store, store=store, unwinding=unwinding):
                        log.info("seed: %s", line)
                    seeding = None
            except BaseException:
                _close_unless_unwinding(store, unwinding)
                raise
        status_dir = progress_dir(cfg.store_path) if cfg.store_path else None
        if status_dir is not None:
            status_dir.mkdir(exist_ok=True)
    peers = link = None
    if pg:
        from authd.store import pgnodes
        peers = pgnodes.Peers("", cfg.node_timeout)  # named once the DNS port is known
    propagation = Propagation(status_dir=status_dir if not cfg.replica_mode else None,
                              peers=peers.seqs if peers is not None else None)
    app = (ControlAPI(store, credentials=cfg.credentials, applied_seq=propagation.applied_seq, limits=cfg.limits)
           if not cfg.replica_mode else None)
    call: Any = app.call if app is not None else (_threaded() if pg else _inline)
    if pg:
        link = pgnodes.DatabaseLink(cfg.node_name or "node")
        call = pgnodes.TolerantCall(call, link, lambda: min(f.applied_seq for f in propagation.followers))

    watch = None
    probe: DataVersion | None = None
    try:
        async with trio.open_nursery() as nursery:
            wal = None
            if isinstance(store, SQLiteStore):
                probe = DataVersion(store.path)  # an idle look is one PRAGMA, not a journal query
                wal = WalWatch.open(store.path) if cfg.wal_watch else None
            name = cfg.replica_name if cfg.replica_mode else "primary"
            index = new_index()
            metrics = None
            if app is not None and cfg.metrics:
                from authd.metrics import AuthdMetrics

                metrics = AuthdMetrics()
                metrics.count_queries(index)
                app.metrics = metrics
            prime = _watch_empty(index, cfg.watch_empty, cfg.watch_log) if cfg.watch_empty else None
            follower = Follower(
                name, store, index, call=call, poll_interval=cfg.poll_interval,
                idle_poll=cfg.idle_poll, probe=probe,
                delay=cfg.propagation_delay if cfg.replica_mode or pg else 0.0,  # a late node
                # every index serving a store file reports its progress there, so that
                # `authd change --store FILE --wait` waits for the running servers too
                progress_path=(status_dir / f"{name}.seq") if status_dir else None,
            )
            propagation.add(follower)
            if metrics is not None:
                metrics.followers.append(follower)
            if app is not None:
                app.settle = follower.wait_applied  # answer a change once this index has it
                app.serving_index = index  # TestDNSAnswer asks the index DNS is served from
            if seeding is not None:  # a new store: answer from the files while it is seeded
                host, port = await _serve_while_seeding(nursery, seeding, store, index, cfg, unwinding)
            await nursery.start(follower.run)
            if prime is not None:
                prime()  # the state the snapshot left (zones load one by one: not before)
            if seeding is None:
                host, port = await nursery.start(functools.partial(
                    serve_dns, index, cfg.dns_host, cfg.dns_port, **cfg.dns_options))
            primary = ServingReplica(name, host, port, index, follower)
            log.info("%s: DNS on %s port %d, store %s", name, host, port,
                     store.path if pg else cfg.store_path or "in memory")  # pg: no password in logs

            replicas: list[ServingReplica] = []
            for i in range(1, cfg.replicas + 1):
                delay = cfg.replica_delays[i - 1] if i - 1 < len(cfg.replica_delays) else cfg.propagation_delay
                r_index = new_index()
                r_follower = Follower(f"replica-{i}", store, r_index, call=call, delay=delay,
                                      poll_interval=cfg.poll_interval, idle_poll=cfg.idle_poll,
                                      probe=probe,
                                      progress_path=(status_dir / f"replica-{i}.seq") if status_dir else None)
                propagation.add(r_follower)
                if metrics is not None:
                    metrics.followers.append(r_follower)
                await nursery.start(r_follower.run)
                r_host, r_port = await nursery.start(functools.partial(
                    serve_dns, r_index, replica_address(i), cfg.dns_port,
                    **{**cfg.dns_options, "transfers": None}))  # secondaries follow the primary
                replicas.append(ServingReplica(f"replica-{i}", r_host, r_port, r_index, r_follower))
                log.info("replica-%d: DNS on %s port %d, propagation delay %.2fs", i, r_host, r_port, delay)

            if wal is not None:  # another process's commit wakes every follower at once
                await nursery.start(serve_wal_watch, wal, propagation.wake_all)

            # The zones just loaded live as long as the process: move them out of the cyclic
            # GC's reach, so a full collection does not rescan a million record sets. Collect
            # first: startup garbage frozen with them would never be freed.
            gc.collect()
            gc.freeze()
            # A 1,000-change batch allocates ~50k short-lived objects (XML elements, record
            # sets); the default gen-0 threshold (700) would run dozens of collections per batch.
            gc.set_threshold(50_000, 20, 20)
            watch = gcwatch.install()  # each full collection logged with its time (issue 12)
            # and no collection inside a batch at all: this node runs them between batches
            gcpause.hold()
            busy = (lambda: app.in_flight > 0) if app is not None else (lambda: False)
            answered = (lambda: app.batch_answered.wait()) if app is not None else None
            nursery.start_soon(_collect_between_batches, busy, 1.0, answered)
            node = Node(store, propagation, primary, replicas, app, peers=peers, link=link)
            if metrics is not None:
                metrics.start()
                nursery.start_soon(_fold_every_second, metrics, busy)
            if app is not None:
                app.on_change.append(propagation.wake_all)
                if cfg.health_checks:
                    node.prober = Prober(store, app.call, probe_any_address=cfg.probe_any_address,
                                         on_journal=propagation.wake_all)
                    app.health_prober = node.prober
                    app.on_health_change.append(node.prober.wake)
                    await nursery.start(node.prober.run)
                if metrics is not None:
                    app.on_change.append(lambda _info: metrics.changes.update(["accepted"]))
                if cfg.control is not None:
                    node.control_url = await nursery.start(serve_control, app, cfg.control[0], cfg.control[1])
                    log.info("control API (Route 53 2013-04-01) on %s", node.control_url)
            if seeding is not None:
                log.info("%s: store seeded: %d record sets in %.1f s, change API open", name,
                         seeding.record_sets, seeding.seconds)
            if pg:
                assert peers is not None and link is not None
                node.name = peers.own = link.name = cfg.node_name or f"authd-{host}-{port}"
                await nursery.start(pgnodes.listen_journal, str(cfg.store_path),
                                    propagation.wake_all, peers.refresh)
                for f in propagation.followers:
                    nursery.start_soon(pgnodes.kick_on_apply, f.applied, peers)
                await nursery.start(functools.partial(
                    pgnodes.serve_registry, pgnodes.NodeRegistry(str(cfg.store_path)), peers,
                    name=node.name, dns=f"{host}:{port}", control=node.control_url or "",
                    local_seq=lambda: min(f.applied_seq for f in propagation.followers),
                    link=link, heartbeat=cfg.heartbeat))
            task_status.started(node)
    finally:
        if watch is not None:
            watch.uninstall()
            gcpause.release()
        if probe is not None:
            probe.close()
        _close_unless_unwinding(store, unwinding)


STOP_GRACE = 0.5  # seconds a stop waits for an interrupted store call to roll back


async def _in_thread(fn: Callable[..., Any], *args: Any, store: Any, unwinding: list[trio.Event],
                     grace: float = STOP_GRACE) -> Any:
    """`fn(*args)` in a worker thread that a cancellation (Ctrl-C) does not wait for.

    Cancelled, it interrupts `store` (`SQLiteStore.interrupt`: the statement under way fails
    and its transaction rolls back, so a half-done import never commits) and keeps
    interrupting (a statement started after an interrupt is not interrupted by it) until the
    thread returns, for at most `grace` seconds. A thread still running then is abandoned:
    its event joins `unwinding`, and the node leaves the store to the process exit instead of
    closing it under that thread; the file's last commit is intact, as after a crash."""
    done = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def body() -> Any:
        try:
            return fn(*args)
        finally:
            with contextlib.suppress(trio.RunFinishedError):  # the node is gone already
                token.run_sync_soon(done.set)

    try:
        return await trio.to_thread.run_sync(body, abandon_on_cancel=True)
    except trio.Cancelled:
        interrupt = getattr(store, "interrupt", None)
        with trio.move_on_after(grace, shield=True):
            while not done.is_set():
                if interrupt is not None:
                    interrupt()
                with trio.move_on_after(0.02):
                    await done.wait()
        if not done.is_set():
            unwinding.append(done)
        raise


def _close_unless_unwinding(store: Any, unwinding: list[trio.Event]) -> None:
    if any(not e.is_set() for e in unwinding):
        log.warning("store %s: left to the process exit, not closed: an interrupted seed still runs "
                    "in a thread (what it had not committed is lost, as in a crash; the next start "
                    "seeds again)", getattr(store, "path", "in memory"))
        return
    store.close()


async def _serve_while_seeding(nursery: trio.Nursery, seeding: Seeding, store: Any,
                               index: ServingIndex, cfg: NodeConfig,
                               unwinding: list[trio.Event]) -> tuple[str, int]:
    """A new store's first start (`Seeding.early`): DNS answers from the zones the files were
    read into while their imports run in a thread; returns once they have committed. The
    change API opens only after this (no change can race the import), and the follower's
    bootstrap then replaces each zone by the store's snapshot of it (the same sets, the SOA
    serial the import moved forward, RFC 1996 §2.2). A crash before the commit leaves no zone:
    the next start seeds again."""
    for entry, built in seeding.entries():
        index.apply(entry, built)
    host, port = await nursery.start(functools.partial(
        serve_dns, index, cfg.dns_host, cfg.dns_port, **cfg.dns_options))
    log.info("primary: DNS on %s port %d, answering from the zone files while the store is seeded "
             "(%d record sets; the change API opens once they are committed)", host, port,
             seeding.record_sets)
    # the imports, then (SQLite) their log checkpointed and restarted (`Seeding.run`)
    for line in await _in_thread(seeding.run, store, store=store, unwinding=unwinding):
        log.info("seed: %s", line)
    return host, port


async def _collect_between_batches(busy: Callable[[], bool], every: float = 1.0,
                                   answered: Callable[[], Awaitable[None]] | None = None) -> None:
    """The node's cyclic collections (`authd.gcpause.due`), each once no change batch is in
    flight, so a batch's INSYNC never waits for one: the young generations at a tick, and
    every `gcpause.FULL_EVERY`-th time all of them, so a cycle that dies after reaching the
    oldest generation is freed too (only the load's heap is frozen, once, at startup); a
    full one also waits until `FULL_EVERY` ticks' time has passed since the last, so
    batches coming faster than one a second do not make the full walks more frequent, and
    what survives it is frozen (`gcpause.freeze_after_full`), so the next one does not walk
    it again.

    A tick comes `every` seconds, or as soon as a change batch has been answered
    (`answered()` returns once one has: `ControlAPI.batch_answered`): what a batch left is
    collected right after its response is sent, when the next batch is least likely to be
    arriving (its client is reading this one's INSYNC). On a clock of its own a tick fell at
    any moment, and a collection already running when a request came in (5 to 150 ms for the
    full one on a loaded 2-core machine) delayed that batch: the INSYNC tail of issue 12."""
    collections = 0
    last_full = trio.current_time()
    while True:
        if answered is None:
            await trio.sleep(every)
        else:
            with trio.move_on_after(every):
                await answered()
        if not gcpause.due(gc.get_count()[0]):
            continue
        while busy():
            await trio.sleep(0.005)  # a batch is being applied: right after it
        collections += 1
        since = trio.current_time() - last_full
        full = collections >= gcpause.FULL_EVERY and since >= (gcpause.FULL_EVERY - 0.5) * every
        if full:
            collections = 0
            last_full = trio.current_time()
        gc.collect(2 if full else 1)
        if full:
            gcpause.freeze_after_full()


def _watch_empty(index: ServingIndex, names: list[tuple[str, str]], path: str | None) -> Any:
    """Log (and write to `path`) the moment each watched name's answer goes empty or comes
    back, at the change entry that did it. Returns the call that primes the watch once the
    startup snapshot is in."""
    import json
    import time

    from authd.dns.emptywatch import EmptyWatch
    from authd.model.journal import EntryKind

    watch = EmptyWatch(names)
    out = open(path, "a", buffering=1) if path else None  # noqa: SIM115 - lives with the process
    primed = False

    def hook(entry: Any) -> None:
        if not primed or entry.kind is EntryKind.SNAPSHOT:
            return
        report(entry.seq, entry.change_id)

    def prime() -> None:
        nonlocal primed
        primed = True
        report(index.seq, None)

    def report(seq: int, change_id: str | None) -> None:
        for tr in watch.check(index, time.time(), seq):
            log.warning("ANSWERS %s for %s %s (seq %d, change %s)", "EMPTY" if tr.empty else "BACK",
                        tr.name, tr.rtype, tr.seq, change_id or "-")
            if out is not None:
                out.write(json.dumps({**json.loads(tr.to_line()), "change": change_id}) + "\n")

    index.on_applied.append(hook)
    return prime


FOLD_SLICE = 1000  # counts folded between checkpoints (~1 ms of classifying; issue 12)


async def _fold_every_second(metrics: Any, busy: Callable[[], bool] = lambda: False) -> None:
    """Keep the per-query dict small: fold it into totals once a second, in slices, so that
    thousands of distinct queries do not hold up DNS or a change batch's apply. No slice runs
    while a batch is in flight: the store's thread would wait for the GIL after each of its
    SQLite calls (up to the 5 ms switch interval each) while this one classifies queries."""
    while True:
        await trio.sleep(1.0)
        if metrics.tally is not None:
            while busy():
                await trio.sleep(0.005)
            metrics.tally.hold()  # this round folds what was counted until now, in slices
            while not metrics.tally.fold(FOLD_SLICE, hold=False):
                await trio.sleep(0)
                while busy():
                    await trio.sleep(0.005)


async def _inline(fn: Any, *args: Any) -> Any:
    return fn(*args)


def _threaded() -> Any:
    """Store calls in one worker thread, for a node without the control API (whose worker
    thread the followers share otherwise): a database round trip must not stall DNS."""
    limiter = trio.CapacityLimiter(1)

    async def call(fn: Any, *args: Any) -> Any:
        return await trio.to_thread.run_sync(lambda: fn(*args), limiter=limiter)

    return call


def _is_postgres(store_path: str | None) -> bool:
    return bool(store_path) and str(store_path).startswith(("postgresql://", "postgres://"))
