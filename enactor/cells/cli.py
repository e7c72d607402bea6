"""`enactor cells`: set up a cell layout on disk, and write or move customers through the API.

Shell (files, the change API). Three operations over `enactor.cells.layout` and `enactor.cells.cellmap`:

    enactor cells init --cells 4 --dir cells/     # zones for authd, each cell's plan-0001,
                                                  # capacity.json, root hints, targets.json (lanes)
    enactor cells map --cells 4 --customers 200 --api URL          # every customer's CNAME + the router
    enactor cells map --cells 4 --api URL --move 111100007919=cell-3   # one CNAME UPSERT
    enactor cells show --cells 4 --customers 200                   # the layout and who is where

After `init`, `authd serve --zones cells/zones` serves every cell's zone, and each cell has
its own planner and enactors, as their own processes on its own files:
`enactor planner --plans cells/cell-3/plans --capacity cells/cell-3/capacity.json` and
`enactor run --name enactor-a --plans cells/cell-3/plans --api URL`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from enactor.cells import cellmap
from enactor.cells.layout import ROOT_HINTS, CellLayout, zone_files
from enactor.plan import PlanStore
from enactor.planner import save_capacity


def _layout(args: argparse.Namespace) -> CellLayout:
    return CellLayout.make(args.cells)


def cmd_init(args: argparse.Namespace) -> int:
    import time

    layout = _layout(args)
    root = Path(args.dir)
    zdir = root / "zones"
    zdir.mkdir(parents=True, exist_ok=True)
    now = float(int(time.time()))
    for fname, doc in zone_files(layout, now).items():
        (zdir / fname).write_text(json.dumps(doc, indent=1) + "\n")
    (root / "root.hints").write_text(ROOT_HINTS)
    # the slow lane rolls out cell by cell over these (enactor lanes --targets FILE)
    (root / "targets.json").write_text(json.dumps(layout.targets_json(str(root)), indent=1) + "\n")
    for c in layout.cells:
        PlanStore(root / c.plan_dir).put(c.first_plan(now))
        # the cell's own capacity file: `enactor planner` without one plans the regional
        # endpoints, which must never land in a cell's plan directory
        save_capacity(root / c.name / "capacity.json", c.capacity())
    print(f"wrote {len(layout.cells)} cells under {root}: zones in {zdir}, per cell "
          f"{root}/cell-N/plans/ and {root}/cell-N/capacity.json")
    for c in layout.cells:
        print(f"  {c.name}: zone {c.zone} endpoints {', '.join(e.rstrip('.') for e in c.endpoints)}")
    return 0


def _parse_moves(layout: CellLayout, moves: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for mv in moves:
        account, sep, cell = mv.partition("=")
        if not sep or not account.isdigit() or len(account) != 12:
            raise ValueError(f"--move {mv!r}: want ACCOUNT=CELL, a 12-digit account id, e.g. 111100007919=cell-3")
        out[account] = layout.find_cell(cell).name
    return out


def cmd_map(args: argparse.Namespace) -> int:
    from enactor.client import Route53Http

    layout = _layout(args)
    moves = _parse_moves(layout, args.move or [])
    cmap = cellmap.CellMap(layout)
    api = Route53Http(args.api)
    if moves:
        moved = cmap
        lines = []
        for account, cell in moves.items():
            lines.append(f"{account}: {cmap.cell_of(account).name} -> {cell}")
            moved = moved.move(account, cell)
        changes = cellmap.customer_changes(moved, list(moves), args.ttl)
        n = cellmap.write_changes(api, layout.customer_zone, changes, "cellmap: move")
        print("\n".join(lines))
        print(f"moved {len(moves)} customer(s) in {n} batch(es); resolvers may keep the old cell for "
              f"up to the old CNAME's TTL")
        return 0
    population = cellmap.accounts(args.customers)
    n = cellmap.write_cellmap(api, cmap, population, router=not args.no_router, ttl=args.ttl)
    counts = {c: len(v) for c, v in cmap.by_cell(population).items()}
    print(f"wrote {len(population)} customer names{'' if args.no_router else ' and the cell router'} "
          f"in {n} batch(es): " + ", ".join(f"{c} {k}" for c, k in counts.items()))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    layout = _layout(args)
    cmap = cellmap.CellMap(layout)
    doc: dict[str, Any] = layout.to_json()
    doc["customers"] = cmap.by_cell(cellmap.accounts(args.customers))
    print(json.dumps(doc, indent=1))
    return 0


def add_parser(sub: Any) -> None:
    """Register `enactor cells` on enactor.cli's subparsers."""
    p = sub.add_parser("cells", help="cells: write a layout's zones and plans, map customers to cells",
                       description="Cells (issue 16): each cell its own zone, endpoints, locks, plan "
                                   "directory and enactors; customers' names are CNAMEs to their cell.")
    csub = p.add_subparsers(dest="cells_cmd", required=True, metavar="{init,map,show}")
    for name, fn, text in (("init", cmd_init, "write the zones (for authd serve --zones) and each cell's plan-0001"),
                           ("map", cmd_map, "write every customer's CNAME and the cell router, or --move some"),
                           ("show", cmd_show, "print the layout and which customer is in which cell")):
        q = csub.add_parser(name, help=text, description=text)
        q.add_argument("--cells", type=int, default=4, metavar="N", help="how many cells (default 4)")
        if name == "init":
            q.add_argument("--dir", default="cells", help="where to write zones/ and cell-N/plans/ (default cells/)")
        if name in ("map", "show"):
            q.add_argument("--customers", type=int, default=200, metavar="N",
                           help="the customer population, accounts 111100007919, ... (default 200)")
        if name == "map":
            q.add_argument("--api", default="http://127.0.0.1:8053", metavar="URL",
                           help="authd's Route 53 change API (default http://127.0.0.1:8053)")
            q.add_argument("--move", action="append", metavar="ACCOUNT=CELL",
                           help="move one customer (repeatable): one CNAME UPSERT each, nothing else")
            q.add_argument("--ttl", type=int, default=cellmap.CNAME_TTL, metavar="SECONDS",
                           help=f"TTL of the customer CNAMEs (default {cellmap.CNAME_TTL}): how long a "
                                "resolver may keep a moved customer on its old cell")
            q.add_argument("--no-router", action="store_true",
                           help="do not write the weighted CNAME router at the regional name")
        q.set_defaults(fn=lambda a, f=fn: _run(f, a))


def _run(fn: Any, args: argparse.Namespace) -> int:
    try:
        return int(fn(args))
    except ValueError as exc:
        print(f"enactor cells: {exc}", file=sys.stderr)
        return 2
