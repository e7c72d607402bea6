"""`enactor gameday`, the shell: one game day from the enactors to the clients, in real time.

Processes and sockets (trio for the clients, a worker thread for the schedule). It starts
`authd serve`, the planner and three enactors (`enactor.drills.outage.Cluster`), our resolver
(`resolver serve`), Unbound with the preset the resolver experiment validated, and a stub
cache (`resolver stub`), all on loopback and stopped by PID. Clients sample the endpoint names
at a steady rate through each layer. The 2025 schedule (`enactor.checker.schedule.schedule_2025`)
then runs paced by the wall clock: schedule time goes `--speed` times as fast as real time
and never ahead of it (the enactors stay in `--stepped` mode, so the race happens exactly as
scheduled, whatever the machine's load), and every event is stamped with the wall-clock
moment it happened. After the crash loop the operator repairs it as the README's runbook says:
`enactor pause`, then `enactor recover --plan N` to the newest plan that served answers, then
`enactor status` to check. The clients keep sampling while their caches let go of the empty
answer; the enactors stay paused (in 2025 the automation stayed off).

The analysis, the table and the figure are `enactor.drills.gameday` (pure).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import trio

from enactor.checker.schedule import run_schedule, schedule_2025
from enactor.checker.testing import T0  # schedule time starts at 2025-10-20 06:00:00 UTC
from enactor.drills import gameday as gd
from enactor.drills.gameday import Settings
from enactor.drills.outage import (
    REPO,
    Cluster,
    ProcessDriver,
    actor_states_from_procs,
    schedule_settings,
)
from enactor.drills.timeline import Event, Recorder, summary
from resolver.resolution import Server

# --- the schedule, paced by the wall clock ---------------------------------------------------


class Aborted(Exception):
    """The schedule thread was told to stop (the game day is shutting down)."""


class PacedDriver(ProcessDriver):
    """`ProcessDriver` whose schedule clock may not run ahead of `speed` x the wall clock.

    Before each action it sleeps until the wall clock has caught up with the schedule time
    the action is due at; a slow machine only makes the game day lag, never changes the
    order. `pairs` maps schedule time to game-day seconds, so each event gets the wall-clock
    moment it really happened at."""

    def __init__(self, cluster: Cluster, rec: Recorder, speed: float, offset: float,
                 verbose: bool = False):
        super().__init__(cluster, rec, verbose=verbose)
        self.speed = speed
        self.offset = offset
        self.mono0 = time.monotonic()  # schedule time T0 is due now; the game day is at offset
        self.pairs: list[tuple[float, float]] = [(rec.t0, offset)]
        self.repaired_at: float | None = None  # when `enactor recover` returned
        self.repair_started = 0.0
        self.abort = threading.Event()
        self.status_after_repair: list[dict[str, Any]] = []

    def now_real(self) -> float:
        return self.offset + time.monotonic() - self.mono0

    def _pace(self, vt: float) -> None:
        wait = self.mono0 + (vt - self.rec.t0) / self.speed - time.monotonic()
        self.wait(wait)

    def wait(self, seconds: float) -> None:
        """Sleep, unless the game day is being stopped (Ctrl-C): then stop driving at once,
        so nothing is restarted after the processes were stopped."""
        if self.abort.wait(max(0.0, seconds)):
            raise Aborted("the game day was stopped")

    def _mark(self) -> None:
        self.pairs.append((self.t, self.now_real()))

    def to_real(self, vt: float) -> float:
        """The game-day second at which schedule time `vt` was reached (events are stamped
        with the schedule time of the step that made them; a pair is taken after each)."""
        i = next((i for i, (v, _) in enumerate(self.pairs) if v >= vt - 1e-9), len(self.pairs) - 1)
        return self.pairs[i][1]

    def go(self, actor: str) -> tuple[str, bool]:
        self._pace(max(self.t, self.ready_at[actor]))
        out = super().go(actor)
        self._mark()
        return out

    def _restart_if_due(self, actor: str) -> None:
        p = self.c.enactors[actor]
        if p.pending is None and p.status == "CRASHED":
            self._pace(max(self.t, self.ready_at[actor]))
            super()._restart_if_due(actor)
            self._mark()

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        self._pace(self.t)
        self._mark()

    def run_free(self, seconds: float) -> None:
        end = self.t + seconds
        super().run_free(seconds)
        self._pace(end)
        self._mark()

    def sample(self, note: str = "") -> Any:
        s = super().sample(note)
        self._mark()
        return s

    def emit_plan(self) -> int:
        n = super().emit_plan()
        self._mark()
        return n

    def _cli(self, *argv: str) -> str:
        out = subprocess.run([sys.executable, "-m", "enactor", *argv, "--api", self.c.api_url,
                              "--plans", str(self.c.plans_dir)],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"enactor {argv[0]} failed: {out.stderr.strip() or out.stdout.strip()}")
        return out.stdout.strip()

    def repair(self, plan: int) -> None:
        """The runbook: pause every enactor (DNS stays as it is), then install the known-good
        plan's tree and flip every endpoint to it through the change API, no enactor needed."""
        self.t += 0.01
        self._cli("pause", "--by", "gameday-operator")
        self.rec.add(self.t, "operator", "pause", "operator: enactor pause")
        self._mark()
        self.t += 0.01
        self.repair_started = self.now_real()
        self._cli("recover", "--plan", str(plan))
        self.rec.add(self.t, "operator", "repair", f"operator: enactor recover --plan {plan}")
        self._read_watch()
        self.repaired_at = self.now_real()
        self._mark()
        # the runbook's check: every endpoint on the known-good plan, answering, still paused
        doc = json.loads(self._cli("status", "--status-dir", str(self.c.work / "status"), "--json"))
        self.status_after_repair = doc["endpoints"]
        for row in self.status_after_repair:
            self.rec.add(self.t, "operator", "note",
                         f"enactor status: {row['endpoint']} active {row['active']}, lock "
                         f"{row['lock']}, answers {row['answers']}")


def watch_events(cluster: Cluster, wall0: float) -> list[Event]:
    """authd's exact record of each watched name going empty and coming back (`--watch-log`,
    stamped by the wall clock when its serving index applied the change), as `empty` /
    `back` events in game-day seconds."""
    from authd.dns.emptywatch import Transition

    if not cluster.watch_log.exists():
        return []
    out = []
    for line in cluster.watch_log.read_text().splitlines():
        tr = Transition.from_line(line)
        out.append(Event(tr.t - wall0, "authd", "empty" if tr.empty else "back", f"{tr.name} {tr.rtype}"))
    return out


def known_good_plan(rec: Recorder) -> int:
    """The newest plan the stable alias pointed at while every name still had answers: what
    an operator reads off the status history at 3 a.m."""
    good = [s.active for s in rec.samples if s.active is not None and s.answers
            and all(n > 0 for n in s.answers.values())]
    if not good:
        raise RuntimeError("no sample ever had answers: nothing known-good to recover to")
    return int(max(good))  # the newest: a sample right after a stale flip may show plan-0002


def set_negative_ttl(cluster: Cluster, seconds: int) -> None:
    """UPSERT each endpoint zone's SOA with MINIMUM `seconds` (Route 53 lets the SOA be
    UPSERTed): the negative TTL becomes min(SOA TTL, MINIMUM), RFC 2308 §5."""
    from authd.store.contract import Action, Change

    for zone in ("api.aws.", "amazonaws.com."):
        zid = cluster_api(cluster).find_zone_by_name(zone).id
        soa = cluster_api(cluster).get_record_sets(zid, zone, "SOA")[0]
        fields = soa.values[0].split()
        new = dataclasses.replace(soa, values=(" ".join([*fields[:-1], str(seconds)]),))
        cluster_api(cluster).change_batch(zid, [Change(Action.UPSERT, new)],
                                          f"gameday: negative TTL {seconds} s")


def cluster_api(cluster: Cluster) -> Any:
    from enactor.client import Route53Http

    return Route53Http(cluster.api_url)


# --- clients --------------------------------------------------------------------------------


async def client(layer: str, index: int, server: Server, name: str, rate: float, t0: float,
                 out: list[gd.ClientSample], rng: random.Random, timeout: float) -> None:
    """One client asking for `name` A every 1/rate seconds (its phase random), each query from
    its own socket, at most three outstanding (an app's few threads)."""
    from resolver.experiment import ask

    template = bytearray(dns.message.make_query(name, "A").to_wire())
    outstanding = 0

    async def one(sent: float, wire: bytes) -> None:
        nonlocal outstanding
        outstanding += 1
        try:
            out.append(gd.ClientSample(sent - t0, layer, index, name, await ask(server, wire, timeout)))
        finally:
            outstanding -= 1

    period = 1.0 / rate
    async with trio.open_nursery() as nursery:
        next_t = t0 + rng.uniform(0, period)
        while True:
            await trio.sleep_until(next_t)
            struct.pack_into("!H", template, 0, rng.getrandbits(16))
            if outstanding < 3:
                nursery.start_soon(one, trio.current_time(), bytes(template))
            next_t = max(next_t + period, trio.current_time())


# --- the run --------------------------------------------------------------------------------


@dataclass
class GamedayResult:
    settings: Settings
    samples: list[gd.ClientSample]
    marks: list[gd.Mark]
    results: dict[str, gd.LayerResult]
    authd_spans: list[tuple[float, float]]
    t_repair: float
    end: float
    outage: dict[str, Any]
    table: str
    png: str | None
    work: Path
    servers: dict[str, str] = field(default_factory=dict)
    status_after_repair: list[dict[str, Any]] = field(default_factory=list)
    by_name: dict[str, dict[str, gd.LayerResult]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        s = self.settings
        return {
            "design": s.design, "defects": s.defects, "speed": s.speed,
            "clients_per_layer": s.clients, "rate_qps": s.rate, "record_ttl": s.record_ttl,
            "negative_ttl": s.negative_ttl, "duration_s": round(self.end, 1),
            "repair_at_s": round(self.t_repair, 3),
            "authd_empty_s": [[round(a, 3), round(b, 3)] for a, b in self.authd_spans],
            "authd_ever_empty": self.outage["ever_empty"],
            "authd_empty_confirmed_by_dig": self.outage.get("transitions_confirmed_by_dig"),
            "authd_transitions_checked_by_dig": self.outage.get("transitions_checked_by_dig"),
            "marks": [{"t": round(m.t, 3), "kind": m.kind, "text": m.text} for m in self.marks],
            "layers": {k: r.to_json() for k, r in self.results.items()},
            "layers_by_name": {k: {n: r.to_json() for n, r in v.items()} for k, v in self.by_name.items()},
            "servers": self.servers,
            "status_after_repair": self.status_after_repair,
            "enactors": self.outage["enactors"],
            "png": self.png,
        }


def _start_layers(stack: contextlib.ExitStack, s: Settings, authd: Server, work: Path) -> dict[str, Server]:
    from resolver.experiment import unbound_options
    from resolver.outage import Cell, Impl, Layer
    from resolver.procs import run_resolver, run_unbound

    servers = {"authd": authd}
    ours = None
    if "resolver" in s.layers or "stub" in s.layers:
        ours = stack.enter_context(run_resolver(
            ["serve", "--forward", f"{authd.host}:{authd.port}", "--max-ttl", str(s.record_ttl)],
            work / "logs" / "resolver.log", probe="api.aws."))
        if "resolver" in s.layers:
            servers["resolver"] = ours
    if "unbound" in s.layers:
        cell = Cell(900, s.negative_ttl, False, Layer.RESOLVER, s.rate, Impl.UNBOUND)
        ub = stack.enter_context(run_unbound(
            [authd], extra=[*unbound_options(cell), f"cache-max-ttl: {s.record_ttl}"], probe="api.aws."))
        servers["unbound"] = ub.server
    if "stub" in s.layers:
        assert ours is not None
        servers["stub"] = stack.enter_context(run_resolver(
            ["stub", "--upstream", f"{ours.host}:{ours.port}", "--positive-ttl", str(s.record_ttl),
             "--negative-ttl", str(s.stub_negative_ttl)],
            work / "logs" / "stub.log", probe="api.aws."))
    return servers


def run_gameday(s: Settings, *, png: str | None = None, work: Path | None = None,
                verbose: bool = False) -> GamedayResult:
    """The whole game day. Raises FileNotFoundError naming a missing tool (dig, unbound)."""
    from resolver.procs import require

    require("dig", "bind9-dnsutils")
    if "unbound" in s.layers:
        require("unbound", "unbound")
    sched = schedule_2025(s.plans)
    _, endpoints, lock_ttl = schedule_settings(sched)
    own = work is None
    work = work or Path(tempfile.mkdtemp(prefix="enactor-gameday-"))
    cluster = Cluster(s.defects, work)
    rec = Recorder(T0)
    samples: list[gd.ClientSample] = []
    holder: dict[str, PacedDriver] = {}
    clock: dict[str, float] = {}
    try:
        cluster.start(list(sched.actors), lock_ttl, endpoints)
        set_negative_ttl(cluster, s.negative_ttl)
        with contextlib.ExitStack() as stack:
            servers = _start_layers(stack, s, Server("127.0.0.1", cluster.dns_port), work)

            def script(offset: float) -> None:
                drv = PacedDriver(cluster, rec, s.speed, offset, verbose=verbose)
                holder["drv"] = drv
                run_schedule(sched, drv)
                drv.repair(known_good_plan(rec))
                # Paused, the enactors only look at the pause lock: DNS stays as it is while
                # the caches let go of the empty answer, in wall-clock time.
                drv.wait(s.tail_seconds)
                drv.t += s.tail_seconds * s.speed
                drv.sample("the end")

            async def live() -> float:
                t0 = trio.current_time()
                clock["wall0"] = time.time()  # authd stamps its watch log with the wall clock
                rng = random.Random(1)
                async with trio.open_nursery() as nursery:
                    for layer in s.layers:
                        for i in range(s.clients):
                            nursery.start_soon(client, layer, i, servers[layer], gd.NAMES[i % 2],
                                               s.rate, t0, samples, random.Random(rng.random()),
                                               s.timeout)
                    await trio.sleep(s.warmup)
                    # abandoned on Ctrl-C: the finally below stops the processes it drives
                    await trio.to_thread.run_sync(script, trio.current_time() - t0,
                                                  abandon_on_cancel=True)
                    end = trio.current_time() - t0
                    nursery.cancel_scope.cancel()
                return end

            end = trio.run(live)
        drv = holder["drv"]
        assert drv.repaired_at is not None
        outage = summary(rec, actor_states_from_procs(cluster), s.defects, sched.description)
        outage["transitions_confirmed_by_dig"] = all(drv.confirmations)
        outage["transitions_checked_by_dig"] = len(drv.confirmations)
        # only what was sent before the end counts (the last queries may have been cut off)
        samples = [x for x in samples if x.t <= end - s.timeout]
        marks = gd.decisive_marks(rec.events, drv.to_real)
        watch = watch_events(cluster, clock["wall0"])
        spans = gd.authd_windows(watch, lambda t: t, end)
        # the repair is on authd when its serving index had the last name back (exact);
        # the fixed design never went empty: then when `enactor recover` returned
        backs = [e.t for e in watch if e.kind == "back" and e.t >= drv.repair_started]
        t_repair = max(backs, default=drv.repaired_at)
        # the repair's line where the records were back on authd, not where the command ended
        marks = [dataclasses.replace(m, t=t_repair) if m.kind == "repair" else m for m in marks]
        results = gd.analyse(samples, t_repair, s.layers)
        by_name = gd.analyse_by_name(samples, t_repair, s.layers)
        res = GamedayResult(s, samples, marks, results, spans, t_repair, end, outage,
                            gd.table(results, t_repair, by_name), png, work,
                            {k: f"{v.host}:{v.port}" for k, v in servers.items()},
                            drv.status_after_repair, by_name)
        if png:
            title = (f"enactor gameday --design {s.design} --speed {s.speed:g}: the 2025 schedule in "
                     f"real time; {s.clients} clients per layer at {s.rate:g} queries/s; resolvers "
                     f"cap TTLs at {s.record_ttl} s, negative TTL {s.negative_ttl} s")
            gd.write_png(png, samples, marks, results, spans, end, title,
                         gd.headline(s.design, results, bool(spans)))
        return res
    finally:
        if "drv" in holder:  # a schedule thread abandoned by Ctrl-C must not restart anything
            holder["drv"].abort.set()
        cluster.stop()
        if own and not os.environ.get("ENACTOR_KEEP_WORK"):
            shutil.rmtree(work, ignore_errors=True)
