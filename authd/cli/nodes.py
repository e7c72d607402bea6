"""`authd nodes`: every authd node registered in a PostgreSQL store, its journal position, its
lag behind the journal head, its last heartbeat, and whether INSYNC waits for it (shell).

The rules (who counts) are `authd.store.nodes`; this only reads the `nodes` table and prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def add_subcommand(sub: Any) -> None:
    p = sub.add_parser(
        "nodes", help="list the authd nodes sharing a PostgreSQL store",
        description="Every node registered in the store: NODE, STATE (LIVE: GetChange INSYNC "
        "waits for it; SILENT: no heartbeat for longer than --node-timeout, not counted), the "
        "journal SEQ it serves, its LAG behind the journal head, its last HEARTBEAT, and its "
        "DNS and CONTROL addresses.",
    )
    p.add_argument("--store", default=os.environ.get("AUTHD_STORE"), metavar="URL",
                   help="postgresql://USER@HOST:PORT/DB (default $AUTHD_STORE)")
    p.add_argument("--node-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="silent longer than this = not counted (default 10, as `authd serve`)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--forget", metavar="NODE",
                   help="remove this node's row (a retired machine; a running node re-registers)")
    p.set_defaults(func=cmd_nodes)


def cmd_nodes(args: argparse.Namespace) -> int:
    if not args.store or not str(args.store).startswith(("postgresql://", "postgres://")):
        print("authd nodes: give --store postgresql://USER@HOST:PORT/DB (nodes register only "
              "in a PostgreSQL store)", file=sys.stderr)
        return 2
    from psycopg.errors import UndefinedTable

    from authd.store.contract import StoreError
    from authd.store.nodes import state_of, table
    from authd.store.pgnodes import NodeRegistry

    registry = NodeRegistry(args.store)
    try:
        if args.forget:
            if not registry.forget(args.forget):
                print(f"authd nodes: no node named {args.forget}", file=sys.stderr)
                return 1
            print(f"forgot node {args.forget}")
            return 0
        rows, head = registry.rows(), registry.head()
    except StoreError as exc:
        print(f"authd nodes: {exc}", file=sys.stderr)
        return 1
    except UndefinedTable:
        print("authd nodes: no authd tables in this database (no node has run on it yet)", file=sys.stderr)
        return 1
    finally:
        registry.close()
    if args.json:
        print(json.dumps({"head": head, "nodes": [
            {"name": r.name, "state": state_of(r, args.node_timeout).value, "seq": r.seq,
             "lag": max(0, head - r.seq), "heartbeat_age": round(r.age, 3), "dns": r.dns,
             "control": r.control, "uptime": round(r.uptime, 3)}
            for r in rows]}, indent=2))
    else:
        print("\n".join(table(rows, head, args.node_timeout)))
    return 0
