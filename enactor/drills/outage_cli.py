"""`enactor outage` and `enactor demo`: the 2025 outage reproduced, and the make-demo pair of
runs (their flags and commands; the run is `enactor.drills.outage`).

Shell. Argument parsing and wiring only; light to import, since `enactor`'s parser is built
for every command.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from enactor import machine as m
from enactor.cli_args import defects_flag, host_port, seconds_flag

RESULTS = Path("results")  # PNGs land here (ignored by git)


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


def add_parsers(sub: Any) -> None:
    """Register `enactor outage` and `enactor demo` on enactor.cli's subparsers."""
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
    p.add_argument("--defects", default=None, type=defects_flag,
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
    p.add_argument("--web", type=host_port, metavar="HOST:PORT",
                   help="serve a live page of the run at http://HOST:PORT/ (server-sent events): "
                        "a lane per enactor, the active plan per endpoint, each authd node's "
                        "answers (default: off)")
    p.add_argument("--pace", type=seconds_flag, metavar="SECONDS",
                   help="wait this long before each schedule step, so a human can follow "
                        "(default: 0.5 with --web, else 0)")
    p.add_argument("--web-linger", type=seconds_flag, metavar="SECONDS",
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
