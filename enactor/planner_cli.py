"""`enactor planner` and `enactor capacity`: the planner as a process, and edits of its
capacity input (their flags and commands; the rules are `enactor.planner`).

Shell. Argument parsing and wiring only; every decision lives in the pure modules.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


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


def add_parsers(sub: Any) -> None:
    """Register `enactor planner` and `enactor capacity` on enactor.cli's subparsers."""
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
