"""`resolver experiment outage-recovery`: how caches stretch the outage clients see (trio shell).

It starts a real authoritative server, caching resolvers (ours in-process, or Unbound as
processes), optional host stub caches, and N clients per grid cell querying at a set rate. At a
known time it deletes the active record tree (the endpoint's name then answers NOERROR with no
addresses, as on 20 October 2025) and repairs it at another known time. Every client sample is
kept; `outage.py` (pure) turns them into per-client windows; this module writes the table, the
CSV and the plots.

Cells of the grid run concurrently in batches on one shared timeline per batch, each cell with
its own zone (so its own SOA TTL and MINIMUM), resolvers, stubs and clients.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import math
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import trio

from resolver.cache import CachePolicy
from resolver.outage import (
    Cell,
    CellSummary,
    ClientResult,
    Impl,
    Layer,
    Outcome,
    Sample,
    authority_window,
    error_fraction,
    per_client,
    summarise,
)
from resolver.procs import Authd, Knot, run_authd, run_knot, run_unbound
from resolver.resolution import Server
from resolver.server import ResolverConfig, serve_resolver

ENDPOINT = "dynamodb.us-east-1"
LB_ADDRESSES = ("192.0.2.11", "192.0.2.12", "192.0.2.13")


@dataclass(frozen=True)
class Settings:
    negatives: tuple[tuple[int, int], ...] = ((10, 1), (10, 3), (10, 6), (3, 10))
    serve_stale: tuple[bool, ...] = (False, True)
    layers: tuple[Layer, ...] = (Layer.NONE, Layer.RESOLVER, Layer.STUB)
    rates: tuple[float, ...] = (2.0, 8.0)
    impls: tuple[Impl, ...] = (Impl.OURS,)
    clients: int = 6
    resolvers_per_cell: int = 3
    outage_at: float = 6.0
    outage_length: float = 8.0
    record_ttl: int = 5
    stub_negative_ttl: int = 2
    tail: float = 2.0
    parallel: int = 14
    seed: int = 1
    probe_rate: float = 20.0
    authority: str = "authd-api"

    def cells(self) -> list[Cell]:
        out = []
        for impl, (soa_ttl, minimum), stale, layer, rate in itertools.product(
            self.impls, self.negatives, self.serve_stale, self.layers, self.rates
        ):
            if layer is Layer.NONE and (stale or impl is not Impl.OURS):
                continue  # no cache: serve-stale and the resolver make no difference
            out.append(Cell(soa_ttl, minimum, stale, layer, rate, impl))
        return out

    def run_length(self, cells: Sequence[Cell]) -> float:
        longest = max(c.negative_ttl for c in cells)
        stub = self.stub_negative_ttl if any(c.layer is Layer.STUB for c in cells) else 0
        return self.outage_at + self.outage_length + longest + stub + self.record_ttl + self.tail


@dataclass
class CellRun:
    cell: Cell
    index: int
    zone: str
    samples: list[Sample] = field(default_factory=list)
    probe: list[Sample] = field(default_factory=list)
    t_gone: float = math.nan  # the authority's first empty answer (its probe)
    t_back: float = math.nan  # the authority's first addresses again: "records back at T"

    @property
    def qname(self) -> str:
        return f"{ENDPOINT}.{self.zone}"


@dataclass
class BatchResult:
    runs: list[CellRun]
    t_break: float
    t_fix: float


def zone_text(run: CellRun, settings: Settings, *, healthy: bool, serial: int) -> str:
    """The endpoint zone: healthy, or with the active tree deleted (the name answers nothing).

    In the outage the name still exists (it has a TXT saying why) so the authority answers
    NOERROR with no A records (NODATA), which is what the dangling alias served in 2025.
    """
    c = run.cell
    lines = [
        f"$ORIGIN {run.zone}",
        f"@ {c.soa_ttl} IN SOA ns1 hostmaster {serial} 7200 900 1209600 {c.soa_minimum}",
        "@ 300 IN NS ns1",
        "ns1 300 IN A 127.0.0.1",
    ]
    if healthy:
        lines += [f"{ENDPOINT} {settings.record_ttl} IN A {a}" for a in LB_ADDRESSES]
    else:
        lines.append(f'{ENDPOINT} {settings.record_ttl} IN TXT "active tree deleted"')
    return "\n".join(lines) + "\n"


class ZoneAuthority:
    """The authority: authd (default) or Knot, every cell's zone on one server.

    `set_healthy(False)` deletes the active tree from every cell's zone at once; authd swaps
    to the new zones with a SO_REUSEPORT handover, Knot reloads them (procs.py). Until authd's
    change API feeds its data plane, this is how the deletion reaches the wire.
    """

    def __init__(self, backend: Authd | Knot, runs: list[CellRun], settings: Settings) -> None:
        self.backend = backend
        self.runs = runs
        self.settings = settings
        self.serial = 1

    @property
    def server(self) -> Server:
        return self.backend.server

    def zones(self, healthy: bool) -> dict[str, str]:
        return {
            r.zone: zone_text(r, self.settings, healthy=healthy, serial=self.serial)
            for r in self.runs
        }

    def set_healthy(self, healthy: bool) -> None:
        self.serial += 1
        self.backend.replace_zones(self.zones(healthy))

    @classmethod
    @contextlib.contextmanager
    def open(cls, kind: str, runs: list[CellRun], settings: Settings) -> Iterator[ZoneAuthority]:
        zones = {r.zone: zone_text(r, settings, healthy=True, serial=1) for r in runs}
        runner = run_authd if kind == "authd" else run_knot
        with runner(zones) as backend:
            yield cls(backend, runs, settings)


LBS = ("az1-lb1", "az2-lb2", "az3-lb3")
PLAN = "plan-0001"


def zone_id(run: CellRun) -> str:
    # Readable and stable, in the form authd derives from an origin (c07.outage.test. ->
    # Z0C070OUTAGE0TEST); the zone's aliases name it, so authd adopts it as the zone's id.
    return "Z0" + "0".join(label.upper() for label in run.zone.rstrip(".").split("."))


def active_tree(run: CellRun, settings: Settings) -> list[dict]:
    """The endpoint's active plan tree as Route 53 record sets: leaves, then the weighted root.

    Leaves first, so a batch that CREATEs them in order never names a missing alias target.
    """
    endpoint = f"{ENDPOINT}.{run.zone}"
    root = f"{PLAN}.{endpoint}"
    leaves = [
        {"Name": f"{lb}.{root}", "Type": "A", "TTL": settings.record_ttl,
         "ResourceRecords": [{"Value": addr}]}
        for lb, addr in zip(LBS, LB_ADDRESSES, strict=True)
    ]
    members = [
        {"Name": root, "Type": "A", "SetIdentifier": lb, "Weight": 100,
         "AliasTarget": {"HostedZoneId": zone_id(run), "DNSName": f"{lb}.{root}",
                         "EvaluateTargetHealth": False}}
        for lb in LBS
    ]
    return leaves + members


def zone_json(run: CellRun, settings: Settings) -> str:
    """A cell's zone in Route 53 JSON: the stable alias -> weighted plan root -> leaves."""
    import json

    c = run.cell
    endpoint = f"{ENDPOINT}.{run.zone}"
    sets = [
        {"Name": run.zone, "Type": "SOA", "TTL": c.soa_ttl, "ResourceRecords": [
            {"Value": f"ns1.{run.zone} hostmaster.{run.zone} 1 7200 900 1209600 {c.soa_minimum}"}
        ]},
        {"Name": run.zone, "Type": "NS", "TTL": 300,
         "ResourceRecords": [{"Value": f"ns1.{run.zone}"}]},
        {"Name": f"ns1.{run.zone}", "Type": "A", "TTL": 300,
         "ResourceRecords": [{"Value": "127.0.0.1"}]},
        {"Name": endpoint, "Type": "A", "AliasTarget": {
            "HostedZoneId": zone_id(run), "DNSName": f"{PLAN}.{endpoint}",
            "EvaluateTargetHealth": False}},
        *active_tree(run, settings),
    ]
    return json.dumps({"ResourceRecordSets": sets}, indent=1)


class ControlAuthority:
    """authd with its Route 53 change API: the real mechanism of the outage and the repair.

    The deletion is one change batch per endpoint zone that DELETEs the active plan tree
    (leaves and weighted members), leaving the stable alias dangling: authd then answers
    NOERROR with no addresses, as on 20 October 2025. The repair CREATEs the same tree again.
    Both wait until GetChange says INSYNC (the change is on the wire).
    """

    def __init__(self, authd: subprocess.Popen, server: Server, control: str,
                 runs: list[CellRun], settings: Settings) -> None:
        from authd.cli.control import HttpControl

        self.proc = authd
        self.server = server
        self.runs = runs
        self.settings = settings
        self.api = HttpControl(control, "test", "test")
        self.zone_ids = {run.zone: self.api.find_zone(run.zone).id for run in runs}

    def set_healthy(self, healthy: bool) -> None:
        action = "CREATE" if healthy else "DELETE"
        pending = []
        for run in self.runs:
            tree = active_tree(run, self.settings)
            if not healthy:
                tree = tree[::-1]  # members before the leaves they point at
            raw = {
                "Comment": f"outage-recovery: {action} {PLAN} tree of {ENDPOINT}.{run.zone}",
                "Changes": [{"Action": action, "ResourceRecordSet": rs} for rs in tree],
            }
            pending.append(self.api.change(self.zone_ids[run.zone], raw["Comment"], [], raw))
        deadline = time.monotonic() + 10
        for change_id in pending:
            while self.api.status(change_id) != "INSYNC":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"change {change_id} not INSYNC after 10 s")
                time.sleep(0.02)

    @classmethod
    @contextlib.contextmanager
    def open(cls, runs: list[CellRun], settings: Settings) -> Iterator[ControlAuthority]:
        from resolver.procs import free_port, spawn, stop, wait_answering

        with tempfile.TemporaryDirectory(prefix="outage-authd-") as tmp:
            zdir = Path(tmp) / "zones"
            zdir.mkdir()
            for run in runs:
                (zdir / f"{run.zone.rstrip('.')}.json").write_text(zone_json(run, settings))
            dns_port = free_port()
            api_port = free_port()
            proc = spawn(
                [sys.executable, "-m", "authd", "serve", "--zones", str(zdir), "--listen",
                 f"127.0.0.1:{dns_port}", "--control", f"127.0.0.1:{api_port}",
                 "--store", ":memory:", "--access-key", "test", "--secret-key", "test",
                 "--log-level", "WARNING"],
                Path(tmp) / "authd.log",
            )
            try:
                server = Server("127.0.0.1", dns_port)
                wait_answering(server, runs[0].zone, proc, "authd")
                url = f"http://127.0.0.1:{api_port}"
                deadline = time.monotonic() + 10
                while True:
                    try:
                        authority = cls(proc, server, url, runs, settings)
                        break
                    except Exception:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise
                        time.sleep(0.05)
                yield authority
            finally:
                stop(proc)


def classify(wire: bytes) -> Outcome:
    try:
        msg = dns.message.from_wire(wire)
    except Exception:  # noqa: BLE001 - a garbled answer is an error for the client
        return Outcome.ERROR
    if msg.rcode() == dns.rcode.NXDOMAIN:
        return Outcome.EMPTY
    if msg.rcode() != dns.rcode.NOERROR:
        return Outcome.ERROR
    if any(r.rdtype == dns.rdatatype.A for r in msg.answer):
        return Outcome.ADDRESSES
    return Outcome.EMPTY


async def ask(server: Server, wire: bytes, timeout: float) -> Outcome:
    """One query from its own socket (a fresh random source port, as a stub resolver uses)."""
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        await sock.bind(("127.0.0.1", 0))
        await sock.sendto(wire, (server.host, server.port))
        with trio.move_on_after(timeout):
            while True:
                data, _ = await sock.recvfrom(4096)
                if data[:2] == wire[:2]:
                    return classify(data)
    return Outcome.ERROR


async def client(
    index: int, server: Server, qname: str, rate: float, t0: float, end: float,
    out: list[Sample], rng: random.Random, start: float = 0.0, timeout: float = 1.0,
) -> None:
    """A client asking for the endpoint's A record at `rate` queries/s on average.

    Arrivals are Poisson (exponential gaps): independent clients do not tick in step, which is
    what spreads the resolvers' negative-cache expiries over the negative-TTL window. Each
    query runs on its own, so a slow answer never delays the next query; a query unanswered
    after `timeout` is an error. Samples are stamped with the send time.
    """
    template = bytearray(dns.message.make_query(qname, "A").to_wire())

    outstanding = 0

    async def one(sent: float, wire: bytes) -> None:
        nonlocal outstanding
        outstanding += 1
        try:
            out.append(Sample(sent - t0, index, await ask(server, wire, timeout)))
        finally:
            outstanding -= 1

    async with trio.open_nursery() as nursery:
        next_t = t0 + start + rng.expovariate(rate)
        while next_t < end:
            await trio.sleep_until(next_t)
            struct.pack_into("!H", template, 0, rng.getrandbits(16))
            if outstanding < 3:  # like a real app's few threads: an overloaded path slows it
                nursery.start_soon(one, trio.current_time(), bytes(template))
            next_t = max(next_t + rng.expovariate(rate), trio.current_time())


def _policy(cell: Cell) -> CachePolicy:
    return CachePolicy(
        serve_stale=cell.serve_stale, max_stale=3600, failure_ttl=1.0,
        whole_second_clock=cell.impl is Impl.OURS_UNBOUND_PRESET,
    )


async def run_batch(
    runs: list[CellRun], authority: ZoneAuthority | ControlAuthority, unbounds: dict[int, list[Server]],
    settings: Settings, rng: random.Random, progress: Progress,
) -> BatchResult:
    length = settings.run_length([r.cell for r in runs])
    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        end = t0 + length
        for run in runs:
            c = run.cell
            if c.layer is Layer.NONE:
                resolvers = [authority.server]
            elif c.impl is Impl.UNBOUND:
                resolvers = unbounds[run.index]
            else:
                resolvers = []
                for k in range(settings.resolvers_per_cell):
                    cfg = ResolverConfig(
                        listen=Server("127.0.0.1", 0), upstreams=[authority.server],
                        policy=_policy(c), name=f"resolver-{run.index}-{k}", tcp=False,
                    )
                    h = await nursery.start(serve_resolver, cfg)
                    resolvers.append(h.udp)
            # Paired design: the same cell with another resolver implementation gets the same
            # client start times and query streams, so the comparison sees only the resolver.
            paired = random.Random(
                f"{settings.seed}/{c.soa_ttl}/{c.soa_minimum}/{c.serve_stale}/{c.layer}/{c.rate}"
            )
            # Each resolver's clients start at a random moment within one record TTL, so the
            # resolvers cache (and later expire) at independent phases, as resolvers in the
            # world do; otherwise every cache would expire in step.
            starts = [paired.uniform(0, settings.record_ttl) for _ in range(len(resolvers))]
            for i in range(settings.clients):
                target = resolvers[i % len(resolvers)]
                start = starts[i % len(resolvers)] if c.layer is not Layer.NONE else 0.0
                if c.layer is Layer.STUB:
                    cfg = ResolverConfig(
                        listen=Server("127.0.0.1", 0), upstreams=[target],
                        policy=CachePolicy(fixed_negative_ttl=settings.stub_negative_ttl),
                        name=f"stub-{run.index}-{i}", tcp=False,
                    )
                    h = await nursery.start(serve_resolver, cfg)
                    target = h.udp
                nursery.start_soon(
                    client, i, target, run.qname, c.rate, t0, math.inf, run.samples,
                    random.Random(paired.random()), start,
                )
            nursery.start_soon(
                client, -1, authority.server, run.qname, settings.probe_rate, t0, math.inf,
                run.probe,
                random.Random(rng.random()),
            )
        nursery.start_soon(progress.tick_until, end)
        await trio.sleep_until(t0 + settings.outage_at)
        await trio.to_thread.run_sync(authority.set_healthy, False)
        t_break = trio.current_time() - t0
        # The repair is timed from when the deletion really took effect, not from the plan:
        # a slow swap must not eat into the outage.
        await trio.sleep_until(t0 + t_break + settings.outage_length)
        await trio.to_thread.run_sync(authority.set_healthy, True)
        t_fix = trio.current_time() - t0
        end = max(end, t0 + t_fix + length - settings.outage_at - settings.outage_length)
        await trio.sleep_until(end)
        nursery.cancel_scope.cancel()
    return BatchResult(runs, t_break, t_fix)


class Progress:
    """A one-line progress bar on stderr: cells done, and time within the running batch."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.done = 0
        # A redrawn bar only makes sense on a terminal; elsewhere one line per batch.
        self.live = enabled and sys.stderr.isatty()
        self.enabled = enabled
        self.batch = 0

    def draw(self, frac_in_batch: float, batch_size: int) -> None:
        if not self.live:
            return
        done = self.done + frac_in_batch * batch_size
        width = 40
        filled = int(width * done / self.total)
        sys.stderr.write(
            f"\r  grid [{'#' * filled}{'.' * (width - filled)}] {int(done):3d}/{self.total} cells"
        )
        sys.stderr.flush()

    async def tick_until(self, end: float) -> None:
        start = trio.current_time()
        while trio.current_time() < end:
            self.draw((trio.current_time() - start) / (end - start), self.batch)
            await trio.sleep(0.25)

    def batch_done(self) -> None:
        if self.enabled and not self.live:
            print(f"  grid: {self.done}/{self.total} cells done", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.live:
            self.draw(0.0, 0)
            sys.stderr.write("\n")


@dataclass
class ExperimentResult:
    summaries: list[CellSummary]
    clients: list[tuple[Cell, ClientResult, float]]  # (cell, result, T: records back)
    batches: list[BatchResult]


def run_grid(settings: Settings, *, show_progress: bool = True) -> ExperimentResult:
    cells = settings.cells()
    rng = random.Random(settings.seed)
    progress = Progress(len(cells), show_progress)
    summaries: list[CellSummary] = []
    clients: list[tuple[Cell, ClientResult, float]] = []
    batches: list[BatchResult] = []
    for start in range(0, len(cells), settings.parallel):
        chunk = cells[start : start + settings.parallel]
        runs = [
            CellRun(c, start + i, f"c{start + i:02d}.outage.test.") for i, c in enumerate(chunk)
        ]
        progress.batch = len(runs)
        opener = (
            ControlAuthority.open(runs, settings)
            if settings.authority == "authd-api"
            else ZoneAuthority.open(settings.authority, runs, settings)
        )
        with opener as authority, contextlib.ExitStack() as stack:
            unbounds: dict[int, list[Server]] = {}
            for run in runs:
                if run.cell.impl is Impl.UNBOUND and run.cell.layer is not Layer.NONE:
                    unbounds[run.index] = [
                        stack.enter_context(
                            run_unbound([authority.server], extra=unbound_options(run.cell))
                        ).server
                        for _ in range(settings.resolvers_per_cell)
                    ]
            batch = trio.run(run_batch, runs, authority, unbounds, settings, rng, progress)
        batches.append(batch)
        progress.done += len(runs)
        progress.batch_done()
        for run in runs:
            a_empty, a_back = authority_window(run.probe)
            auth = (a_back - a_empty) if a_empty is not None and a_back is not None else math.nan
            # "Records back at T": T is when the authority itself first answered with addresses
            # again (its probe), which is what a client could at best have seen.
            t_back = a_back if a_back is not None else batch.t_fix
            run.t_back = t_back
            run.t_gone = a_empty if a_empty is not None else batch.t_break
            results = per_client(run.samples)
            summaries.append(
                summarise(run.cell, results, t_back, auth, error_fraction(run.samples))
            )
            clients += [(run.cell, r, t_back) for r in results.values()]
    progress.finish()
    return ExperimentResult(summaries, clients, batches)


def unbound_options(cell: Cell) -> list[str]:
    """Unbound settings that match our resolver's defaults (see BENCHMARKS.md, resolver)."""
    opts = ["prefetch: no", "cache-max-negative-ttl: 3600", "cache-min-ttl: 0"]
    if cell.serve_stale:
        # RFC 8767 behaviour: try upstream first, answer stale only when it fails (1.8 s).
        opts += [
            "serve-expired: yes", "serve-expired-ttl: 3600", "serve-expired-reply-ttl: 30",
            "serve-expired-client-timeout: 1800",
        ]
    return opts


# ---- output ---------------------------------------------------------------------------

def _fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


TABLE_COLUMNS = """table columns (one row per grid cell; times in seconds):
  impl       resolver implementation: ours, ours-ub (ours with --preset unbound), unbound
  layer      what clients query: none (the authority), resolver, stub (host cache + resolver)
  SOA TTL    the zone SOA's TTL;  MIN: its MINIMUM field
  negTTL     the negative-caching TTL that results, min(SOA TTL, MINIMUM) (RFC 2308 section 5)
  stale      the resolver's serve-stale setting (RFC 8767)
  qps        each client's query rate (Poisson arrivals)
  auth win   how long the authority itself answered empty (the deletion to the repair)
  saw        clients that saw an empty answer / clients in the cell
  med win    median over clients of first empty answer -> first good answer
  med delay  median over clients of repair -> first good answer (how long caches stretched it)
  max delay  the slowest client's delay after the repair
  err%       samples that got SERVFAIL or no answer in time"""


def table(summaries: Sequence[CellSummary]) -> str:
    head = (
        f"{'impl':8} {'layer':14} {'SOA TTL':>7} {'MIN':>4} {'negTTL':>6} {'stale':>5} "
        f"{'qps':>4} {'auth win':>8} {'saw':>5} {'med win':>7} {'med delay':>9} {'max delay':>9}"
        f" {'err%':>5}"
    )
    lines = [head, "-" * len(head)]
    for s in summaries:
        c = s.cell
        lines.append(
            f"{c.impl.value:8} {c.layer.value:14} {c.soa_ttl:7d} {c.soa_minimum:4d} "
            f"{c.negative_ttl:6d} {'on' if c.serve_stale else 'off':>5} {c.rate:4g} "
            f"{_fmt(s.auth_window):>8} {s.saw_outage:2d}/{s.clients:<2d} "
            f"{_fmt(s.median_window):>7} {_fmt(s.median_delay):>9} {_fmt(s.max_delay):>9}"
            f" {100 * s.error_fraction:5.1f}"
        )
    return "\n".join(lines)


def write_csv(path: Path, result: ExperimentResult) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([
            "impl", "layer", "soa_ttl", "soa_minimum", "negative_ttl", "serve_stale", "rate_qps",
            "client", "first_empty_s", "first_back_s", "client_window_s", "recovery_delay_s",
            "records_back_at_s",
        ])
        for cell, r, t_fix in result.clients:
            w.writerow([
                cell.impl.value, cell.layer.value, cell.soa_ttl, cell.soa_minimum,
                cell.negative_ttl, int(cell.serve_stale), cell.rate, r.client,
                _fmt(r.first_empty), _fmt(r.first_back), _fmt(r.window),
                _fmt(r.first_back - t_fix if r.first_back is not None else None), f"{t_fix:.3f}",
            ])


def write_samples(path: Path, result: ExperimentResult) -> None:
    """Every sample of every client (and of the authority probe, client -1), for replotting."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cell", "client", "t_s", "outcome"])
        for batch in result.batches:
            for run in batch.runs:
                for s in sorted(run.probe + run.samples, key=lambda x: (x.client, x.t)):
                    w.writerow([run.cell.label, s.client, f"{s.t:.4f}", s.outcome.value])


def _quantiles(values: list[float]) -> tuple[float, float, float, float]:
    """(lower quartile, median, upper quartile, max) of a non-empty list."""
    v = sorted(values)

    def q(f: float) -> float:
        pos = f * (len(v) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(v) - 1)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)

    return q(0.25), q(0.5), q(0.75), v[-1]


def plot(out: Path, result: ExperimentResult, settings: Settings) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    rate = max(settings.rates)
    # Per-client recovery delays, pooled over the cells that share a negative TTL: (10, 3) and
    # (3, 10) are both 3 s, so each x has one point, not two (issue 14: the lines zigzagged).
    delays: dict[tuple[Layer, Impl, int], list[float]] = {}
    for cell, r, t_fix in result.clients:
        if cell.serve_stale or cell.rate != rate or r.first_back is None:
            continue
        delays.setdefault((cell.layer, cell.impl, cell.negative_ttl), []).append(
            max(0.0, r.first_back - t_fix))
    negs = sorted({k[2] for k in delays})
    colours = {Layer.NONE: "tab:blue", Layer.RESOLVER: "tab:green", Layer.STUB: "tab:purple"}

    # 1. Recovery delay vs negative TTL, per cache layer: median, interquartile band, worst.
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for layer, marker in zip(Layer, "osD", strict=False):
        for impl, style in ((Impl.OURS, "-"), (Impl.UNBOUND, "--")):
            xs = [n for n in negs if (layer, impl, n) in delays]
            if not xs:
                continue
            stats = [_quantiles(delays[(layer, impl, n)]) for n in xs]
            name = layer.value if impl is Impl.OURS else f"{layer.value} ({impl.value})"
            ax.plot(xs, [q[1] for q in stats], style, marker=marker, color=colours[layer],
                    label=f"{name}: median client")
            ax.fill_between(xs, [q[0] for q in stats], [q[2] for q in stats],
                            color=colours[layer], alpha=0.15, label=f"{name}: middle half")
            ax.plot(xs, [q[3] for q in stats], "none", marker=marker, color=colours[layer],
                    alpha=0.5, label=f"{name}: slowest client")
    top = max(negs, default=1) + 1
    ax.plot([0, top], [0, top], ":", color="grey", label="delay = one negative TTL")
    ax.set_xlim(0, top)
    ax.set_ylim(bottom=0)
    ax.set_xticks(negs)
    ax.set_xlabel("negative TTL = min(SOA TTL, SOA MINIMUM) [s]")
    ax.set_ylabel("time from repair to a client's first address [s]")
    n = min((len(v) for v in delays.values()), default=0)
    ax.set_title("Caches keep the empty answer up to one negative TTL after the fix\n"
                 f"(serve-stale off, clients at {rate:g} queries/s, {n}+ clients per point)",
                 fontsize=11)
    ax.legend(fontsize=7, ncols=3, loc="upper left")
    p = out / "recovery_delay_vs_negative_ttl.png"
    fig.savefig(p, dpi=130)
    plt.close(fig)
    paths.append(p)

    # 2. CDF of per-client recovery, one panel per cache layer, one curve per negative TTL
    layers = [layer for layer in Layer if any(k[0] is layer and k[1] is Impl.OURS for k in delays)]
    fig, axes = plt.subplots(1, max(1, len(layers)), figsize=(4 * max(1, len(layers)), 4.2),
                             sharey=True, squeeze=False, layout="constrained")
    cmap = plt.get_cmap("viridis")
    for ax, layer in zip(axes[0], layers, strict=False):
        for i, neg in enumerate(negs):
            ds = sorted(delays.get((layer, Impl.OURS, neg), []))
            if not ds:
                continue
            colour = cmap(i / max(1, len(negs) - 1) * 0.85)
            ax.step([0.0, *ds], [0.0, *[(j + 1) / len(ds) for j in range(len(ds))]],
                    where="post", color=colour, label=f"negative TTL {neg} s")
            ax.axvline(neg, color=colour, linestyle=":", linewidth=1)
        ax.set_title(f"clients behind: {layer.value}", fontsize=10)
        ax.set_xlabel("time from repair to first address [s]")
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right", title="dotted: one negative TTL",
                  title_fontsize=7)
    axes[0][0].set_ylabel("fraction of clients recovered")
    fig.suptitle(f"When each client saw addresses again after the repair (serve-stale off, "
                 f"{rate:g} queries/s)", fontsize=11)
    p = out / "recovery_cdf.png"
    fig.savefig(p, dpi=130)
    plt.close(fig)
    paths.append(p)

    # 3. Timeline of one run: authority answers vs what each client saw.
    runs = [r for b in result.batches for r in b.runs]
    want = [r for r in runs if r.cell.layer is Layer.STUB and r.cell.impl is Impl.OURS
            and not r.cell.serve_stale]
    want = want or [r for r in runs if r.cell.layer is Layer.RESOLVER] or runs
    pick = max(want, key=lambda r: (r.cell.negative_ttl, r.cell.rate))
    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    outcome_colours = {Outcome.ADDRESSES: "tab:green", Outcome.EMPTY: "tab:red", Outcome.ERROR: "black"}
    for s in pick.probe:
        ax.plot(s.t, -1, "|", color=outcome_colours[s.outcome], markersize=9)
    for s in pick.samples:
        ax.plot(s.t, s.client, "|", color=outcome_colours[s.outcome], markersize=7, markeredgewidth=0.8)
    ax.axvline(pick.t_gone, color="grey", linestyle="--")
    ax.axvline(pick.t_back, color="grey", linestyle="--")
    ax.axvspan(pick.t_back, pick.t_back + pick.cell.negative_ttl, color="orange", alpha=0.15)
    ax.set_yticks([-1, *range(settings.clients)],
                  ["authority", *[f"client {i}" for i in range(settings.clients)]])
    ax.set_title(f"One run: {pick.cell.label}\nauthority empty from {pick.t_gone:.1f} s, "
                 f"records back at {pick.t_back:.1f} s", fontsize=10)
    from matplotlib.lines import Line2D  # a legend entry for every mark and band
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=c, marker="|", linestyle="none", markersize=9, label=label)
               for c, label in (("tab:green", "addresses"), ("tab:red", "empty answer (NOERROR, 0)"),
                                ("black", "error or no answer"))]
    handles.append(Line2D([], [], color="grey", linestyle="--", label="records gone / back"))
    handles.append(Patch(color="orange", alpha=0.15,
                         label=f"one negative TTL ({pick.cell.negative_ttl} s) after the fix"))
    ax.set_xlabel("time since the run started [s]")
    ax.set_ylabel("answers seen by")
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    p = out / "timeline.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths


def validation_table(result: ExperimentResult, tolerance: float) -> tuple[str, bool]:
    """Ours (default, and with `--preset unbound`) vs Unbound: client-observed windows.

    Run it with an outage shorter than every negative TTL (see BENCHMARKS.md): then each
    resolver caches the NODATA once and every client behind it sees exactly one negative-cache
    lifetime of emptiness, whatever the phase, so the window measures the implementation and
    not the luck of cache-cycle phases. Pooled per negative TTL and serve-stale setting;
    agreement means the median windows are within `tolerance`. Each cell also says how many
    clients saw the outage at all (a resolver serving expired data may hide it).
    """
    pools: dict[tuple[Impl, int, bool], list[float]] = {}
    seen: dict[tuple[Impl, int, bool], list[int]] = {}
    for cell, r, _t_fix in result.clients:
        if cell.layer is Layer.NONE:
            continue
        key = (cell.impl, cell.negative_ttl, cell.serve_stale)
        counts = seen.setdefault(key, [0, 0])
        counts[1] += 1
        if r.first_empty is not None:
            counts[0] += 1
        if r.window is not None:
            pools.setdefault(key, []).append(r.window)

    def stat(key: tuple[Impl, int, bool]) -> str:
        ds = pools.get(key)
        saw, total = seen.get(key, [0, 0])
        if not ds:
            return f"- (saw outage {saw}/{total})"
        extra = "" if saw == total else f", saw outage {saw}/{total}"
        return f"{statistics.median(ds):.2f} [{min(ds):.2f}, {max(ds):.2f}]{extra}"

    rows = [
        "| negative TTL (s) | serve-stale | ours: median [min, max] window (s) | ours `--preset "
        "unbound` | Unbound | ours vs Unbound | preset vs Unbound | within ±"
        + f"{tolerance:.2f} s (preset) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ok = True
    compared = 0
    for neg, stale in sorted({(k[1], k[2]) for k in seen}):
        o = pools.get((Impl.OURS, neg, stale))
        a = pools.get((Impl.OURS_UNBOUND_PRESET, neg, stale))
        b = pools.get((Impl.UNBOUND, neg, stale))
        cells = (
            f"| {neg} | {'on' if stale else 'off'} | {stat((Impl.OURS, neg, stale))} | "
            f"{stat((Impl.OURS_UNBOUND_PRESET, neg, stale))} | {stat((Impl.UNBOUND, neg, stale))} "
        )
        if not a or not b or not o:
            rows.append(cells + "| - | - | not comparable |")
            continue
        d_ours = statistics.median(o) - statistics.median(b)
        d_pre = statistics.median(a) - statistics.median(b)
        good = abs(d_pre) <= tolerance
        ok &= good
        compared += 1
        rows.append(cells + f"| {d_ours:+.2f} | {d_pre:+.2f} | {'yes' if good else 'NO'} |")
    return "\n".join(rows), ok and compared > 0


# ---- command line ---------------------------------------------------------------------

def _pairs(text: str) -> tuple[tuple[int, int], ...]:
    try:
        return tuple(
            (int(a), int(b)) for a, b in (p.split(":") for p in text.split(",") if p)
        )
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"want SOA_TTL:MINIMUM[,...], got {text!r}") from exc


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="experiment", required=True)
    o = sub.add_parser(
        "outage-recovery",
        help="delete the active tree, repair it, and measure what clients behind caches see",
        description="Runs a grid (negative TTL x serve-stale x cache layers x client rate) with "
        "a real authority, real resolvers and real UDP clients, time scaled so SOA values are "
        "seconds. Writes a table to stdout, outage-recovery.csv and PNG plots into --out.",
        epilog=TABLE_COLUMNS, formatter_class=type(
            "F", (p.formatter_class, argparse.RawDescriptionHelpFormatter), {}),
    )
    o.add_argument("--out", type=Path, default=Path("results"), help="directory for CSV and PNGs")
    o.add_argument("--negative", type=_pairs, default=Settings.negatives, metavar="TTL:MIN,...",
                   help="SOA TTL:SOA MINIMUM pairs (default 10:1,10:3,10:6,3:10)")
    o.add_argument("--serve-stale", choices=("off", "on", "both"), default="both",
                   help="resolver serve-stale setting(s) to run")
    o.add_argument("--layers", default="none,resolver,stub",
                   help="cache layers: none (clients ask the authority), resolver, stub "
                   "(a host stub cache in front of the resolver)")
    o.add_argument("--rates", default="2,8", help="client query rates in queries/s, comma list")
    o.add_argument("--impl", choices=("ours", "unbound", "both"), default="ours",
                   help="resolver implementation: ours, Unbound, or both (validation: ours, "
                   "ours with --preset unbound, and Unbound on the same grid)")
    o.add_argument("--clients", type=int, default=6, help="clients per cell")
    o.add_argument("--resolvers", type=int, default=3,
                   help="resolvers per cell; clients are spread over them")
    o.add_argument("--outage-at", type=float, default=6.0,
                   help="seconds before the deletion (at least --record-ttl, to warm caches)")
    o.add_argument("--outage-length", type=float, default=8.0,
                   help="seconds between the deletion and the repair")
    o.add_argument("--record-ttl", type=int, default=5,
                   help="TTL of the endpoint's A records; resolvers start at random phases "
                   "within it")
    o.add_argument("--stub-negative-ttl", type=int, default=2,
                   help="the host stub's fixed negative TTL (the JVM's is 10 s, scaled here)")
    o.add_argument("--parallel", type=int, default=14,
                   help="cells run at once on one timeline (fewer: less load, longer run)")
    o.add_argument("--tolerance", type=float, default=None,
                   help="validation tolerance in seconds (default: two client periods + 0.25 s)")
    o.add_argument("--seed", type=int, default=1)
    o.add_argument(
        "--authority", choices=("authd-api", "authd", "knot"), default="authd-api",
        help="authd-api (default): authd, outage and repair as Route 53 change batches that "
        "delete and recreate the active plan tree; authd: swap zone files (process handover); "
        "knot: Knot with zone reloads (a cross-check)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def settings_from_args(args: argparse.Namespace) -> Settings:
    layer_names = {"none": Layer.NONE, "resolver": Layer.RESOLVER, "stub": Layer.STUB}
    try:
        layers = tuple(layer_names[x.strip()] for x in args.layers.split(","))
    except KeyError as exc:
        raise SystemExit(f"resolver: unknown layer {exc}; use none, resolver, stub") from exc
    return Settings(
        negatives=args.negative,
        serve_stale={"off": (False,), "on": (True,), "both": (False, True)}[args.serve_stale],
        layers=layers,
        rates=tuple(float(x) for x in args.rates.split(",")),
        impls={"ours": (Impl.OURS,), "unbound": (Impl.UNBOUND,),
               "both": (Impl.OURS, Impl.OURS_UNBOUND_PRESET, Impl.UNBOUND)}[args.impl],
        clients=args.clients, resolvers_per_cell=args.resolvers, outage_at=args.outage_at,
        outage_length=args.outage_length, record_ttl=args.record_ttl,
        stub_negative_ttl=args.stub_negative_ttl, parallel=args.parallel, seed=args.seed,
        authority=args.authority,
    )


def run_from_args(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    cells = settings.cells()
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"outage-recovery: {len(cells)} cells, {settings.clients} clients each, tree deleted at "
        f"{settings.outage_at:g}s and repaired {settings.outage_length:g}s later",
        file=sys.stderr,
    )
    started = time.monotonic()
    try:
        result = run_grid(settings, show_progress=not args.no_progress)
    except FileNotFoundError as exc:
        print(f"resolver: {exc}", file=sys.stderr)
        return 1
    print(table(result.summaries))
    write_csv(args.out / "outage-recovery.csv", result)
    write_samples(args.out / "samples.csv", result)
    written = [args.out / "outage-recovery.csv", args.out / "samples.csv"]
    if not args.no_plots:
        written += plot(args.out, result, settings)
    if Impl.UNBOUND in settings.impls and Impl.OURS in settings.impls:
        tol = args.tolerance if args.tolerance is not None else 2 / min(settings.rates) + 0.25
        text, ok = validation_table(result, tol)
        (args.out / "validation.md").write_text(text + "\n")
        written.append(args.out / "validation.md")
        print()
        print(text)
        print(f"\nours vs Unbound within ±{tol:.2f} s: {'yes' if ok else 'NO'}")
    print(f"\nwrote {', '.join(map(str, written))} in {time.monotonic() - started:.1f}s",
          file=sys.stderr)
    return 0
