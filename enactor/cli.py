"""The `enactor` command line: run, planner, capacity, outage, demo, status, pause, resume, recover.

Shell. Argument parsing and wiring only; every decision lives in the pure modules.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

from authd.logsafe import setup_logging
from enactor import machine as m

RESULTS = Path("results")  # PNGs land here (ignored by git)
EPILOG_DEFECTS = (
    "defects: comma-separated list of stale-check-before-lock, cleaner-by-age, "
    "rollback-crash-on-missing; '2025' for all of them; 'fixed' (the default) for none."
)


def _defects(text: str) -> str:
    try:
        m.parse_defects(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _seconds(text: str) -> float:
    """A non-negative number of seconds (--pace, --web-linger)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return value


def _api_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", default="http://127.0.0.1:8053", metavar="URL",
                   help="the Route 53 control API of authd (default http://127.0.0.1:8053)")
    p.add_argument("--access-key", default="test", help="SigV4 access key id (default test)")
    p.add_argument("--secret-key", default="test", help="SigV4 secret key (default test)")


def _host_port(text: str) -> tuple[str, int]:
    from authd.cli.main import parse_listen

    return parse_listen(text)


def _api(args: argparse.Namespace) -> Any:
    from enactor.client import Route53Http

    return Route53Http(args.api, args.access_key, args.secret_key)


# --- run -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from enactor.plan import PlanStore
    from enactor.runner import CRASH_EXIT, run_enactor, run_stepped

    cfg = m.Config(args.name, m.parse_defects(args.defects), lock_ttl=args.lock_ttl,
                   poll_interval=args.poll, keep_plans=args.keep_plans, seed=args.seed,
                   max_changes=args.max_changes)
    plans = PlanStore(args.plans)
    api = _api(args)
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {cfg.name} starting "
          f"(defects: {m.defects_text(cfg.defects)}, plans: {args.plans}, api: {args.api})",
          file=sys.stderr, flush=True)
    if args.stepped:
        return run_stepped(cfg, api, plans, inp=sys.stdin, out=sys.stdout, status_dir=args.status_dir)
    import traceback

    import trio

    from authd.clean_exit import leaves, until_signal

    observe = None
    if args.metrics:
        from enactor.metrics import (
            EnactorCounts,
            crash_file,
            load_crashes,
            record_crash,
            serve_metrics,
        )

        counts = EnactorCounts(cfg.name, crashes=load_crashes(crash_file(args.status_dir, cfg.name)))
        serve_metrics(counts, *args.metrics)
        observe = counts.observe
    body: Any = functools.partial(run_enactor, cfg, api, plans, status_dir=args.status_dir,
                                  observe=observe)
    if args.web:  # its own lane, live (enactor.drills.web)
        from enactor.drills.web import endpoints_of, run_with_page

        body = functools.partial(
            run_with_page, cfg.name, *args.web, args.web_linger,
            lambda obs: run_enactor(cfg, api, plans, status_dir=args.status_dir, observe=obs),
            endpoints_of(plans), chained=observe)
    try:
        trio.run(until_signal, f"enactor run ({cfg.name})", body)
    except Exception as exc:
        if all(isinstance(e, KeyboardInterrupt) for e in leaves(exc)):
            raise  # a stop that came before the signal watcher: one line, exit 0
        from authd.clean_exit import Fatal

        if all(isinstance(e, Fatal) for e in leaves(exc)):
            raise  # bad input (--web's port in use): one line, exit 2, not a crash
        if args.metrics:
            record_crash(counts, crash_file(args.status_dir, cfg.name))
        traceback.print_exc()  # a crash: the supervisor (or the outage runner) restarts us
        return CRASH_EXIT
    return 0


# --- planner and capacity -----------------------------------------------------------------


def cmd_planner(args: argparse.Namespace) -> int:
    from enactor.plan import PlanStore
    from enactor.planner import churn, default_capacity, emit, load_capacity, save_capacity

    store = PlanStore(args.plans)
    if args.stepped:
        # One plan per line on stdin (a controller decides when capacity "changes").
        for _line in sys.stdin:
            latest = store.latest()
            n = latest.number + 1 if latest else 1
            plan = emit(store, churn(latest.endpoints if latest else default_capacity(), n),
                        time.time(), force=True)
            assert plan is not None
            print(json.dumps({"plan": plan.number, "file": str(store.path(plan.number))}), flush=True)
        return 0
    cap_path = Path(args.capacity) if args.capacity else None
    if cap_path is not None and not cap_path.exists():
        save_capacity(cap_path, default_capacity())
        print(f"planner: wrote the default capacity to {cap_path}", file=sys.stderr)
    last_mtime = -1.0
    last_emit = 0.0
    while True:
        cap = load_capacity(cap_path) if cap_path else default_capacity()
        mtime = cap_path.stat().st_mtime if cap_path else 0.0
        due = args.every is not None and time.time() - last_emit >= args.every
        if mtime != last_mtime or due:
            latest = store.latest()
            if due and latest is not None and latest.endpoints == cap:
                cap = churn(cap, latest.number + 1)
            plan = emit(store, cap, time.time(), force=due)
            if plan is not None:
                print(f"{time.strftime('%H:%M:%S')} planner wrote {plan.label} "
                      f"({store.path(plan.number)})", file=sys.stderr, flush=True)
                last_emit = time.time()
            last_mtime = mtime
        if args.once:
            return 0
        time.sleep(0.5)


def cmd_capacity(args: argparse.Namespace) -> int:
    from enactor.plan import LoadBalancer
    from enactor.planner import (
        add_capacity,
        default_capacity,
        drain_az,
        load_capacity,
        save_capacity,
        shift_weight,
    )

    path = Path(args.capacity)
    cap = load_capacity(path) if path.exists() and args.op != "init" else default_capacity()
    try:
        if args.op == "add":
            cap = add_capacity(cap, args.endpoint, LoadBalancer(args.lb, args.ipv4, args.ipv6, args.weight))
        elif args.op == "shift":
            cap = shift_weight(cap, args.lb, args.weight, args.endpoint)
        elif args.op == "drain":
            cap = drain_az(cap, args.az, args.endpoint)
    except ValueError as exc:
        from authd.clean_exit import Fatal

        raise Fatal(str(exc)) from None  # bad input: one line, exit 2
    save_capacity(path, cap)
    for e in cap:
        lbs = ", ".join(f"{lb.name}={lb.weight}" for lb in e.load_balancers)
        print(f"{e.name}: {lbs}")
    return 0


# --- outage and demo ---------------------------------------------------------------------------


def png_name(defects: str, *, typo: bool = False, inprocess: bool = False,
             schedule: str | None = None) -> str:
    """One file per kind of run, the variant in the name, so no run overwrites another's:
    outage-2025.png, outage-2025-inprocess.png, outage-typo-fixed.png,
    outage-2025-schedule-cx.png (replaying cx.json). `--json` is the same run as without it."""
    name = "outage-" + ("typo-" if typo else "") + m.defects_text(m.parse_defects(defects)).replace(",", "+")
    if schedule:
        name += "-schedule-" + re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(schedule).stem)
    if inprocess:
        name += "-inprocess"
    return name + ".png"


def cmd_outage(args: argparse.Namespace) -> int:
    from enactor.checker.schedule import load_schedule, schedule_2025
    from enactor.drills.outage import run_outage

    if args.plans < 4:
        print("enactor outage: --plans must be at least 4 (b and c are stuck on plan 2; the "
              "cleaner keeps the newest 2)", file=sys.stderr)
        return 2
    if args.cells:  # the blast-radius experiment (issue 16): enactor/cells/outage.py
        from enactor.cells.outage import cli as cells_cli

        return cells_cli(args, RESULTS)
    sched = load_schedule(args.schedule) if args.schedule else schedule_2025(args.plans, typo=args.typo)
    if args.write_schedule:
        sched.dump(args.write_schedule)
        print(f"wrote {args.write_schedule}", file=sys.stderr)
        return 0
    from enactor.drills.outage import schedule_settings

    defects = args.defects or schedule_settings(sched)[0] or "2025"
    png = args.png or str(RESULTS / png_name(defects, typo=args.typo, inprocess=args.inprocess,
                                             schedule=args.schedule))
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    if args.nodes > 1 and not str(args.store or "").startswith(("postgresql://", "postgres://")):
        print("enactor outage: --nodes > 1 needs --store postgresql://USER@HOST:PORT/DB", file=sys.stderr)
        return 2
    def run(live: Any = None) -> Any:
        return run_outage(args.defects, sched, inprocess=args.inprocess, png=png, verbose=args.verbose,
                          store=args.store, nodes=args.nodes, node_delay=args.node_delay, live=live)

    def show(res: Any) -> None:
        if args.json:
            print(json.dumps({**res.summary, "png": png}, indent=2))
        else:
            print(res.report)
            print(f"timeline PNG: {png}")
        sys.stdout.flush()

    pace = args.pace if args.pace is not None else (0.5 if args.web else 0.0)
    if args.web:  # the live page (enactor.drills.web): the same run, served as it happens
        from enactor.drills.web import serve_outage

        return serve_outage(run, *args.web, pace=pace, linger=args.web_linger, on_result=show)
    if pace > 0:
        import threading

        from enactor.drills.web import LiveRun

        show(run(LiveRun(None, pace, threading.Event())))
        return 0
    show(run())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from enactor.checker.schedule import schedule_2025
    from enactor.drills.outage import run_outage

    drop = ("; <<>>", "; (1 server", ";; global", ";; Got answer", ";; Query time", ";; SERVER",
            ";; WHEN", ";; MSG SIZE", ";; OPT", "; EDNS")

    def dig_at(res: Any, key: str, index: int) -> str:
        texts = [t for _, k, t in res.digs if k == key]
        if not texts:
            return "(no dig output: run without --inprocess to see real dig)"
        name, rtype = key.split(" ")
        port = str(res.summary.get("dns", ":")).rsplit(":", 1)[-1]
        body = "\n".join(ln for ln in texts[index].splitlines() if ln.strip() and not ln.startswith(drop))
        return f"$ dig @127.0.0.1 -p {port} +norecurse {name} {rtype}\n{body}"

    sched = schedule_2025(args.plans)
    print("=" * 100)
    print("PART 1: the 2025 design (--defects 2025). enactor-c (dynamodb.us-east-1.api.aws) and")
    print("enactor-b (the regional dynamodb.us-east-1.amazonaws.com) lose the lock again and again,")
    print("then flip to their ancient plan; enactor-a's cleaner deletes that tree; every enactor")
    print("then crashes on the rollback update. Real processes, real dig, virtual schedule time.")
    print("=" * 100)
    RESULTS.mkdir(exist_ok=True)
    bad_png = str(RESULTS / png_name("2025", inprocess=args.inprocess))
    good_png = str(RESULTS / png_name("fixed", inprocess=args.inprocess))
    bad = run_outage("2025", sched, inprocess=args.inprocess, png=bad_png)
    print(bad.report)
    print("\nBefore the race, real dig gets an answer:")
    print(dig_at(bad, "dynamodb.us-east-1.api.aws. A", 0))
    print("\nAt the end of the run (every enactor crashed; nothing will repair it):")
    for key in ("dynamodb.us-east-1.amazonaws.com. A", "dynamodb.us-east-1.api.aws. A",
                "dynamodb.us-east-1.api.aws. AAAA"):
        print(dig_at(bad, key, -1))
        print()
    print(f"timeline PNG: {bad_png}")
    print()
    print("=" * 100)
    print("PART 2: the fixed design, the SAME schedule: fenced flip refuses to go backwards,")
    print("the cleaner deletes by reachability, nothing flows as nothing.")
    print("=" * 100)
    good = run_outage("fixed", sched, inprocess=args.inprocess, png=good_png)
    print(good.report)
    print("\nAt the end of the run:")
    for key in ("dynamodb.us-east-1.api.aws. A", "dynamodb.us-east-1.api.aws. AAAA"):
        print(dig_at(good, key, -1))
        print()
    print(f"timeline PNG: {good_png}")
    ok = bad.summary["empty_at_end"] and not good.summary["ever_empty"]
    how = "zero possible answers (in-process)" if args.inprocess else "NOERROR / ANSWER: 0 from real dig"
    print("\nRESULT: " + (f"reproduced: the 2025 design ends with {how}; the fixed design never went empty"
                          if ok else "UNEXPECTED: see the timelines above"))
    return 0 if ok else 1


# --- operator tools: status, pause, resume, recover ------------------------------------------


def _endpoints(args: argparse.Namespace) -> list[Any]:
    from enactor.plan import PlanStore
    from enactor.planner import default_capacity

    latest = PlanStore(args.plans).latest() if args.plans else None
    return list(latest.endpoints if latest else default_capacity())


def cmd_status(args: argparse.Namespace) -> int:
    from enactor.checker.sim import addresses
    from enactor.plan import lock_name, plan_label, rollback_name, root_plan

    api = _api(args)
    rows = []
    for e in _endpoints(args):
        zid = api.find_zone_by_name(e.zone).id

        def plan_at(name: str, zid: str = zid, e: Any = e) -> str:
            sets = api.get_record_sets(zid, name, "A")
            if not sets:
                return "none"
            n = root_plan(sets[0].alias.dns_name, e.name) if sets[0].alias else None
            return plan_label(n) if n is not None else f"?? {sets[0].alias.dns_name if sets[0].alias else sets[0].values}"
        lock = api.get_record_sets(zid, lock_name(e.name), "TXT")
        holder = "free"
        if lock:
            parsed = m.parse_lock(lock[0].values[0])
            holder = f"{parsed[0]} until {m.clock_text(parsed[1])}" if parsed else f"?? {lock[0].values}"
            if parsed and parsed[0].startswith(m.PAUSE_PREFIX):
                holder = f"PAUSED ({parsed[0]})"
        counts = {t: len(addresses(api, zid, e.name, t)) for t in e.rtypes}
        rows.append({"endpoint": e.name, "active": plan_at(e.name), "rollback": plan_at(rollback_name(e.name)),
                     "lock": holder, "answers": counts})
    enactors = []
    if args.status_dir and Path(args.status_dir).is_dir():
        for p in sorted(Path(args.status_dir).glob("*.json")):
            enactors.append(json.loads(p.read_text()))
    if args.json:
        print(json.dumps({"endpoints": rows, "enactors": enactors}, indent=2))
        return 0
    for r in rows:
        ans = ", ".join(f"{t}: {n}{' EMPTY' if n == 0 else ''}" for t, n in r["answers"].items())
        print(f"{r['endpoint']}\n  active {r['active']}   rollback {r['rollback']}   lock {r['lock']}   answers {ans}")
    for d in enactors:
        err = f"   last error: {d['last_error']}" if d.get("last_error") else ""
        print(f"{d['name']:<10} {d['status']:<12} defects={d['defects']:<6} plan={d.get('plan')} "
              f"phase={d.get('phase')}{err}")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    from authd.store.contract import Action, Change, InvalidChangeBatch
    from enactor.plan import lock_name

    api = _api(args)
    for e in _endpoints(args):
        zid = api.find_zone_by_name(e.zone).id
        cur = api.get_record_sets(zid, lock_name(e.name), "TXT")
        if args.resume:
            if cur and (p := m.parse_lock(cur[0].values[0])) and p[0].startswith(m.PAUSE_PREFIX):
                api.change_batch(zid, [Change(Action.DELETE, cur[0])], "resume enactors")
                print(f"{e.name}: resumed (was {p[0]})")
            else:
                print(f"{e.name}: not paused")
            continue
        value = m.lock_value(f"{m.PAUSE_PREFIX}{args.by}", 4102444800)  # 2100-01-01
        # Taking the lock from whoever holds it fences them: their next batch fails.
        changes = ([Change(Action.DELETE, cur[0])] if cur else []) + [Change(Action.CREATE, m.lock_record(e.name, value))]
        try:
            api.change_batch(zid, changes, f"pause enactors ({args.by})")
        except InvalidChangeBatch as exc:
            print(f"{e.name}: could not pause, the lock changed meanwhile ({exc}); run it again", file=sys.stderr)
            return 1
        print(f"{e.name}: PAUSED by {args.by}; DNS stays as it is until `enactor resume`")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    """Install plan N's tree and flip to it through the API, without any enactor."""
    from authd.clean_exit import Fatal
    from authd.store.contract import Action, Change
    from enactor.machine import alias_to, chunk, tree_records
    from enactor.plan import PlanStore, lock_name, rollback_name, root_name, root_plan

    plan = PlanStore(args.plans).find(args.plan)
    api = _api(args)
    # Running enactors would flip an unpaused endpoint straight back to the newest plan (the
    # 2025 operators disabled the automation first): recover only what `enactor pause` froze.
    unpaused = []
    for e in plan.endpoints:
        zid = api.find_zone_by_name(e.zone).id
        cur = api.get_record_sets(zid, lock_name(e.name), "TXT")
        holder = m.parse_lock(cur[0].values[0]) if cur else None
        if not (holder and holder[0].startswith(m.PAUSE_PREFIX)):
            unpaused.append(f"{e.name} (lock: {holder[0] if holder else 'free'})")
    if unpaused and not args.force:
        raise Fatal(f"refusing to recover: not paused: {', '.join(unpaused)}; running enactors "
                    "would flip it back to the newest plan. Run `enactor pause --by NAME` first "
                    "(or give --force)")
    for e in plan.endpoints:
        zid = api.find_zone_by_name(e.zone).id
        leaves, members = tree_records(plan, e, zid)
        for b in chunk([Change(Action.UPSERT, rs) for rs in leaves + members], 900):
            api.change_batch(zid, b, f"recover: install {plan.label}")
        cur = api.get_record_sets(zid, e.name, "A")
        prev = root_plan(cur[0].alias.dns_name, e.name) if cur and cur[0].alias else None
        changes = [Change(Action.UPSERT, alias_to(e.name, t, root_name(plan.number, e.name), zid)) for t in e.rtypes]
        if prev is not None and prev != plan.number and api.get_record_sets(zid, root_name(prev, e.name), e.rtypes[0]):
            changes += [Change(Action.UPSERT, alias_to(rollback_name(e.name), t, root_name(prev, e.name), zid)) for t in e.rtypes]
        api.change_batch(zid, changes, f"recover: flip to {plan.label}")
        print(f"{e.name}: installed {plan.label} and flipped to it"
              + ("" if not unpaused else " (NOT paused: enactors may flip it again)"))
    if not unpaused:
        print("the enactors stay paused: `enactor resume` lets them install the newest plan again")
    return 0


# --- the parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from authd.clean_exit import OneLineParser

    parser = OneLineParser(
        prog="enactor",
        description="The DynamoDB DNS planner and enactors (TXT-record lock, tree build, fenced "
                    "flip, rollback, cleaner), and the October 2025 outage, reproduced.",
        epilog=EPILOG_DEFECTS)
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run one enactor", epilog=EPILOG_DEFECTS,
                       description="Loop: read the newest plan, lock each endpoint, build its tree, "
                                   "flip, clean. Runs until SIGINT or SIGTERM (exit 0); a crash "
                                   "exits 70 (EX_SOFTWARE) for a supervisor to restart it.")
    p.add_argument("--name", required=True, help="this enactor's name, the lock holder (e.g. enactor-a)")
    p.add_argument("--plans", default="plans", help="the plan store directory (default plans/)")
    _api_args(p)
    p.add_argument("--defects", default="fixed", type=_defects, help="2025 defects to restore (default: fixed)")
    p.add_argument("--lock-ttl", type=float, default=30.0, help="seconds a lock lives after each batch (default 30)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between looks at the plan store (default 1)")
    p.add_argument("--keep-plans", type=int, default=2, help="the cleaner keeps this many newest trees (default 2)")
    p.add_argument("--max-changes", type=int, default=100, help="changes per batch, UPSERT counting twice (default 100)")
    p.add_argument("--seed", type=int, default=0, help="backoff jitter seed (default 0)")
    p.add_argument("--status-dir", help="write <name>.json status here for `enactor status` (default: none)")
    p.add_argument("--stepped", action="store_true",
                   help="one action per 'go' line on stdin, events as JSON lines on stdout (see enactor/runner.py)")
    p.add_argument("--metrics", type=_host_port, metavar="HOST:PORT",
                   help="serve Prometheus metrics (locks, flips, cleaner deletions, crashes, "
                        "state) at http://HOST:PORT/metrics (default: off)")
    p.add_argument("--web", type=_host_port, metavar="HOST:PORT",
                   help="serve a live page of this enactor's lane (locks, backoffs, flips, "
                        "cleaner deletions, a crash) at http://HOST:PORT/ (default: off)")
    p.add_argument("--web-linger", type=_seconds, metavar="SECONDS",
                   help="after a crash, keep the page up this long before exiting 70 "
                        "(default: exit at once, for the supervisor)")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("planner", help="write plan N+1 whenever the capacity input changes",
                       description="Watch the capacity file and write plans/plan-NNNN.json (the "
                                   "next version) whenever it changes, or every --every seconds. "
                                   "Runs until SIGINT or SIGTERM.")
    p.add_argument("--plans", default="plans", help="the plan store directory (default plans/)")
    p.add_argument("--capacity", help="capacity JSON file to watch, created with the defaults if "
                                      "missing (default: none, the built-in capacity)")
    p.add_argument("--every", type=float, help="also write a plan every this many seconds, a steady "
                                               "rate (default: only on changes)")
    p.add_argument("--once", action="store_true", help="write at most one plan and exit")
    p.add_argument("--stepped", action="store_true", help="write one plan per line on stdin (for controllers)")
    p.set_defaults(fn=cmd_planner)

    p = sub.add_parser("capacity", help="edit the capacity input: init, show, add, shift, drain",
                       description="Edit the planner's input file: init (the defaults), show, add "
                                   "a load balancer, shift one's weight, drain an availability "
                                   "zone (its load balancers to weight 0). Prints the result.")
    p.add_argument("op", choices=["init", "show", "add", "shift", "drain"], help="what to do")
    p.add_argument("--capacity", default="capacity.json", help="the capacity file (default capacity.json)")
    p.add_argument("--endpoint", help="the endpoint (default: all, for shift and drain)")
    p.add_argument("--lb", help="load balancer name, e.g. az2-lb2 (add, shift)")
    p.add_argument("--ipv4", help="the new load balancer's IPv4 address (add)")
    p.add_argument("--ipv6", help="the new load balancer's IPv6 address (add; default: none)")
    p.add_argument("--weight", type=int, default=100, help="weight for add and shift (default 100)")
    p.add_argument("--az", help="availability zone to drain, e.g. az1")
    p.set_defaults(fn=cmd_capacity)

    p = sub.add_parser(
        "outage", help="reproduce the October 2025 outage with real processes and dig",
        description="Start authd, the planner and three enactors as real processes on loopback "
                    "and drive a deterministic schedule over them (the 2025 race by default, "
                    "--typo, or --schedule FILE), sampling DNS with real dig. Prints the "
                    "timeline (or --json) and writes a PNG under results/. Schedule time is "
                    "virtual (from 06:00:00 UTC), so every run is the same; it takes about 10 s.",
        epilog="defects: comma-separated list of stale-check-before-lock, cleaner-by-age, "
               "rollback-crash-on-missing; '2025' for all of them; 'fixed' for none. The "
               "default here is what the schedule file names (a checker counterexample does), "
               "else 2025.")
    p.add_argument("--defects", default=None, type=_defects,
                   help="default: what the schedule file says (a checker counterexample names its "
                        "defects), else 2025; 'fixed' for the fixed design")
    p.add_argument("--typo", action="store_true", help="no race: an operator deletes the active tree by hand")
    p.add_argument("--plans", type=int, default=12,
                   help="the fault injection: enactor-c and enactor-b, stuck on plan 2, lose "
                        "their endpoint's lock N-1 times while enactor-a installs plans 3..N "
                        "(default 12)")
    p.add_argument("--schedule", metavar="FILE",
                   help="replay this schedule file instead, e.g. the checker's counterexample "
                        "(default: the built-in 2025 schedule)")
    p.add_argument("--write-schedule", metavar="FILE", help="write the schedule as JSON and exit")
    p.add_argument("--json", action="store_true", help="print the JSON summary instead of the timeline")
    p.add_argument("--png", help="timeline PNG path (default results/outage-<variant>.png: "
                                 "defects, typo, schedule and --inprocess in the name)")
    p.add_argument("--inprocess", action="store_true",
                   help="run the schedule in-process over MemoryStore (no processes, no dig)")
    p.add_argument("--verbose", action="store_true", help="print every enactor log line as it happens")
    p.add_argument("--store", metavar="URL",
                   help="postgresql://USER@HOST:PORT/DB: run the authd nodes on a fresh database in "
                        "this server (created and dropped by the run; needs CREATEDB)")
    p.add_argument("--nodes", type=int, default=1,
                   help="authd nodes on 127.0.0.2, 127.0.0.3, ... (needs --store); each enactor talks "
                        "to a different one, and every sample digs every node (default 1)")
    p.add_argument("--node-delay", type=float, default=2.0, metavar="SECONDS",
                   help="propagation delay of the last node (default 2): the empty answer reaches it last")
    p.add_argument("--cells", type=int, default=0, metavar="N",
                   help="the blast-radius experiment: N cells, each its own zone, locks, plans and "
                        "enactors; the 2025 schedule in --defect-cell only; clients resolve through a "
                        "real resolver; then the same schedule with no cells (default: no cells)")
    p.add_argument("--defect-cell", type=int, default=2, metavar="K",
                   help="with --cells: the cell whose enactors get the 2025 schedule (default 2)")
    p.add_argument("--customers", type=int, default=200, metavar="N",
                   help="with --cells: customer names resolved at every sample, and as many clients "
                        "of the regional name (default 200)")
    p.add_argument("--web", type=_host_port, metavar="HOST:PORT",
                   help="serve a live page of the run at http://HOST:PORT/ (server-sent events): "
                        "a lane per enactor, the active plan per endpoint, each authd node's "
                        "answers (default: off)")
    p.add_argument("--pace", type=_seconds, metavar="SECONDS",
                   help="wait this long before each schedule step, so a human can follow "
                        "(default: 0.5 with --web, else 0)")
    p.add_argument("--web-linger", type=_seconds, metavar="SECONDS",
                   help="with --web, keep the page up this long after the run, then exit "
                        "(default: until Ctrl-C)")
    p.set_defaults(fn=cmd_outage)

    p = sub.add_parser("demo", help="the 2025 run then the fixed run, with dig output (make demo)",
                       description="`make demo`: the 2025 schedule with the 2025 defects (the "
                                   "outage, with real dig output), then the same schedule on the "
                                   "fixed design. Exit 0 when the first goes empty and the "
                                   "second never does.")
    p.add_argument("--plans", type=int, default=12, help="as `enactor outage --plans` (default 12)")
    p.add_argument("--inprocess", action="store_true", help="no processes, no dig")
    p.set_defaults(fn=cmd_demo)

    for name, fn, helptext, desc in (
            ("status", cmd_status, "per endpoint: active plan, rollback, lock, answers; each enactor's state",
             "Read every endpoint through the change API: the plan its alias points at, the "
             "rollback record's plan, who holds the lock (PAUSED when paused) and how many "
             "addresses each record type resolves to (EMPTY at zero); then each enactor's "
             "status file."),
            ("pause", cmd_pause, "pause every enactor: DNS stays as it is",
             "Take every endpoint's lock for PAUSED-<by> until 2100: enactors back off and DNS "
             "stays exactly as it is. Whoever held a lock is fenced (its next batch fails)."),
            ("resume", cmd_pause, "resume the enactors after `enactor pause`",
             "Delete the pause locks `enactor pause` took; the enactors then install the newest "
             "plan.")):
        p = sub.add_parser(name, help=helptext, description=desc)
        _api_args(p)
        p.add_argument("--plans", default="plans", help="plan store, for the endpoint list (default plans/)")
        if name == "status":
            p.add_argument("--status-dir", default="status", help="where enactors write their status (default status/)")
            p.add_argument("--json", action="store_true", help="print one JSON document")
        if name == "pause":
            p.add_argument("--by", default="operator", help="who pauses, shown to everyone (default operator)")
        p.set_defaults(fn=fn, resume=name == "resume")

    from enactor.drills.gameday_cli import add_arguments as gameday_arguments
    from enactor.drills.gameday_cli import cmd_gameday

    p = sub.add_parser(
        "gameday", help="one game day: the 2025 schedule in real time, clients behind every cache",
        description="Run the 2025 schedule in real time (scaled by --speed) against authd, the "
                    "planner and three enactors, with clients sampling the endpoint names straight "
                    "at authd, through our resolver, through Unbound and through a stub cache; then "
                    "the operator's repair (pause, recover). Prints a table per layer (or --json) "
                    "and writes one figure. About two minutes with the defaults.")
    gameday_arguments(p)
    p.set_defaults(fn=cmd_gameday)

    from enactor.cells.cli import add_parser as add_cells_parser  # issue 16: enactor/cells/cli.py

    add_cells_parser(sub)
    sub.add_parser(
        "check",
        help="explore interleavings of the real enactor code for violations (enactor check --help)",
        add_help=False,
    )
    sub.add_parser(
        "lanes",
        help="the fast and slow lanes: run, submit, resume (enactor lanes --help)",
        description="The fast and slow lanes for changes (issue 16); see `enactor lanes --help`.",
        add_help=False,
    )
    p = sub.add_parser(
        "recover", help="install plan N's tree and flip to it directly through the API",
        description="The operator's repair: install plan N's tree and flip every endpoint's "
                    "alias to it through the change API, no enactor needed. Pause first "
                    "(`enactor pause`): it refuses while an endpoint is not paused, because "
                    "running enactors would flip it back to the newest plan. Resume afterwards.")
    _api_args(p)
    p.add_argument("--plan", type=int, required=True, help="the known-good plan number")
    p.add_argument("--plans", default="plans", help="the plan store directory (default plans/)")
    p.add_argument("--force", action="store_true",
                   help="recover even though enactors are not paused (they may flip it again)")
    p.set_defaults(fn=cmd_recover)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Every `enactor` command: a stop (SIGINT, SIGTERM) is one line and exit 0; an expected
    failure (bad plan or schedule file, bad flag, authd not reachable) one line and exit 2."""
    from authd.clean_exit import run_main
    from enactor.checker.schedule import ScheduleError
    from enactor.client import ApiUnavailable
    from enactor.plan import PlanError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:  # the interleaving checker (issue 6) parses its own flags
        from enactor.checker.check import main as check_main

        return run_main("enactor check", lambda: check_main(argv[1:]))
    if argv[:1] == ["lanes"]:  # the fast and slow lanes (issue 16) parse their own flags
        from enactor.lanes.lanectl import main as lanes_main

        return run_main("enactor lanes", lambda: lanes_main(argv[1:]), (PlanError, ApiUnavailable))
    args = build_parser().parse_args(argv)
    setup_logging(logging.WARNING)  # library log lines escaped too (authd.logsafe, issue 10)
    return run_main(f"enactor {args.cmd}", lambda: int(args.fn(args)),
                    (PlanError, ScheduleError, ApiUnavailable))
