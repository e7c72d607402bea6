"""`enactor outage`: the October 2025 outage, reproduced with real processes and real `dig`.

Shell (subprocesses, sockets, files). It starts `authd serve` (DNS + the Route 53 control
API over a SQLite store, loopback ports), the planner and three enactors as real processes in
`--stepped` mode, and drives a schedule (`enactor.checker.schedule`) over them: the same schedule
format the interleaving checker writes its counterexamples in. Time is virtual and handed
to each enactor with its `go` line, so every run is the same; DNS is sampled with real `dig`
between steps. Afterwards: a readable timeline, a JSON summary and a PNG.

`--inprocess` runs the very same schedule over `enactor.checker.sim` (MemoryStore, no processes,
answers counted by walking the records through the store API): seconds instead of tens of
seconds, for tests and machines without dig.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authd.localnet import free_port
from enactor import machine as m
from enactor.checker.schedule import Schedule, run_schedule
from enactor.checker.testing import (
    DUAL,
    LEGACY,
    RESTART_DELAY,
    T0,
    WATCH,
    capacity_for,
    make_driver,
    make_sim,
)
from enactor.client import Route53Http
from enactor.drills.timeline import Recorder, Sample, headline, report, summary, write_png
from enactor.plan import Plan, PlanStore

REPO = Path(__file__).resolve().parents[2]
ACTORS = ("enactor-a", "enactor-b", "enactor-c")
OP_TIME = 0.01  # virtual seconds per action (as in enactor.checker.sim, so replays line up)


def free_port_pair() -> int:
    """A loopback port free for both UDP and TCP (DNS listens on both)."""
    return free_port()


# --- dig ----------------------------------------------------------------------------------

_STATUS = re.compile(r"status: (\w+)")
_ANSWER = re.compile(r"ANSWER: (\d+)")


@dataclass(frozen=True)
class DigResult:
    rcode: str
    answers: int
    text: str


def dig(port: int, name: str, rtype: str, timeout: float = 2.0, host: str = "127.0.0.1") -> DigResult:
    out = subprocess.run(
        ["dig", f"@{host}", "-p", str(port), name, rtype, "+norecurse", "+time=1", "+tries=2"],
        capture_output=True, text=True, timeout=timeout + 3,
    ).stdout
    st, an = _STATUS.search(out), _ANSWER.search(out)
    return DigResult(st.group(1) if st else "NO-RESPONSE", int(an.group(1)) if an else 0, out)


# --- processes ------------------------------------------------------------------------------


def authd_command() -> list[str]:
    """The real `authd serve` (DNS, control API and store in one process)."""
    return [sys.executable, "-m", "authd", "serve"]


class EnactorProc:
    """One `enactor run --stepped` process and its JSON-lines conversation."""

    def __init__(self, name: str, argv: list[str], log_path: Path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.pending: dict[str, Any] | None = None
        self.status = "STARTING"
        self.last_error = ""
        self.crashes = 0
        self.crash_text = ""

    def start(self) -> None:
        logf = open(self.log_path, "a")  # noqa: SIM115 - the child owns it for its life
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=logf, text=True, bufsize=1, cwd=REPO)
        logf.close()
        self._read_next()

    def _line(self) -> dict[str, Any] | None:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def _read_next(self) -> list[str]:
        ev = self._line()
        if ev is None or ev["event"] == "crash":
            self.pending = None
            self.crashes += 1
            self.status = "CRASHED"
            self.crash_text = ev["error"] if ev else f"exited ({self.proc.wait() if self.proc else '?'})"
            self.last_error = self.crash_text
            if self.proc:
                self.proc.wait(timeout=10)
            return [f"{self.name} CRASHED"]
        self.pending = ev["action"]
        self.status = ev.get("status", "")
        self.last_error = ev.get("last_error", "")
        return list(ev.get("log", []))

    def go(self, now: float) -> tuple[dict[str, Any], str, list[str]]:
        assert self.proc is not None and self.proc.stdin is not None and self.pending is not None
        action = self.pending
        self.proc.stdin.write(json.dumps({"go": True, "now": now}) + "\n")
        self.proc.stdin.flush()
        res = self._line()
        outcome = res["result"]["result"] if res else "lost"
        log = self._read_next() if res else [f"{self.name} CRASHED"]
        return action, outcome, log

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.pending = None
        self.status = "KILLED"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
                self.proc.kill()
                self.proc.wait(timeout=5)


def json_label(action: dict[str, Any]) -> str:
    kind = action["kind"]
    if kind == "batch":
        return str(action["purpose"])
    if kind == "sleep":
        return str(action["why"])
    if kind == "read":
        return "read-lock" if str(action.get("name", "")).startswith("_lock.") else "read"
    return str(kind)


@dataclass
class Cluster:
    """authd + planner + enactors on loopback, in a work directory."""

    defects: str
    work: Path
    keep: bool = False
    dns_port: int = 0
    api_port: int = 0
    authd: subprocess.Popen[str] | None = None
    planner: subprocess.Popen[str] | None = None
    enactors: dict[str, EnactorProc] = field(default_factory=dict)
    # --nodes N --store postgresql://...: N authd nodes on one database (issue 15), node i on
    # 127.0.0.(1+i); the last one learns of changes `node_delay` seconds late
    store: str | None = None
    nodes: int = 1
    node_delay: float = 2.0
    extra: list[tuple[str, str, subprocess.Popen[str]]] = field(default_factory=list)  # (name, host, proc)
    database: str | None = None  # the fresh database this run made in --store's server

    def node_host(self, i: int) -> str:
        return "127.0.0.1" if self.store is None else f"127.0.0.{1 + i}"

    @property
    def api_url(self) -> str:
        return f"http://{self.node_host(1)}:{self.api_port}"

    def node_api(self, i: int) -> str:
        """Node i's change API (enactor k talks to node 1 + k mod N: any node takes changes)."""
        return f"http://{self.node_host(i)}:{self.api_port}"

    @property
    def plans_dir(self) -> Path:
        return self.work / "plans"

    @property
    def watch_log(self) -> Path:
        """authd's exact record of answers going empty and coming back (authd.dns.emptywatch)."""
        return self.work / "logs" / "empty-answers.jsonl"

    def start(self, actors: list[str], lock_ttl: float, endpoints: str = "both") -> None:
        self.plans_dir.mkdir(parents=True, exist_ok=True)
        (self.work / "logs").mkdir(exist_ok=True)
        PlanStore(self.plans_dir).put(Plan(1, T0 - 3600 + 1, capacity_for(endpoints)))
        self.dns_port, self.api_port = free_port_pair(), free_port()
        py = sys.executable
        store = str(self.work / "authd.sqlite3")
        if self.store is not None:
            from enactor.drills.pgoutage import fresh_database

            self.database, store = fresh_database(self.store)
        for i in range(1, self.nodes + 1):
            host = self.node_host(i)
            argv = [*authd_command(), "--zones", str(REPO / "zones"),
                    "--listen", f"{host}:{self.dns_port}",
                    "--control", f"{host}:{self.api_port}", "--store", store]
            if i == 1:  # the exact empty-answer window, recorded where node 1 applies changes
                argv += ["--watch-log", str(self.watch_log),
                         *[a for _, name, rtype in WATCH for a in ("--watch-empty", f"{name}:{rtype}")]]
            if self.store is not None:
                argv += ["--node-name", f"node-{i}"]
                if i == self.nodes and self.nodes > 1:
                    argv += ["--propagation-delay", str(self.node_delay)]
            log = open(self.work / "logs" / ("authd.log" if i == 1 else f"authd-node-{i}.log"), "w")  # noqa: SIM115
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=REPO)
            log.close()
            if i == 1:
                self.authd = proc
                self._wait_ready()  # node 1 seeds the zones; the others find them seeded
            else:
                self.extra.append((f"node-{i}", host, proc))
        for i in range(2, self.nodes + 1):
            self._wait_ready(host=self.node_host(i), proc=self.extra[i - 2][2])
        self.planner = subprocess.Popen(
            [py, "-m", "enactor", "planner", "--plans", str(self.plans_dir), "--stepped"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            bufsize=1, cwd=REPO)
        for k, name in enumerate(actors):
            argv = [py, "-m", "enactor", "run", "--name", name, "--plans", str(self.plans_dir),
                    "--api", self.node_api(1 + k % self.nodes), "--defects", self.defects, "--stepped",
                    "--lock-ttl", str(lock_ttl), "--status-dir", str(self.work / "status")]
            p = EnactorProc(name, argv, self.work / "logs" / f"{name}.log")
            p.start()
            self.enactors[name] = p

    def _wait_ready(self, timeout: float = 30.0, host: str | None = None,
                    proc: subprocess.Popen[str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        host = host or self.node_host(1)
        proc = proc or self.authd
        api = Route53Http(self.api_url if host == self.node_host(1) else
                          self.node_api(int(host.rsplit(".", 1)[1]) - 1))
        last = ""
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                text = (self.work / "logs" / "authd.log").read_text()[-2000:]
                raise RuntimeError(f"authd exited with status {proc.returncode}:\n{text}")
            try:
                api.find_zone_by_name("api.aws.")
                if dig(self.dns_port, DUAL, "A", timeout=1, host=host).rcode != "NO-RESPONSE":
                    return
                last = "DNS not answering yet"
            except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
                last = str(exc)
            time.sleep(0.2)
        raise RuntimeError(f"authd did not come up in {timeout}s: {last}")

    def emit_plan(self) -> int:
        assert self.planner is not None and self.planner.stdin and self.planner.stdout
        self.planner.stdin.write("go\n")
        self.planner.stdin.flush()
        doc = json.loads(self.planner.stdout.readline())
        return int(doc["plan"])

    def stop(self) -> None:
        for p in self.enactors.values():
            p.stop()
        for proc in (self.planner, self.authd, *(p for _, _, p in self.extra)):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        if self.store is not None and self.database is not None:
            from enactor.drills.pgoutage import drop_database

            drop_database(self.store, self.database)


class ProcessDriver:
    """`enactor.checker.schedule.Driver` over real processes, on a virtual clock."""

    def __init__(self, cluster: Cluster, rec: Recorder, verbose: bool = False):
        self.c = cluster
        self.rec = rec
        self.t = rec.t0
        self.ready_at: dict[str, float] = {n: self.t for n in cluster.enactors}
        self.api = Route53Http(cluster.api_url)
        self.verbose = verbose
        self.digs: list[tuple[float, str, str]] = []  # (t, "name TYPE", dig text) of samples
        self._watch_at = 0  # bytes of the watch log already read
        self.confirmations: list[bool] = []  # one real dig right after each transition

    def _read_watch(self) -> None:
        """Stamp authd's empty/back transitions with the schedule time of the step that caused
        them: authd answers a change batch only once its serving index has applied it, so
        the line is in the file when the step returns."""
        from authd.dns.emptywatch import Transition

        path = self.c.watch_log
        if not path.exists():
            return
        with path.open() as f:
            f.seek(self._watch_at)
            chunk = f.read()
        done = chunk.rfind("\n") + 1
        self._watch_at += len(chunk[:done].encode())
        for line in chunk[:done].splitlines():
            tr = Transition.from_line(line)
            record_transition(self.rec, self.t, tr.name, tr.rtype, tr.empty, tr.seq)
            self._confirm(tr.name, tr.rtype, tr.empty)

    def _confirm(self, name: str, rtype: str, empty: bool) -> None:
        """Real dig, at once: an EMPTY must answer NOERROR with zero records; a BACK must give
        records (a few tries: one weighted pick may land on a member still being built)."""
        for _ in range(1 if empty else 5):
            r = dig(self.c.dns_port, name, rtype)
            if (r.answers == 0) == empty:
                break
        ok = (r.answers == 0) == empty and r.rcode == "NOERROR"
        self.confirmations.append(ok)
        self.rec.add(self.t, "dig", "confirm",
                     f"{name.rstrip('.')} {rtype}: {r.rcode} ANSWER {r.answers} "
                     f"({'confirms' if ok else 'CONTRADICTS'} authd's {'EMPTY' if empty else 'BACK'})")

    def _say(self, text: str) -> None:
        if self.verbose:
            print(text, flush=True)

    def _restart_if_due(self, actor: str) -> None:
        p = self.c.enactors[actor]
        if p.pending is None and p.status == "CRASHED":
            self.t = max(self.t, self.ready_at[actor])
            p.start()
            self.rec.add(self.t, actor, "restart", "restarted by its supervisor")
            self._set_ready(actor)

    def _set_ready(self, actor: str) -> None:
        p = self.c.enactors[actor]
        if p.pending is not None and p.pending["kind"] == "sleep":
            self.ready_at[actor] = self.t + float(p.pending["seconds"])
        elif p.pending is None:
            self.ready_at[actor] = self.t + RESTART_DELAY
        else:
            self.ready_at[actor] = self.t

    def pending_label(self, actor: str) -> str | None:
        self._restart_if_due(actor)
        p = self.c.enactors[actor]
        return json_label(p.pending) if p.pending is not None else None

    def go(self, actor: str) -> tuple[str, bool]:
        p = self.c.enactors[actor]
        self.t = max(self.t, self.ready_at[actor])
        action, outcome, log = p.go(self.t)
        lbl = json_label(action)
        if action["kind"] != "sleep":
            self.t += OP_TIME
        self.rec.step(self.t, actor, lbl, outcome, log)
        self._read_watch()
        for line in log:
            self._say(f"  {self.t - self.rec.t0:7.2f}  {line}")
        self._set_ready(actor)
        return lbl, p.pending is None

    def emit_plan(self) -> int:
        n = self.c.emit_plan()
        self.rec.add(self.t, "planner", "plan", f"wrote plan-{n:04d}")
        return n

    def sample(self, note: str = "") -> Sample:
        answers: dict[str, int] = {}
        rcodes: dict[str, str] = {}
        for _, name, rtype in WATCH:
            r = dig(self.c.dns_port, name, rtype, host=self.c.node_host(1))
            answers[f"{name} {rtype}"] = r.answers
            rcodes[f"{name} {rtype}"] = r.rcode
            self.digs.append((self.t, f"{name} {rtype}", r.text))
        for node, host, _ in self.c.extra:  # every other node, so the empty answer is seen spreading
            for _, name, rtype in WATCH:
                r = dig(self.c.dns_port, name, rtype, host=host)
                key = f"{name} {rtype} @{node}"
                answers[key], rcodes[key] = r.answers, r.rcode
                self.digs.append((self.t, key, r.text))
        zid = self.api.find_zone_by_name("api.aws.").id
        sets = self.api.get_record_sets(zid, DUAL, "A")
        from enactor.plan import root_plan

        active = root_plan(sets[0].alias.dns_name, DUAL) if sets and sets[0].alias else None
        s = Sample(self.t, answers, rcodes, active, "dig", note)
        self.rec.sample(s)
        return s

    def delete_tree(self, plan: int) -> None:
        """The operator typo, done the way an operator would: `authd change` with a batch."""
        label_ = f"plan-{plan:04d}"
        for zone, name in (("api.aws.", DUAL), ("amazonaws.com.", LEGACY)):
            zid = self.api.find_zone_by_name(zone).id
            recs = [rs for rs in self.api.record_sets(zid) if rs.name.endswith(f"{label_}.{name}")]
            recs.sort(key=lambda rs: rs.weight is None)
            if not recs:
                continue
            batch = {"Comment": "operator: clean up by hand",
                     "Changes": [{"Action": "DELETE", "ResourceRecordSet": rs.to_route53()} for rs in recs]}
            bf = self.c.work / f"typo-{zone}json"
            bf.write_text(json.dumps(batch))
            cmd = [sys.executable, "-m", "authd", "change", "--zone", zone, "--endpoint", self.c.api_url,
                   "--batch", str(bf)]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=30)
            how = "authd change"
            if out.returncode != 0:
                # Older authd without the `change` command: same batch, same API.
                from authd.store.contract import Action, Change

                self.api.change_batch(zid, [Change(Action.DELETE, rs) for rs in recs], "operator typo")
                how = "the change API"
            self.rec.add(self.t, "operator", "typo", f"deleted the {label_} tree of {name} by hand ({how})")
            self._read_watch()

    def kill(self, actor: str) -> None:
        self.c.enactors[actor].kill()
        self.rec.add(self.t, actor, "kill", "killed (SIGKILL)")

    def restart(self, actor: str) -> None:
        self.c.enactors[actor].start()
        self.rec.add(self.t, actor, "restart", "restarted")
        self._set_ready(actor)

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def run_free(self, seconds: float) -> None:
        end = self.t + seconds
        for _ in range(20000):
            ready = [(self.ready_at[a], a) for a, p in self.c.enactors.items()
                     if p.pending is not None or p.status == "CRASHED"]
            if not ready:
                break
            t, a = min(ready)
            if t > end:
                break
            if self.c.enactors[a].pending is None:
                self._restart_if_due(a)
                continue
            self.go(a)
        self.t = max(self.t, end)

    def note(self, text: str) -> None:
        self.rec.add(self.t, "", "note", text)
        self._say(f"  -- {text}")


def record_transition(rec: Recorder, t: float, name: str, rtype: str, empty: bool, seq: int) -> None:
    """One `empty` / `back` event; its text is the "name TYPE" key the summary pairs them by."""
    rec.add(t, "authd", "empty" if empty else "back", f"{name} {rtype}")


def watch_in_process(sim: Any, rec: Recorder) -> Any:
    """In-process, the same exact measurement: a serving index fed from the store's journal,
    checked after every enactor step (and after an operator's delete)."""
    from authd.dns.emptywatch import EmptyWatch
    from authd.dns.index import ServingIndex

    index = ServingIndex()
    for entry in sim.api.snapshot():
        index.apply(entry)
    watch = EmptyWatch([(name, rtype) for _, name, rtype in WATCH])
    watch.check(index, sim.clock.t, index.seq)

    def catch_up(*_: Any) -> None:
        entries = sim.api.journal_since(index.seq)
        for entry in entries:
            index.apply(entry)
        if entries:
            for tr in watch.check(index, sim.clock.t, index.seq):
                record_transition(rec, sim.clock.t, tr.name, tr.rtype, tr.empty, tr.seq)

    sim.observers.append(catch_up)
    return catch_up


# --- the command ---------------------------------------------------------------------------


@dataclass
class OutageResult:
    summary: dict[str, Any]
    report: str
    png: str | None
    digs: list[tuple[float, str, str]]
    work: Path


def state_word(down: bool, crashes: int, status: str) -> str:
    if down:
        return "CRASHED"
    if crashes:
        return f"CRASH-LOOPING (restarted after {crashes} crash{'es' if crashes > 1 else ''}, now {status})"
    return status


def actor_states_from_procs(c: Cluster) -> dict[str, dict[str, Any]]:
    return {n: {"state": state_word(p.pending is None, p.crashes, p.status), "crashes": p.crashes,
                "last_error": p.crash_text or p.last_error}
            for n, p in c.enactors.items()}


def schedule_settings(schedule: Schedule) -> tuple[str | None, str, float]:
    """(defects, endpoints, lock TTL) a schedule asks for: its own keys, or the checker's
    section of a counterexample (`checker.defects`, `checker.bounds.endpoints`)."""
    chk = schedule.extra.get("checker") or {}
    defects = schedule.extra.get("defects") or chk.get("defects")
    endpoints = schedule.extra.get("endpoints") or (chk.get("bounds") or {}).get("endpoints") or "both"
    lock_ttl = float(schedule.extra.get("lock_ttl", m.Config("x").lock_ttl))
    return defects, str(endpoints), lock_ttl


def run_outage(defects: str | None, schedule: Schedule, *, inprocess: bool = False, png: str | None = None,
               work: Path | None = None, verbose: bool = False, store: str | None = None,
               nodes: int = 1, node_delay: float = 2.0, live: Any = None) -> OutageResult:
    """Run `schedule` with `defects` (None: what the schedule says, else the 2025 defects).

    `store` (postgresql://...) and `nodes`: that many authd nodes on a fresh database in that
    server, sampled one by one; the last learns of changes `node_delay` seconds late.
    `live` (`enactor.drills.web.LiveRun`): sees the driver before the run, every schedule step and
    the summary at the end (the live web page, and pacing)."""
    want, endpoints, lock_ttl = schedule_settings(schedule)
    defects = defects or want or "2025"
    title = f"enactor outage --defects {defects}: {schedule.description}"
    if inprocess:
        sim = make_sim(m.parse_defects(defects), names=tuple(schedule.actors), endpoints=endpoints,
                       lock_ttl=lock_ttl)
        drv = make_driver(sim, endpoints)
        catch_up = watch_in_process(sim, drv.rec)
        delete = drv.delete_tree
        drv.delete_tree = lambda plan: (delete(plan), catch_up())  # type: ignore[method-assign]
        if verbose:
            sim.on_log = lambda t, line: print(f"  {t - T0:7.2f}  {line}", flush=True)
        if live is not None:
            live.attach(drv, title, list(schedule.actors))
        run_schedule(schedule, drv, on_step=live.step if live is not None else None)
        actors = {n: {"state": state_word(a.action is None, a.crashes, a.state.status.value),
                      "crashes": a.crashes,
                      "last_error": (a.crashed or "").strip().splitlines()[-1] if a.crashed else a.state.last_error}
                  for n, a in sim.actors.items()}
        summ = summary(drv.rec, actors, defects, schedule.description)
        rep = report(drv.rec, summ)
        if png:
            write_png(drv.rec, summ, list(schedule.actors), png, title)
        if live is not None:
            live.end(summ, headline(drv.rec, title))
        return OutageResult(summ, rep, png, [], Path("."))
    if shutil.which("dig") is None:
        raise RuntimeError("dig is not installed (Debian package bind9-dnsutils); try --inprocess")
    own = work is None
    work = work or Path(tempfile.mkdtemp(prefix="enactor-outage-"))
    if nodes > 1 and store is None:
        raise RuntimeError("--nodes > 1 needs --store postgresql://USER@HOST:PORT/DB")
    cluster = Cluster(defects, work, store=store, nodes=nodes if store else 1, node_delay=node_delay)
    rec = Recorder(T0)
    try:
        cluster.start(list(schedule.actors), lock_ttl, endpoints)
        pdrv = ProcessDriver(cluster, rec, verbose=verbose)
        if live is not None:
            live.attach(pdrv, title, list(schedule.actors))
        run_schedule(schedule, pdrv, on_step=live.step if live is not None else None)
        actors = actor_states_from_procs(cluster)
        summ = summary(rec, actors, defects, schedule.description)
        summ["dns"] = f"{cluster.node_host(1)}:{cluster.dns_port}"
        if cluster.extra:
            summ["nodes"] = [summ["dns"], *(f"{h}:{cluster.dns_port}" for _, h, _ in cluster.extra)]
        summ["transitions_confirmed_by_dig"] = all(pdrv.confirmations)
        summ["transitions_checked_by_dig"] = len(pdrv.confirmations)
        summ["work"] = str(work)
        rep = report(rec, summ)
        if png:
            write_png(rec, summ, list(schedule.actors), png, title)
        if live is not None:
            live.end(summ, headline(rec, title))
        return OutageResult(summ, rep, png, pdrv.digs, work)
    finally:
        cluster.stop()
        if own and not os.environ.get("ENACTOR_KEEP_WORK"):
            shutil.rmtree(work, ignore_errors=True)
