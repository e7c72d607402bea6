"""`enactor status`, `pause`, `resume` and `recover`: the operator's tools, straight through the
change API (their flags and commands).

Shell. Argument parsing and wiring only; every decision lives in the pure modules.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from enactor import machine as m
from enactor.cli_args import add_api_args, api_of


def _endpoints(args: argparse.Namespace) -> list[Any]:
    from enactor.plan import PlanStore
    from enactor.planner import default_capacity

    latest = PlanStore(args.plans).latest() if args.plans else None
    return list(latest.endpoints if latest else default_capacity())


def cmd_status(args: argparse.Namespace) -> int:
    from enactor.checker.sim import addresses
    from enactor.plan import lock_name, plan_label, rollback_name, root_plan

    api = api_of(args)
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

    api = api_of(args)
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
    api = api_of(args)
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


def add_parsers(sub: Any) -> None:
    """Register `enactor status`, `pause` and `resume` on enactor.cli's subparsers."""
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
        add_api_args(p)
        p.add_argument("--plans", default="plans", help="plan store, for the endpoint list (default plans/)")
        if name == "status":
            p.add_argument("--status-dir", default="status", help="where enactors write their status (default status/)")
            p.add_argument("--json", action="store_true", help="print one JSON document")
        if name == "pause":
            p.add_argument("--by", default="operator", help="who pauses, shown to everyone (default operator)")
        p.set_defaults(fn=fn, resume=name == "resume")


def add_recover_parser(sub: Any) -> None:
    """Register `enactor recover` on enactor.cli's subparsers."""
    p = sub.add_parser(
        "recover", help="install plan N's tree and flip to it directly through the API",
        description="The operator's repair: install plan N's tree and flip every endpoint's "
                    "alias to it through the change API, no enactor needed. Pause first "
                    "(`enactor pause`): it refuses while an endpoint is not paused, because "
                    "running enactors would flip it back to the newest plan. Resume afterwards.")
    add_api_args(p)
    p.add_argument("--plan", type=int, required=True, help="the known-good plan number")
    p.add_argument("--plans", default="plans", help="the plan store directory (default plans/)")
    p.add_argument("--force", action="store_true",
                   help="recover even though enactors are not paused (they may flip it again)")
    p.set_defaults(fn=cmd_recover)
