"""`authd health`: every health check and what DNS currently routes by, as a table.

Trio-free shell over the store: it opens the SQLite store read-only (a running `authd serve`
keeps writing it; WAL lets both work) and prints one line per check, from the statuses the
prober stores on every change, so it answers "why is DNS sending traffic there?" at 3 a.m.:

    ID                TARGET              STATUS     SINCE                 REASON
    hc-0001-ca978112  tcp 127.0.0.1:9001  UNHEALTHY  2026-12-01T20:01:02Z  Failure: Connection refused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from authd.control.api_health import KIND, STATUS_KIND
from authd.health.healthcheck import HealthCheckConfig


def _when(epoch: Any) -> str:
    if not isinstance(epoch, int | float) or epoch <= 0:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(store: Any) -> list[dict[str, Any]]:
    """One row per health check: id, target, status (what DNS routes by), since, reason."""
    statuses = {r.id: r.doc for r in store.list_resources(STATUS_KIND)}
    out = []
    for res in store.list_resources(KIND):
        try:
            cfg = HealthCheckConfig.from_doc(res.doc["config"])
            target = cfg.target
            flags = [n for n, on in (("inverted", cfg.inverted), ("disabled", cfg.disabled)) if on]
        except (KeyError, TypeError, ValueError):
            target, flags = "(unreadable document)", []
        doc = statuses.get(res.id)
        status = "HEALTHY" if doc is None or doc.get("healthy", True) else "UNHEALTHY"
        out.append({
            "id": res.id, "target": target, "status": status, "flags": flags,
            "since": _when(doc.get("since")) if doc else "-",
            "reason": (doc.get("reason") or "not probed yet") if doc else "not probed yet",
        })
    return out


def cmd_health(args: argparse.Namespace) -> int:
    from authd.store.sqlstore import SQLiteStore

    path = Path(args.store)
    if not path.exists():
        print(f"authd health: no store at {path} (give --store FILE, the one `authd serve` uses)",
              file=sys.stderr)
        return 1
    store = SQLiteStore(str(path), readonly=True)
    try:
        table = rows(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    if not table:
        print("no health checks")
        return 0
    header = {"id": "ID", "target": "TARGET", "status": "STATUS", "since": "SINCE", "reason": "REASON"}
    lines = [header] + [{**r, "status": r["status"] + (f" ({', '.join(r['flags'])})" if r["flags"] else "")}
                        for r in table]
    cols = ("id", "target", "status", "since")
    widths = {c: max(len(str(line[c])) for line in lines) for c in cols}
    for line in lines:
        print("  ".join(str(line[c]).ljust(widths[c]) for c in cols) + "  " + str(line["reason"]))
    return 0


def add_subcommand(sub: Any, default_store: str) -> None:
    p = sub.add_parser(
        "health", help="list health checks and the status DNS routes by",
        description="Print every health check with its target, the status DNS currently routes by "
        "(Inverted and Disabled applied), since when, and the last probe's result, read from the "
        "store that `authd serve` writes (safe while it runs).",
    )
    p.add_argument("--store", default=default_store, metavar="FILE",
                   help=f"the SQLite store of the running authd (default {default_store})")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=cmd_health)
