"""`enactor gameday`'s flags and command (argument parsing and wiring only; light to import,
since `enactor`'s parser is built for every command). The run is `enactor.drills.gameday_run`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from enactor.drills import gameday as gd
from enactor.drills.gameday import Settings

# --- the command line -----------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Settings()
    p.add_argument("--design", choices=("2025", "fixed"), default="2025",
                   help="2025: the three defects restored (the outage); fixed: the same schedule "
                        "on the fixed design (default 2025)")
    p.add_argument("--speed", type=float, default=d.speed,
                   help=f"schedule seconds per wall-clock second (default {d.speed:g}: about two "
                        "minutes in all)")
    p.add_argument("--clients", type=int, default=d.clients,
                   help=f"clients per layer, half on each endpoint name (default {d.clients})")
    p.add_argument("--rate", type=float, default=d.rate,
                   help=f"queries per second of each client (default {d.rate:g})")
    p.add_argument("--layers", default=",".join(d.layers),
                   help="client layers, comma list of authd (straight at it), resolver (ours), "
                        "unbound, stub (a stub cache in front of ours) (default: all four)")
    p.add_argument("--record-ttl", type=int, default=d.record_ttl,
                   help=f"resolvers and the stub cap positive TTLs at this (default {d.record_ttl} "
                        "s; the trees' leaves carry 60)")
    p.add_argument("--negative-ttl", type=int, default=d.negative_ttl,
                   help=f"the zones' SOA MINIMUM, so the RFC 2308 negative TTL (default "
                        f"{d.negative_ttl} s; the shipped zones say 60)")
    p.add_argument("--stub-negative-ttl", type=int, default=d.stub_negative_ttl,
                   help=f"the stub cache's fixed negative TTL (default {d.stub_negative_ttl} s)")
    p.add_argument("--tail", type=float, default=None,
                   help="seconds to keep sampling after the repair (default: negative TTL + "
                        "record TTL + stub negative TTL + 4)")
    p.add_argument("--plans", type=int, default=12,
                   help="as `enactor outage --plans`: the stuck enactors lose the lock N-1 times "
                        "(default 12)")
    p.add_argument("--json", action="store_true", help="print the JSON summary instead of the table")
    p.add_argument("--png", help="figure path (default results/gameday-<design>.png)")
    p.add_argument("--verbose", action="store_true", help="print every enactor log line as it happens")


def cmd_gameday(args: argparse.Namespace) -> int:
    from authd.clean_exit import Fatal

    layers = tuple(x.strip() for x in args.layers.split(",") if x.strip())
    bad = [x for x in layers if x not in gd.LAYERS]
    if bad or not layers:
        raise Fatal(f"--layers: unknown layer {', '.join(bad) or '(none)'}; use "
                    f"{', '.join(gd.LAYERS)}")
    if args.speed <= 0 or args.clients < 1 or args.rate <= 0:
        raise Fatal("--speed, --clients and --rate must be positive")
    if args.plans < 4:
        raise Fatal("--plans must be at least 4 (the cleaner keeps the newest 2)")
    s = Settings(design=args.design, speed=args.speed, plans=args.plans, layers=layers,
                 clients=args.clients, rate=args.rate, record_ttl=args.record_ttl,
                 negative_ttl=args.negative_ttl, stub_negative_ttl=args.stub_negative_ttl,
                 tail=args.tail)
    png = args.png or str(Path("results") / f"gameday-{args.design}.png")
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    from enactor.drills.gameday_run import run_gameday

    try:
        res = run_gameday(s, png=png, verbose=args.verbose)
    except FileNotFoundError as exc:
        raise Fatal(str(exc)) from None
    if args.json:
        print(json.dumps(res.to_json(), indent=2))
        return 0
    for m in res.marks:
        print(f"{m.t:7.1f} s  {m.text}")
    for a, b in res.authd_spans:
        print(f"authd answered empty from {a:.1f} s to {b:.1f} s (exact: its serving index; "
              f"dig {'confirms' if res.outage.get('transitions_confirmed_by_dig') else 'DISAGREES'})")
    print()
    print(res.table)
    print()
    print(gd.TABLE_COLUMNS)
    print(f"\nfigure: {png}   ({res.end:.0f} s of wall time)")
    return 0


def add_parser(sub: Any) -> None:
    """Register `enactor gameday` on enactor.cli's subparsers."""
    p = sub.add_parser(
        "gameday", help="one game day: the 2025 schedule in real time, clients behind every cache",
        description="Run the 2025 schedule in real time (scaled by --speed) against authd, the "
                    "planner and three enactors, with clients sampling the endpoint names straight "
                    "at authd, through our resolver, through Unbound and through a stub cache; then "
                    "the operator's repair (pause, recover). Prints a table per layer (or --json) "
                    "and writes one figure. About two minutes with the defaults.")
    add_arguments(p)
    p.set_defaults(fn=cmd_gameday)
