"""`enactor run`: one enactor, as a process (its flags and its command; the loop is
`enactor.runner`).

Shell. Argument parsing and wiring only; every decision lives in the pure modules.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from typing import Any

from enactor import machine as m
from enactor.cli_args import (
    EPILOG_DEFECTS,
    add_api_args,
    api_of,
    defects_flag,
    host_port,
    seconds_flag,
)


def cmd_run(args: argparse.Namespace) -> int:
    from enactor.plan import PlanStore
    from enactor.runner import CRASH_EXIT, run_enactor, run_stepped

    cfg = m.Config(args.name, m.parse_defects(args.defects), lock_ttl=args.lock_ttl,
                   poll_interval=args.poll, keep_plans=args.keep_plans, seed=args.seed,
                   max_changes=args.max_changes)
    plans = PlanStore(args.plans)
    api = api_of(args)
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


def add_parser(sub: Any) -> None:
    """Register `enactor run` on enactor.cli's subparsers."""
    p = sub.add_parser("run", help="run one enactor", epilog=EPILOG_DEFECTS,
                       description="Loop: read the newest plan, lock each endpoint, build its tree, "
                                   "flip, clean. Runs until SIGINT or SIGTERM (exit 0); a crash "
                                   "exits 70 (EX_SOFTWARE) for a supervisor to restart it.")
    p.add_argument("--name", required=True, help="this enactor's name, the lock holder (e.g. enactor-a)")
    p.add_argument("--plans", default="plans", help="the plan store directory (default plans/)")
    add_api_args(p)
    p.add_argument("--defects", default="fixed", type=defects_flag, help="2025 defects to restore (default: fixed)")
    p.add_argument("--lock-ttl", type=float, default=30.0, help="seconds a lock lives after each batch (default 30)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between looks at the plan store (default 1)")
    p.add_argument("--keep-plans", type=int, default=2, help="the cleaner keeps this many newest trees (default 2)")
    p.add_argument("--max-changes", type=int, default=100, help="changes per batch, UPSERT counting twice (default 100)")
    p.add_argument("--seed", type=int, default=0, help="backoff jitter seed (default 0)")
    p.add_argument("--status-dir", help="write <name>.json status here for `enactor status` (default: none)")
    p.add_argument("--stepped", action="store_true",
                   help="one action per 'go' line on stdin, events as JSON lines on stdout (see enactor/runner.py)")
    p.add_argument("--metrics", type=host_port, metavar="HOST:PORT",
                   help="serve Prometheus metrics (locks, flips, cleaner deletions, crashes, "
                        "state) at http://HOST:PORT/metrics (default: off)")
    p.add_argument("--web", type=host_port, metavar="HOST:PORT",
                   help="serve a live page of this enactor's lane (locks, backoffs, flips, "
                        "cleaner deletions, a crash) at http://HOST:PORT/ (default: off)")
    p.add_argument("--web-linger", type=seconds_flag, metavar="SECONDS",
                   help="after a crash, keep the page up this long before exiting 70 "
                        "(default: exit at once, for the supervisor)")
    p.set_defaults(fn=cmd_run)
