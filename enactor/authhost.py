"""A stopgap authd host for the outage: DNS and the Route 53 control API over one store.

Trio shell, composition only: `authd.sqlstore.SQLiteStore` seeded from `zones/` by
`authd.seed`, `authd.control.ControlAPI` on --control, `authd.server.serve_dns` on --listen,
and the serving index fed from the store's journal after every accepted change (one apply
path, `ServingIndex.apply`). `enactor outage` uses `authd serve --control ... --store ...`
when authd has those flags, and this module otherwise; no rule lives here.

    python -m enactor.authhost --zones zones/ --listen 127.0.0.1:5353 --control 127.0.0.1:8053 --store authd.sqlite3
"""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from authd.control import ControlAPI, serve_control
from authd.index import ServingIndex
from authd.seed import seed_store
from authd.server import serve_dns
from authd.sqlstore import SQLiteStore
from authd.zonefile import load_zone_dir


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def serve(zones: str, listen: str, control: str, store_path: str) -> None:
    store = SQLiteStore(store_path)
    for line in seed_store(store, load_zone_dir(zones)):
        logging.getLogger("authhost").info(line)
    index = ServingIndex()
    for entry in store.snapshot():
        index.apply(entry)

    def follow(_info: object) -> None:
        for entry in store.journal_since(index.seq):
            index.apply(entry)

    app = ControlAPI(store)
    app.on_change.append(follow)
    dh, dp = _hostport(listen)
    ch, cp = _hostport(control)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_dns(index, dh, dp, task_status=task_status))
        await nursery.start(serve_control, app, ch, cp)
        logging.getLogger("authhost").info("DNS on %s, control API on %s, store %s", listen, control, store_path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m enactor.authhost", description=__doc__.splitlines()[0])
    p.add_argument("--zones", default="zones", help="zone files to seed the store with (default zones/)")
    p.add_argument("--listen", default="127.0.0.1:5353", help="DNS HOST:PORT (udp+tcp)")
    p.add_argument("--control", default="127.0.0.1:8053", help="control API HOST:PORT")
    p.add_argument("--store", default="authd.sqlite3", help="SQLite store file")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        trio.run(serve, a.zones, a.listen, a.control, a.store)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
