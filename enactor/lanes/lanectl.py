"""`enactor lanes`: the fast and slow lanes (`enactor.lanes.core`) driven against real authd.

Trio shell: it only moves bytes and time. `enactor lanes run` is the planner's output stage
for lanes: it takes changes from an inbox directory (`enactor lanes submit` drops one JSON file
per change there), feeds them and the clock to the pure machine, and carries out its actions:

- WritePlan: `PlanStore(target.plan_dir).put(plan)`, the same plan store the target's own
  enactors read. The lanes controller writes plans; the enactors, their lock and their fenced
  flip do the rest, for both lanes. It must be the only writer of those plan stores (run no
  `enactor planner` beside it).
- Delivery: every poll, for each target with plans in flight, each endpoint's alias is read
  through the change API (the source of truth) and the heartbeat name is asked over DNS; a
  heartbeat counts only when DNS answers its address.
- RunCheck: the fixed design's invariants over the change API (`enactor.checker.invariants`:
  resolves, rollback, one-lock, monotonic) and the answer check over real DNS (every endpoint
  of the target answers NOERROR with at least one address, A and AAAA where dual-stack).
- Durability: an accepted change's file moves to `<inbox>/queued/` and is deleted only when
  the machine says it is delivered everywhere (`Done`); a restarted controller takes up what
  is left there first. A file it cannot read moves to `<inbox>/rejected/` with the reason.
- Alarms: one log line each (`FAST PATH BROKEN: ...`, `SLOW LANE HALTED: ...`) and the
  metrics `lanes_fast_path_up`, `lanes_slow_halted` (`--metrics HOST:PORT`).

Targets: by default one, `region`, over `--plans` (today's single layout); `--targets FILE`
names several (with cells, one per cell: `enactor cells init` writes `cells/targets.json`):

    {"targets": [{"name": "cell-1", "plans": "cells/cell-1/plans",
                  "endpoints": ["cell-1.ddb.us-east-1.api.aws."]}, ...]}
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from enactor.lanes import core as ln
from enactor.plan import Plan, PlanError, PlanStore, plan_label, root_plan
from enactor.planner import Capacity, default_capacity

LOG_PREFIX = "lanes"


def stamp(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


# --- targets ------------------------------------------------------------------------------


def load_targets(path: str | None, plans: str) -> list[tuple[ln.Target, int, Capacity]]:
    """The targets, each with its newest plan number and capacity (from its plan store; a
    store with no plan yet gets the default capacity as plan 1, the plan the zones describe)."""
    specs: Any
    if path is None:
        specs = [{"name": "region", "plans": plans, "endpoints": None}]
    else:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PlanError(path, "$", f"cannot read targets: {exc}") from None
        specs = doc.get("targets") if isinstance(doc, dict) else None
        if not isinstance(specs, list) or not specs:
            raise PlanError(path, "$.targets", "must be a non-empty list")
    out = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or \
                not isinstance(spec.get("plans"), str):
            raise PlanError(path or "<targets>", f"$.targets[{i}]", 'needs "name" and "plans"')
        store = PlanStore(spec["plans"])
        latest = store.latest()
        if latest is None:  # the zones' own plan-0001, so the first plan written is plan 2
            latest = Plan(1, float(int(time.time())), default_capacity())
            store.put(latest)
        cap = latest.endpoints
        real = ln.real_endpoints(cap)
        names = spec.get("endpoints") or [e.name for e in real]
        missing = [n for n in names if n not in {e.name for e in real}]
        if missing:
            raise PlanError(path or "<targets>", f"$.targets[{i}].endpoints",
                            f"not in {spec['plans']}'s newest plan: {', '.join(missing)}")
        out.append((ln.Target(spec["name"], tuple(names), spec["plans"]), latest.number, cap))
    return out


# --- the inbox ------------------------------------------------------------------------------


def submit(inbox: str | Path, doc: dict[str, Any]) -> Path:
    """Drop one change (or `{"resume": true}`) into the inbox, atomically."""
    d = Path(inbox)
    d.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}.json"
    tmp = d / f".{name}.tmp"
    tmp.write_text(json.dumps(doc) + "\n")
    tmp.replace(d / name)
    return d / name


def parse_change(doc: Any) -> tuple[ln.Lane, list[ln.Edit], str]:
    """An inbox document: {"lane": "fast"|"slow", "edits": [{"selector", "weight",
    "endpoint"?}], "note"?}. Raises ValueError saying what is wrong."""
    if not isinstance(doc, dict):
        raise ValueError("must be a JSON object")
    try:
        lane = ln.Lane(doc.get("lane"))
    except ValueError:
        raise ValueError(f'"lane" must be "fast" or "slow", got {doc.get("lane")!r}') from None
    edits_doc = doc.get("edits")
    if not isinstance(edits_doc, list) or not edits_doc:
        raise ValueError('"edits" must be a non-empty list')
    edits = []
    for i, e in enumerate(edits_doc):
        if not isinstance(e, dict) or not isinstance(e.get("selector"), str) or \
                isinstance(e.get("weight"), bool) or not isinstance(e.get("weight"), int):
            raise ValueError(f"edits[{i}]: needs a string \"selector\" and an integer \"weight\"")
        ep = e.get("endpoint")
        if ep is not None and not isinstance(ep, str):
            raise ValueError(f"edits[{i}].endpoint: must be a name or null")
        try:
            edits.append(ln.Edit(e["selector"], e["weight"], _canon(ep) if ep else None))
        except ValueError as exc:
            raise ValueError(f"edits[{i}]: {exc}") from None
    return lane, edits, str(doc.get("note", ""))


def _canon(name: str) -> str:
    return name.lower() if name.endswith(".") else name.lower() + "."


def take_inbox(inbox: Path) -> list[tuple[Path, Any]]:
    """The inbox files, oldest first, each with its decoded JSON (or the error text)."""
    if not inbox.is_dir():
        return []
    out: list[tuple[Path, Any]] = []
    for p in sorted(inbox.glob("*.json")):
        try:
            out.append((p, json.loads(p.read_text())))
        except (OSError, json.JSONDecodeError) as exc:
            out.append((p, exc))
    return out


# --- probes and checks (blocking: run in a worker thread) -----------------------------------


class Probe:
    """Reads for delivery and checks: the change API (botocore) and DNS (dnspython)."""

    def __init__(self, api: Any, dns: tuple[str, int]):
        from enactor.checker.invariants import StoreChecker

        self.api = api
        self.dns = dns
        self.zone_ids: dict[str, str] = {}
        self.facts: dict[str, Any] = {}  # target -> the last StoreFacts (for MONOTONIC)
        self._checker = StoreChecker

    def zid(self, zone: str) -> str:
        if zone not in self.zone_ids:
            self.zone_ids[zone] = self.api.find_zone_by_name(zone).id
        return self.zone_ids[zone]

    def dns_answer(self, name: str, rtype: str) -> tuple[str, list[str]]:
        import dns.flags
        import dns.message
        import dns.query
        import dns.rcode
        import dns.rdatatype

        q = dns.message.make_query(name, rtype)
        q.flags &= ~dns.flags.RD  # asking the authoritative server itself (+norecurse)
        try:
            r = dns.query.udp(q, self.dns[0], port=self.dns[1], timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - a timeout is an answer check failure
            return f"no response ({type(exc).__name__})", []
        addrs = [rd.to_text() for rrs in r.answer for rd in rrs if rrs.rdtype == dns.rdatatype.from_text(rtype)]
        return dns.rcode.to_text(r.rcode()), addrs

    def delivery(self, cap: Capacity) -> tuple[int | None, int | None]:
        """(the oldest plan any endpoint's alias points at, the heartbeat DNS answers)."""
        plans: list[int | None] = []
        for e in cap:
            sets = self.api.get_record_sets(self.zid(e.zone), e.name, "A")
            alias = sets[0].alias if len(sets) == 1 else None
            plans.append(root_plan(alias.dns_name, e.name) if alias is not None else None)
        active = None if not plans or any(p is None for p in plans) else min(p for p in plans if p is not None)
        hb = ln.heartbeat_name(cap)
        seq = None
        if any(e.name == hb for e in cap):
            _rcode, addrs = self.dns_answer(hb, "A")
            seqs = [s for s in (ln.heartbeat_seq(a) for a in addrs) if s is not None]
            seq = seqs[0] if seqs else None
        return active, seq

    def check(self, target: ln.Target, cap: Capacity) -> list[str]:
        """The fixed design's invariants (change API) and the answer check (real DNS)."""
        from enactor.checker.invariants import check_monotonic, watched

        eps = [e for e in ln.real_endpoints(cap) if e.name in target.endpoints]
        checker = self._checker(watched(eps), use_index=False)
        facts = checker.facts(_ApiView(self.api))
        out = [v.text() for v in facts.violations]
        prev = self.facts.get(target.name)
        if prev is not None:
            out += [v.text() for v in check_monotonic(prev, facts)]
        self.facts[target.name] = facts
        for e in eps:
            for t in e.rtypes:
                rcode, addrs = self.dns_answer(e.name, t)
                if rcode != "NOERROR" or not addrs:
                    out.append(f"answer: {e.name} {t} over DNS: {rcode} with {len(addrs)} addresses")
        return out


class _ApiView:
    """The change API as the invariants' StoreLike: point reads only, never cached."""

    def __init__(self, api: Any):
        self.api = api
        self._key = object()

    def find_zone_by_name(self, name: str) -> Any:
        return self.api.find_zone_by_name(name)

    def get_record_sets(self, zone_id: str, name: str, rtype: str) -> list[Any]:
        return self.api.get_record_sets(zone_id, name, rtype)

    def snapshot(self) -> list[Any]:
        raise NotImplementedError("the lanes check reads through the change API (use_index=False)")

    def state_key(self) -> object:
        return self._key


# --- metrics --------------------------------------------------------------------------------


class LaneMetrics:
    """What the lanes did, for Prometheus (`--metrics`), from the machine's actions."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.plans = Counter("lanes_plans_written", "plans written, per lane", ["lane"], registry=r)
        self.delivered = Histogram("lanes_delivery_seconds", "submission to verified delivery, per lane",
                                   ["lane", "kind"], registry=r,
                                   buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600))
        self.fast_up = Gauge("lanes_fast_path_up", "1 while every fast change (the heartbeat "
                             "included) is delivered within period/2, else 0", registry=r)
        self.halted = Gauge("lanes_slow_halted", "1 while the slow lane is halted", registry=r)
        self.alarms = Counter("lanes_alarms", "alarms raised, per kind", ["kind"], registry=r)
        self.heartbeat = Gauge("lanes_heartbeat_delivered_timestamp_seconds",
                               "when a heartbeat was last seen delivered over DNS", registry=r)
        self.fast_up.set(1)

    def observe(self, a: ln.LaneAction, now: float) -> None:
        if isinstance(a, ln.WritePlan):
            self.plans.labels(a.lane.value).inc()
        elif isinstance(a, ln.Delivered):
            self.delivered.labels(a.lane.value, "heartbeat" if a.heartbeat else "change").observe(a.seconds)
            if a.heartbeat:
                self.heartbeat.set(now)
        elif isinstance(a, ln.Alarm):
            if a.on:
                self.alarms.labels(a.kind).inc()
            (self.fast_up if a.kind == "fast-path" else self.halted).set(
                (0 if a.on else 1) if a.kind == "fast-path" else (1 if a.on else 0))

    def serve(self, host: str, port: int) -> None:
        from prometheus_client import start_http_server

        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            from authd.clean_exit import Fatal

            raise Fatal(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None


# --- the loop -------------------------------------------------------------------------------


class Controller:
    """Carries out the machine's actions; `run` is the trio loop."""

    def __init__(self, lanes: ln.Lanes, probe: Probe, inbox: Path, *, poll: float = 0.2,
                 probe_every: float = 0.5, metrics: LaneMetrics | None = None,
                 status: Path | None = None, log: IO[str] = sys.stderr,
                 clock: Callable[[], float] = time.time):
        self.lanes, self.probe, self.inbox, self.poll = lanes, probe, inbox, poll
        self.probe_every, self.last_probe = probe_every, float("-inf")
        self.metrics, self.status, self.log, self.clock = metrics, status, log, clock
        self.targets = {t.target.name: t.target for t in lanes.targets}
        self.kept: dict[int, Path] = {}  # change id -> its file in <inbox>/queued/, until Done
        self.probe_errors: dict[str, str] = {}  # target -> the last delivery read error

    def say(self, text: str) -> None:
        print(f"{stamp(self.clock())} {LOG_PREFIX} {text}", file=self.log, flush=True)

    async def perform(self, actions: Sequence[ln.LaneAction]) -> None:
        import trio

        todo = list(actions)
        while todo:
            a = todo.pop(0)
            if self.metrics is not None:
                self.metrics.observe(a, self.clock())
            if isinstance(a, ln.Log | ln.Alarm):
                self.say(a.text)
            elif isinstance(a, ln.Done):
                for cid in a.changes:
                    kept = self.kept.pop(cid, None)
                    if kept is not None:
                        kept.unlink(missing_ok=True)
            elif isinstance(a, ln.WritePlan):
                tgt = self.targets[a.target]
                try:
                    PlanStore(tgt.plan_dir).put(a.plan)
                except (PlanError, OSError) as exc:
                    todo += self.lanes.write_failed(self.clock(), a.target, a.plan.number, str(exc))
                    continue
                self.say(f"{a.lane.value} lane wrote {a.plan.label} for {a.target}: {a.why}")
            elif isinstance(a, ln.RunCheck):
                tgt = self.targets[a.target]
                cap = self.lanes.capacity(a.target)
                try:
                    vs = await trio.to_thread.run_sync(self.probe.check, tgt, cap)
                except Exception as exc:  # noqa: BLE001 - an unreadable API fails the check
                    vs = [f"check could not read the change API: {exc}"]
                if vs:
                    self.say(f"check of {a.target} at {plan_label(a.number)}: " + "; ".join(vs))
                todo += self.lanes.check_result(self.clock(), a.target, a.number, vs)

    async def once(self) -> None:
        import trio

        for path, doc in take_inbox(self.inbox):
            await self.perform(self._accept(path, doc))
        await self.perform(self.lanes.tick(self.clock()))
        if self.clock() - self.last_probe < self.probe_every:
            return self._write_status()
        self.last_probe = self.clock()
        for tgt, _number in self.lanes.watching():
            cap = self.lanes.capacity(tgt.name)
            try:
                active, seq = await trio.to_thread.run_sync(self.probe.delivery, cap)
            except Exception as exc:  # noqa: BLE001 - not delivered yet; said once, not per poll
                text = f"cannot read {tgt.name}'s delivery: {exc}"
                if self.probe_errors.get(tgt.name) != text:
                    self.say(text)
                self.probe_errors[tgt.name] = text
                continue
            if self.probe_errors.pop(tgt.name, None) is not None:
                self.say(f"reading {tgt.name}'s delivery again")
            await self.perform(self.lanes.delivered(self.clock(), tgt.name, active, seq))
        self._write_status()

    def _write_status(self) -> None:
        if self.status is not None:
            tmp = self.status.with_name(f".{self.status.name}.tmp")
            tmp.write_text(json.dumps(self.lanes.status()) + "\n")
            tmp.replace(self.status)

    @property
    def queued_dir(self) -> Path:
        return self.inbox / "queued"

    def _accept(self, path: Path, doc: Any) -> list[ln.LaneAction]:
        now = self.clock()
        try:
            if isinstance(doc, Exception):
                raise ValueError(f"not JSON: {doc}")
            if isinstance(doc, dict) and doc.get("resume") is True:
                path.unlink()
                return self.lanes.resume(now)
            lane, edits, note = parse_change(doc)
            cid, acts = self.lanes.change(now, lane, edits, note)
        except ValueError as exc:
            # Bad input loses nothing: the file is kept, beside the inbox, with the reason.
            bad = self.inbox / "rejected"
            bad.mkdir(parents=True, exist_ok=True)
            path.replace(bad / path.name)
            (bad / (path.name + ".error")).write_text(str(exc) + "\n")
            return [ln.Log(f"REJECTED {path.name}: {exc} (kept in {bad})")]
        # Kept until the machine says Done: a restarted controller takes it up again.
        self.queued_dir.mkdir(parents=True, exist_ok=True)
        kept = self.queued_dir / path.name
        if path != kept:
            path.replace(kept)
        self.kept[cid] = kept
        again = " (again, after a restart)" if path == kept else ""
        return [ln.Log(f"accepted {path.name} as {lane.value} change #{cid}{again}")] + acts

    async def start(self) -> None:
        await self.perform(self.lanes.start(self.clock()))
        for path, doc in take_inbox(self.queued_dir):  # accepted before a restart, not yet done
            await self.perform(self._accept(path, doc))

    async def run(self) -> None:
        import trio

        await self.start()
        while True:
            await self.once()
            await trio.sleep(self.poll)


# --- command line ---------------------------------------------------------------------------

HELP = """\
Lanes (the talk's "temporal isolation"): every change carries a lane.
  slow  everyday changes: batched (a batch starts once its oldest change has waited --gather
        seconds; at most --batch changes per --window, changes to the same endpoint coalesce),
        rolled out target by target (each cell is one target), each target checked (the
        fixed design's invariants and every endpoint answering over DNS) and baked for --bake
        seconds before the next. A failed check halts the slow lane until `enactor lanes resume`.
  fast  emergencies: written to every target at once; no batch, no bake, never queued
        behind the slow lane.
Both lanes only ever write a plan to a target's plan store: the same enactors, the same lock
and the same fenced flip enact it. No side door. A heartbeat (a synthetic fast change that
moves only heartbeat.<zone>, whose address encodes its number) goes through the fast lane
every --period/2; a fast change not seen delivered over DNS within --period/2 logs
FAST PATH BROKEN and sets lanes_fast_path_up 0, so a broken fast path is found within one
period, on an ordinary day."""


def build_parser() -> argparse.ArgumentParser:
    from authd.clean_exit import OneLineParser

    p = OneLineParser(prog="enactor lanes", description=HELP,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="op", required=True, metavar="COMMAND")
    r = sub.add_parser("run", help="the lanes controller: writes plans for both lanes, checks, alarms",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--plans", default="plans", help="the plan store of the single target (default plans/)")
    r.add_argument("--targets", metavar="FILE",
                   help='JSON {"targets": [{"name", "plans", "endpoints"}]}, rolled out in this order '
                        "(default: one target, 'region', over --plans)")
    r.add_argument("--api", default="http://127.0.0.1:8053", metavar="URL",
                   help="authd's Route 53 control API (default http://127.0.0.1:8053)")
    r.add_argument("--access-key", default="test", help="SigV4 access key id (default test)")
    r.add_argument("--secret-key", default="test", help="SigV4 secret key (default test)")
    r.add_argument("--dns", default="127.0.0.1:5380", metavar="HOST:PORT",
                   help="authd's DNS, for the answer check and the heartbeat (default 127.0.0.1:5380)")
    _inbox_arg(r)
    r.add_argument("--batch", type=int, default=5, help="slow changes per window, after coalescing (default 5)")
    r.add_argument("--window", type=float, default=60.0, help="slow-lane rate-limit window, seconds (default 60)")
    r.add_argument("--gather", type=float, default=5.0,
                   help="a slow batch starts once its oldest change waited this long, seconds (default 5)")
    r.add_argument("--bake", type=float, default=30.0, help="seconds between targets in a slow rollout (default 30)")
    r.add_argument("--period", type=float, default=60.0,
                   help="a broken fast path is reported within this many seconds; a heartbeat "
                        "goes every period/2 (default 60)")
    r.add_argument("--step-timeout", type=float, default=120.0,
                   help="a slow step not delivered in this long halts the slow lane (default 120)")
    r.add_argument("--no-heartbeat", action="store_true", help="do not exercise the fast lane (not advised)")
    r.add_argument("--poll", type=float, default=0.2, help="seconds between looks at the inbox (default 0.2)")
    r.add_argument("--probe", type=float, default=0.5,
                   help="seconds between delivery reads (change API and DNS) while plans are in "
                        "flight (default 0.5)")
    r.add_argument("--metrics", metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (default: off)")
    r.add_argument("--status", metavar="FILE", help="rewrite the lanes' state as JSON here (default: none)")

    s = sub.add_parser("submit", help="queue one change in a lane",
                       description="Drop one change into the controller's inbox. Examples: "
                                   "`enactor lanes submit --lane fast --drain az1` (an emergency: "
                                   "get traffic out of az1), `enactor lanes submit --lane slow "
                                   "--weight az2-lb1=120`.")
    s.add_argument("--lane", required=True, choices=["fast", "slow"], help="fast (emergency) or slow (everyday)")
    s.add_argument("--drain", metavar="AZ", action="append", default=[],
                   help="every load balancer of this availability zone to weight 0 (repeatable)")
    s.add_argument("--weight", metavar="LB=W", action="append", default=[],
                   help="set a load balancer's (or a whole AZ's) weight, e.g. az2-lb1=120 (repeatable)")
    s.add_argument("--endpoint", help="only this endpoint (default: every endpoint of every target)")
    s.add_argument("--note", default="", help="why, for the log")
    _inbox_arg(s)
    q = sub.add_parser("resume", help="resume a halted slow lane",
                       description="Tell the controller the halt is understood: it checks the "
                                   "halted target again and carries on.")
    _inbox_arg(q)
    return p


def _inbox_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inbox", default="lanes-inbox", help="the controller's inbox directory (default lanes-inbox/)")


def _host_port(text: str) -> tuple[str, int]:
    from authd.cli.main import parse_listen

    return parse_listen(text)


def main(argv: list[str]) -> int:
    from authd.clean_exit import Fatal

    args = build_parser().parse_args(argv)
    if args.op == "submit":
        edits: list[dict[str, Any]] = [{"selector": az, "weight": 0} for az in args.drain]
        for w in args.weight:
            sel, _, val = w.partition("=")
            if not sel or not val.isdigit():
                raise Fatal(f"--weight {w!r}: must be LB=W, e.g. az2-lb1=120")
            edits.append({"selector": sel, "weight": int(val)})
        if not edits:
            raise Fatal("nothing to submit: give --drain AZ or --weight LB=W")
        for e in edits:
            e["endpoint"] = args.endpoint
        doc = {"lane": args.lane, "edits": edits, "note": args.note}
        try:
            parse_change(doc)
        except ValueError as exc:
            raise Fatal(str(exc)) from None
        print(submit(args.inbox, doc))
        return 0
    if args.op == "resume":
        print(submit(args.inbox, {"resume": True}))
        return 0
    return run(args)


def run(args: argparse.Namespace) -> int:
    import functools

    import trio

    from authd.clean_exit import Fatal, until_signal
    from enactor.client import Route53Http

    try:
        cfg = ln.LaneConfig(batch_max=args.batch, window=args.window, gather=args.gather,
                            bake=args.bake, period=args.period, step_timeout=args.step_timeout,
                            heartbeat=not args.no_heartbeat)
    except ValueError as exc:
        raise Fatal(str(exc)) from None
    lanes = ln.Lanes(cfg, load_targets(args.targets, args.plans))
    probe = Probe(Route53Http(args.api, args.access_key, args.secret_key), _host_port(args.dns))
    metrics = LaneMetrics()
    if args.metrics:
        metrics.serve(*_host_port(args.metrics))
    ctl = Controller(lanes, probe, Path(args.inbox), poll=args.poll, probe_every=args.probe, metrics=metrics,
                     status=Path(args.status) if args.status else None)
    trio.run(until_signal, "enactor lanes", functools.partial(ctl.run))
    return 0
