"""`enactor outage --cells N --defect-cell K`: the 2025 schedule in one cell, measured at the clients.

Shell (subprocesses, sockets, files). One `authd serve` hosts every zone (Route 53 is one
service for all cells too: what is cellularised is DNS *management*). Per cell: its own plan
directory, its own `enactor planner --stepped` and its own three `enactor run --stepped`
processes, each given only its cell's plan directory (`enactor.cells.layout`). The cell map
(`enactor.cells.cellmap`) writes every customer's CNAME and the cell router through the change API.
A real `resolver serve`, iterating from a root zone that authd also serves, answers the stub
clients: one per customer resolving `ACCOUNT.ddb.us-east-1.api.aws` A, and as many resolving
the legacy regional name `dynamodb.us-east-1.amazonaws.com` A through the router.

Cell K runs `schedule_2025` (the race, the cleaner, the crash) over its enactors. The other
cells run the *same 2025 code* (the defects are on there too) under an ordinary schedule: the
planner keeps planning and their enactors run freely, kept in step with cell K's clock. So
what protects them is isolation, not a better design: the defect is everywhere, the trigger
happened in one cell, which is the situation the talk describes.

Then the same schedule with no cells: the regional layout of `enactor outage` (one system,
`zones/`), with every customer's name a CNAME to `dynamodb.us-east-1.api.aws` (as the talk
says it is today) and the regional name's clients on the legacy alias itself.

Caching: the resolver runs with `--max-ttl 0 --max-negative-ttl 0`. The schedule's time is
virtual while the resolver's is real, so a real cache would mix the two clocks; how caches
stretch an outage is the resolver experiments' subject (`resolver experiment`). Each sample
is therefore what authd serves at that point of the schedule, seen through a real resolver.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from authd.localnet import free_port
from enactor.cells import cellmap
from enactor.cells.blast import Blast, BlastSample, table, write_figure
from enactor.cells.layout import ROOT_HINTS, CellLayout, apex_records, root_zone, zone_files
from enactor.checker.schedule import Schedule, run_schedule, schedule_2025
from enactor.checker.testing import DUAL, LEGACY, T0, capacity_for
from enactor.client import Route53Http
from enactor.drills.outage import _STATUS, REPO, Cluster, ProcessDriver
from enactor.drills.timeline import Recorder
from enactor.plan import Plan, PlanStore
from enactor.planner import Capacity

REGIONAL = "regional"


# --- one DNS management system: a planner and three enactors over one plan directory ------


@dataclass
class System(Cluster):
    """A Cluster without its own authd: the planner and enactors of one cell (or of the
    single regional system), pointed at a shared authd's change API."""

    capacity: Capacity = ()

    def start_system(self, actors: list[str], lock_ttl: float, dns_port: int, api_port: int) -> None:
        self.dns_port, self.api_port = dns_port, api_port
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        PlanStore(self.plans_dir).put(Plan(1, T0 - 3600 + 1, self.capacity))
        py = sys.executable
        from enactor.drills.outage import EnactorProc

        self.planner = subprocess.Popen(
            [py, "-m", "enactor", "planner", "--plans", str(self.plans_dir), "--stepped"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            bufsize=1, cwd=REPO)
        for name in actors:
            argv = [py, "-m", "enactor", "run", "--name", name, "--plans", str(self.plans_dir),
                    "--api", self.api_url, "--defects", self.defects, "--stepped",
                    "--lock-ttl", str(lock_ttl), "--status-dir", str(self.work / "status")]
            p = EnactorProc(name, argv, self.work / "logs" / f"{name}.log")
            p.start()
            self.enactors[name] = p


def benign_schedule() -> Schedule:
    """What the other cells do: nothing special. Everyone runs freely (kept in step with the
    defect cell's clock by `CellsDriver`), and the planner writes a plan when cell K's does."""
    return Schedule(["enactor-a", "enactor-b", "enactor-c"], [], "an ordinary day")


# --- the stub clients ------------------------------------------------------------------------


def _resolve(port: int, name: str, rtype: str) -> tuple[str, int]:
    """(rcode, number of `rtype` records in the answer) from the resolver; FAILED on no answer."""
    q = dns.message.make_query(name, rtype)
    want = dns.rdatatype.from_text(rtype)
    for _ in range(3):
        try:
            r = dns.query.udp(q, "127.0.0.1", port=port, timeout=3.0)
        except (OSError, dns.exception.Timeout):
            continue
        n = sum(len(rr) for rr in r.answer if rr.rdtype == want)
        return dns.rcode.to_text(r.rcode()), n
    return "FAILED", 0


class Stubs:
    """The client population, each a stub resolver asking the real `resolver serve`."""

    def __init__(self, port: int, threads: int = 12):
        self.port = port
        self.pool = concurrent.futures.ThreadPoolExecutor(threads)
        self.serial = concurrent.futures.ThreadPoolExecutor(1)

    def ask(self, questions: Sequence[tuple[str, str]]) -> list[tuple[str, int]]:
        return list(self.pool.map(lambda q: _resolve(self.port, *q), questions))

    def ask_one_by_one(self, questions: Sequence[tuple[str, str]]) -> concurrent.futures.Future[list[tuple[str, int]]]:
        """The same question from many clients, asked one after another: a resolver coalesces
        identical questions in flight into one upstream query (one weighted pick for all of
        them), so only sequential questions each get their own pick at authd."""
        return self.serial.submit(lambda: [_resolve(self.port, *q) for q in questions])

    def close(self) -> None:
        self.pool.shutdown()
        self.serial.shutdown()


# --- the driver: the defect cell's schedule, the other cells kept in step, samples at the clients


class CellsDriver:
    """`enactor.checker.schedule.Driver`: cell K's ProcessDriver for every step; `sample` brings every
    other cell to the same virtual time, then asks every client."""

    def __init__(self, defect: ProcessDriver, others: list[ProcessDriver], stubs: Stubs,
                 questions: list[tuple[str, str, str]], blast: Blast, router_clients: int,
                 router_name: str, cell_names: dict[str, str], router_targets: dict[str, str]):
        self.d = defect
        self.others = others
        self.stubs = stubs
        self.questions = questions  # (account, name, rtype)
        self.blast = blast
        self.router_clients = router_clients
        self.router_name = router_name
        self.cell_names = cell_names  # cell -> its own name (what its customers CNAME to)
        self.router_targets = router_targets  # cell -> the name the regional name leads to

    def __getattr__(self, item: str) -> Any:  # pending_label, go, kill, restart, advance, note
        return getattr(self.d, item)

    def emit_plan(self) -> int:
        for o in self.others:  # the planner keeps planning in every cell
            o.emit_plan()
        return self.d.emit_plan()

    def run_free(self, seconds: float) -> None:
        self.d.run_free(seconds)
        self._keep_up()

    def _keep_up(self) -> None:
        for o in self.others:
            if self.d.t > o.t:
                o.run_free(self.d.t - o.t)

    def sample(self, note: str = "") -> BlastSample:
        self._keep_up()
        router_f = self.stubs.ask_one_by_one([(self.router_name, "A")] * self.router_clients)
        k = len(self.questions)
        nc = len(self.cell_names)
        got = self.stubs.ask([(name, rtype) for _, name, rtype in self.questions]
                             + [(n, "A") for n in self.cell_names.values()]
                             + [(n, "A") for n in self.router_targets.values()])
        own, cells, targets = got[:k], got[k:k + nc], got[k + nc:]
        router = router_f.result()
        got += router
        s = BlastSample(
            self.d.t,
            {a: (rc == "NOERROR" and n == 0) for (a, _, _), (rc, n) in zip(self.questions, own, strict=True)},
            [rc == "NOERROR" and n == 0 for rc, n in router],
            {c: (rc == "NOERROR" and n == 0) for c, (rc, n) in zip(self.cell_names, cells, strict=True)},
            sum(1 for rc, _ in got if rc != "NOERROR"), note,
            {c: (rc == "NOERROR" and n == 0) for c, (rc, n) in zip(self.router_targets, targets, strict=True)})
        self.blast.add(s)
        return s


# --- the processes -----------------------------------------------------------------------


@contextmanager
def shared_dns(work: Path, zones: dict[str, dict[str, Any]] | None,
               cache: bool = False) -> Iterator[tuple[int, int, int]]:
    """authd (every zone, one store) and an iterative `resolver serve` with caching off
    (`cache`: its defaults). `zones` None: the files already in `work/zones`.
    Yields (authd DNS port, change API port, resolver port)."""
    zdir = work / "zones"
    zdir.mkdir(parents=True, exist_ok=True)
    for fname, doc in (zones or {}).items():
        (zdir / fname).write_text(json.dumps(doc, indent=1) + "\n")
    hints = work / "root.hints"
    hints.write_text(ROOT_HINTS)
    (work / "logs").mkdir(exist_ok=True)
    dns_port, api_port, res_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(work / "logs" / "authd.log", "wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "authd", "serve", "--zones", str(zdir), "--listen",
                 f"127.0.0.1:{dns_port}", "--control", f"127.0.0.1:{api_port}",
                 "--store", str(work / "authd.sqlite3")], stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
        with open(work / "logs" / "resolver.log", "wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "resolver", "serve", "--listen", f"127.0.0.1:{res_port}",
                 "--root-hints", str(hints), "--authority-port", str(dns_port),
                 *([] if cache else ["--max-ttl", "0", "--max-negative-ttl", "0", "--failure-ttl", "0.01"])],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
        _wait_ready(procs, work, api_port, res_port)
        yield dns_port, api_port, res_port
    finally:
        for p in procs:  # stopped by their own PIDs
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)


def _wait_ready(procs: list[subprocess.Popen[bytes]], work: Path, api_port: int, res_port: int,
                timeout: float = 120.0) -> None:
    api = Route53Http(f"http://127.0.0.1:{api_port}")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for p, what in zip(procs, ("authd", "resolver"), strict=True):
            if p.poll() is not None:
                text = (work / "logs" / f"{what}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{what} exited with status {p.returncode}:\n{text}")
        try:
            api.find_zone_by_name("amazonaws.com.")
            if _resolve(res_port, "amazonaws.com.", "SOA")[0] == "NOERROR":
                return
            last = "the resolver does not answer yet"
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"authd and the resolver did not come up in {timeout:.0f}s: {last}")


def dig_answer(port: int, name: str, rtype: str = "A") -> dict[str, Any]:
    """Real `dig` through the resolver (recursion desired, as a stub asks): its status and
    the `rtype` records of its answer section (a CNAME alone is an empty answer)."""
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), name, rtype, "+time=3", "+tries=2"],
                         capture_output=True, text=True, timeout=30).stdout
    st = _STATUS.search(out)
    section = out.split(";; ANSWER SECTION:", 1)[1].split("\n\n", 1)[0] if ";; ANSWER SECTION:" in out else ""
    records = [ln.split() for ln in section.strip().splitlines() if ln.strip()]
    return {"rcode": st.group(1) if st else "NO-RESPONSE",
            "addresses": [f[4] for f in records if len(f) >= 5 and f[3] == rtype],
            "chain": [f[4] for f in records if len(f) >= 5 and f[3] == "CNAME"]}


def dig_checks(res_port: int, picks: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """One customer of each cell, dug through the resolver at the end of the run."""
    return [{"account": a, "cell": c, "name": n, **dig_answer(res_port, n)} for a, c, n in picks]


# --- the two runs ---------------------------------------------------------------------------


@dataclass
class CellsRun:
    results: list[dict[str, Any]]  # [cells, no-cells]
    table: str
    png: str | None


def _population(n: int) -> tuple[str, ...]:
    return cellmap.accounts(n)


def run_cells_layout(layout: CellLayout, defect_cell: int, defects: str, schedule: Schedule,
                     population: Sequence[str], router_clients: int, work: Path,
                     verbose: bool = False) -> dict[str, Any]:
    cmap = cellmap.CellMap(layout)
    bad = layout.find_cell(defect_cell)
    lock_ttl = float(schedule.extra.get("lock_ttl", 10))
    systems: dict[str, System] = {}
    with shared_dns(work, zone_files(layout, T0 - 3600 + 1)) as (dns_port, api_port, res_port):
        api = Route53Http(f"http://127.0.0.1:{api_port}")
        cellmap.write_cellmap(api, cmap, population)
        try:
            for c in layout.cells:
                s = System(defects, work / c.name, capacity=c.capacity())
                systems[c.name] = s
                s.start_system(list(schedule.actors if c is bad else benign_schedule().actors),
                               lock_ttl, dns_port, api_port)
            recs = {c: Recorder(T0) for c in systems}
            drivers = {c: ProcessDriver(s, recs[c], verbose=verbose and c == bad.name)
                       for c, s in systems.items()}
            stubs = Stubs(res_port)
            blast = Blast("cells")
            questions = [(a, layout.customer_name(a), "A") for a in population]
            drv = CellsDriver(drivers[bad.name], [d for c, d in drivers.items() if c != bad.name], stubs,
                              questions, blast, router_clients, layout.router_name,
                              {c.name: c.target for c in layout.cells},
                              {c.name: c.router_target for c in layout.cells})
            try:
                run_schedule(schedule, drv)  # type: ignore[arg-type]
                by_cell = {a: cmap.cell_of(a).name for a in population}
                picks = []
                for c in layout.cells:
                    mine = [a for a in population if by_cell[a] == c.name]
                    if mine:
                        picks.append((mine[0], c.name, layout.customer_name(mine[0])))
                checks = dig_checks(res_port, picks)
            finally:
                stubs.close()
            summ = blast.summary(by_cell, T0)
        finally:
            for s in systems.values():
                s.stop()
    summ.update({"defect_cell": bad.name, "defects": defects, "cell_layout": layout.to_json(),
                 "dig_through_resolver": checks,
                 "enactors": {c: {n: {"status": p.status, "crashes": p.crashes} for n, p in s.enactors.items()}
                              for c, s in systems.items()}})
    return summ


def run_regional_layout(defects: str, schedule: Schedule, population: Sequence[str], router_clients: int,
                        work: Path, verbose: bool = False) -> dict[str, Any]:
    """No cells: one system for everyone (the layout of `enactor outage`, zones/)."""
    layout = CellLayout.make(1)  # only for the customer zone's and the router zone's names
    zones: dict[str, dict[str, Any]] = {}
    for f in ("api.aws.json", "amazonaws.com.json"):
        zones[f] = json.loads((REPO / "zones" / f).read_text())
    zones[f"{layout.customer_zone}json"] = {"ResourceRecordSets": apex_records(layout.customer_zone)}
    root = root_zone(layout)
    root["ResourceRecordSets"] += [
        {"Name": "api.aws.", "Type": "NS", "TTL": 172800, "ResourceRecords": [{"Value": "ns1.api.aws."}]},
        {"Name": "ns1.api.aws.", "Type": "A", "TTL": 172800, "ResourceRecords": [{"Value": "127.0.0.1"}]}]
    zones["root.json"] = root
    lock_ttl = float(schedule.extra.get("lock_ttl", 10))
    with shared_dns(work, zones) as (dns_port, api_port, res_port):
        api = Route53Http(f"http://127.0.0.1:{api_port}")
        cellmap.write_changes(api, layout.customer_zone, cellmap.legacy_changes(layout, population, DUAL),
                              "customer names: a CNAME to the regional name")
        system = System(defects, work / REGIONAL, capacity=capacity_for("both"))
        try:
            system.start_system(list(schedule.actors), lock_ttl, dns_port, api_port)
            pdrv = ProcessDriver(system, Recorder(T0), verbose=verbose)
            stubs = Stubs(res_port)
            blast = Blast("no-cells")
            questions = [(a, layout.customer_name(a), "A") for a in population]
            drv = CellsDriver(pdrv, [], stubs, questions, blast, router_clients, LEGACY, {REGIONAL: DUAL},
                              {REGIONAL: LEGACY})
            try:
                run_schedule(schedule, drv)  # type: ignore[arg-type]
                checks = dig_checks(res_port, [(population[0], REGIONAL, layout.customer_name(population[0]))])
            finally:
                stubs.close()
        finally:
            system.stop()
    summ = blast.summary({a: REGIONAL for a in population}, T0)
    summ.update({"defects": defects, "dig_through_resolver": checks,
                 "enactors": {REGIONAL: {n: {"status": p.status, "crashes": p.crashes}
                                         for n, p in system.enactors.items()}}})
    return summ


def run_cells_outage(cells: int, defect_cell: int, defects: str = "2025", *, plans: int = 12,
                     customers: int = 200, router_clients: int | None = None, png: str | None = None,
                     work: Path | None = None, verbose: bool = False) -> CellsRun:
    """The blast-radius experiment: `cells` cells with the 2025 schedule in `defect_cell`,
    then the same schedule with no cells. Needs dig (the end-of-run checks)."""
    if shutil.which("dig") is None:
        raise RuntimeError("dig is not installed (Debian package bind9-dnsutils)")
    layout = CellLayout.make(cells)
    layout.find_cell(defect_cell)
    population = _population(customers)
    rc = customers if router_clients is None else router_clients
    own = work is None
    work = work or Path(tempfile.mkdtemp(prefix="enactor-cells-"))
    try:
        with_cells = run_cells_layout(layout, defect_cell, defects, schedule_2025(plans), population, rc,
                                      work / "cells", verbose)
        no_cells = run_regional_layout(defects, schedule_2025(plans), population, rc, work / "no-cells", verbose)
    finally:
        if own and not os.environ.get("ENACTOR_KEEP_WORK"):
            shutil.rmtree(work, ignore_errors=True)
    results = [with_cells, no_cells]
    title = (f"enactor outage --cells {cells} --defects {defects} --defect-cell {defect_cell}: "
             f"{customers} customers")
    if png:
        import matplotlib.pyplot as plt

        plt.close(write_figure(results, png, title))
    return CellsRun(results, table(results), png)


def report(run: CellsRun) -> str:
    cells, flat = run.results
    lines = [run.table, ""]
    for c, v in cells["cells"].items():
        w = v["empty_answer_window"]
        win = (f"empty {w['from']:.0f}..{w['to']:.0f} s{' (still empty at the end)' if w['ongoing_at_end'] else ''}"
               if w else "never empty")
        lines.append(f"{c}: {v['customers']} customers, {v['affected']} affected; its name {win}")
    lines.append(f"no cells: {flat['customers_affected']} of {flat['customers']} customers affected")
    for r in run.results:
        for d in r["dig_through_resolver"]:
            lines.append(f"dig through the resolver ({r['layout']}): {d['name'].rstrip('.')} A -> "
                         f"{d['rcode']}, {len(d['addresses'])} addresses ({d['cell']})")
    if run.png:
        lines.append(f"figure: {run.png}")
    return "\n".join(lines)


def cli(args: Any, results_dir: Path) -> int:
    """`enactor outage --cells N ...` (enactor.drills.outage_cli hands over here)."""
    defects = args.defects or "2025"
    if (args.typo or args.schedule or args.inprocess or args.nodes > 1 or args.store
            or getattr(args, "web", None) or args.write_schedule):
        print("enactor outage: --cells runs the built-in 2025 schedule over real processes; it "
              "takes none of --typo, --schedule, --write-schedule, --inprocess, --store, --nodes, "
              "--web", file=sys.stderr)
        return 2
    try:
        CellLayout.make(args.cells).find_cell(args.defect_cell)
    except ValueError as exc:
        print(f"enactor outage: {exc}", file=sys.stderr)
        return 2
    if args.customers < 1:
        print("enactor outage: --customers must be at least 1", file=sys.stderr)
        return 2
    png = args.png or str(results_dir / f"outage-cells-{args.cells}-{defects.replace(',', '+')}.png")
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    run = run_cells_outage(args.cells, args.defect_cell, defects, plans=args.plans, customers=args.customers,
                           png=png, verbose=args.verbose)
    text = Path(png).with_suffix(".txt")
    text.write_text(f"$ enactor outage --cells {args.cells} --defects {defects} --defect-cell "
                    f"{args.defect_cell} --customers {args.customers} --plans {args.plans}\n\n{report(run)}\n")
    if args.json:
        cells, flat = run.results
        print(json.dumps({"cells": cells, "no_cells": flat, "png": png, "table": str(text)}, indent=2))
    else:
        print(report(run))
        print(f"table: {text}")
    return 0
