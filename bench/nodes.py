"""Benchmark: a 1,000-change batch to INSYNC across 3 authd nodes, PostgreSQL against SQLite (issue 15).

`python -m bench nodes [--batches 30] [--no-write]` (also `python -m bench control --store postgresql`)

Both backends run three real `authd serve` processes on 127.0.0.2..4 and the client sends
every batch to the first one over HTTP (SigV4, XML), alternately CREATE and DELETE of
1,000 A record sets, then polls GetChange every 2 ms until INSYNC:
- SQLite: one primary on the file and two `--replica` processes following it read-only;
  INSYNC waits for their progress files (the design before issue 15, one machine only).
- PostgreSQL (a throwaway cluster, fsync on): three peer nodes on one database; every node
  learns of the batch by LISTEN/NOTIFY, and INSYNC waits for every live node's row in the
  `nodes` table.
The same client, batches and machine in one run; p50 and p99 of request to INSYNC.
Writes the "authd: many nodes" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench._report import write_section as replace_section
from bench.control import batch_sets, batch_xml, pct, signed_headers

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## authd: many nodes, PostgreSQL against SQLite (issue 15)"
ZONE = "bench.test."
HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


class Proc:
    """An `authd serve` child; waits for a log line, then drains its stderr."""

    def __init__(self, argv: list[str], ready: str):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, "-m", "authd", "serve", *argv],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        assert self.proc.stderr is not None
        self.lines: list[str] = []
        for line in self.proc.stderr:
            self.lines.append(line)
            if ready in line:
                break
        else:
            raise RuntimeError(f"authd serve {' '.join(argv)} did not start:\n{''.join(self.lines[-10:])}")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr or ()], daemon=True).start()

    def control_url(self) -> str:
        return next(ln.rsplit(" on ", 1)[1].strip() for ln in self.lines if "control API (Route 53" in ln)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(20)


def run_batches(url: str, zone_id: str, batches: int) -> dict[str, Any]:
    sets = batch_sets("nodes")
    bodies = {"CREATE": batch_xml("CREATE", sets), "DELETE": batch_xml("DELETE", sets)}
    path = f"{url}/2013-04-01/hostedzone/{zone_id}/rrset/"
    insync: list[float] = []
    accepted: list[float] = []
    with httpx.Client(timeout=60) as http:
        for k in range(batches + 2):  # two warm-up rounds
            action = "CREATE" if k % 2 == 0 else "DELETE"
            body = bodies[action]
            t0 = time.perf_counter()
            r = http.post(path, content=body, headers=signed_headers("POST", path, body))
            assert r.status_code == 200, r.text
            t1 = time.perf_counter()
            change_id = r.text.split("<Id>/change/")[1].split("<")[0]
            status_ok = "<Status>INSYNC" in r.text
            get = f"{url}/2013-04-01/change/{change_id}"
            while not status_ok:
                time.sleep(0.002)
                status_ok = "<Status>INSYNC" in http.get(get, headers=signed_headers("GET", get, b"")).text
            t2 = time.perf_counter()
            if k >= 2:
                accepted.append((t1 - t0) * 1e3)
                insync.append((t2 - t0) * 1e3)
    return {"n": len(insync), "insync_p50": statistics.median(insync), "insync_p99": pct(insync, 99),
            "accepted_p50": statistics.median(accepted), "accepted_p99": pct(accepted, 99)}


def bench_sqlite(tmp: Path, batches: int) -> dict[str, Any]:
    from authd.store.sqlstore import SQLiteStore

    db = tmp / "nodes.db"
    empty = tmp / "no-zones"
    empty.mkdir(exist_ok=True)
    store = SQLiteStore(db)
    zone, _ = store.create_zone(ZONE, "bench")
    store.close()
    procs = [Proc(["--store", str(db), "--zones", str(empty), "--listen", f"{HOSTS[0]}:0",
                   "--control", f"{HOSTS[0]}:0"], "control API (Route 53")]
    try:
        for i, host in enumerate(HOSTS[1:], 2):
            procs.append(Proc(["--replica", "--store", str(db), "--listen", f"{host}:0",
                               "--replica-name", f"replica-{i}"], "DNS on"))
        return run_batches(procs[0].control_url(), zone.id, batches)
    finally:
        for p in procs:
            p.stop()


def bench_postgres(batches: int) -> dict[str, Any]:
    from authd.store.pgstore import PostgresStore
    from tests.pg_helpers import Cluster

    cluster = Cluster(fsync=True).start()
    procs: list[Proc] = []
    try:
        url = cluster.new_database("bench")
        store = PostgresStore(url)
        zone, _ = store.create_zone(ZONE, "bench")
        store.close()
        with tempfile.TemporaryDirectory() as empty:
            for i, host in enumerate(HOSTS, 1):
                procs.append(Proc(["--store", url, "--zones", empty, "--node-name", f"node-{i}",
                                   "--listen", f"{host}:0", "--control", f"{host}:0"],
                                  "registered in the database"))
            return run_batches(procs[0].control_url(), zone.id, batches) | {
                "server": subprocess.run([cluster.pg_ctl, "--version"], capture_output=True, text=True).stdout.strip()}
    finally:
        for p in procs:
            p.stop()
        cluster.destroy()


def write_section(text: str) -> None:
    replace_section(SECTION, text)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench nodes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=30, help="1,000-change batches per backend (default 30)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="authd-bench-nodes-") as tmpdir:
        print(f"SQLite: primary + 2 replica processes, {args.batches} batches ...", flush=True)
        lite = bench_sqlite(Path(tmpdir), args.batches)
        print(lite, flush=True)
    print(f"PostgreSQL: 3 peer nodes, {args.batches} batches ...", flush=True)
    pg = bench_postgres(args.batches)
    print(pg, flush=True)
    load = os.getloadavg()
    lines = [
        SECTION, "",
        f"Command: `python -m bench nodes --batches {args.batches}` (`bench/nodes.py`). Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores shared with other work, Python "
        f"{platform.python_version()}, {pg['server']}. Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.", "",
        "A 1,000-change batch (alternately CREATE and DELETE of 1,000 A sets) sent over HTTP to "
        "the first of 3 `authd serve` processes on 127.0.0.2..4; time from the request to GetChange "
        "INSYNC (polled every 2 ms), which means all 3 serve it.", "",
        "| store | nodes | accepted p50 / p99 ms | INSYNC p50 / p99 ms |",
        "|---|---|---|---|",
        f"| SQLite (WAL, synchronous=FULL) | primary + 2 `--replica` processes, one machine | "
        f"{lite['accepted_p50']:.1f} / {lite['accepted_p99']:.1f} | {lite['insync_p50']:.1f} / {lite['insync_p99']:.1f} |",
        f"| PostgreSQL (fsync on, synchronous_commit on) | 3 peer nodes, LISTEN/NOTIFY | "
        f"{pg['accepted_p50']:.1f} / {pg['accepted_p99']:.1f} | {pg['insync_p50']:.1f} / {pg['insync_p99']:.1f} |",
        "",
        f"PostgreSQL INSYNC p50 is {pg['insync_p50'] / lite['insync_p50']:.2f}x SQLite's in this run. "
        "The SQLite replicas poll the file every 50 ms and report through progress files; the "
        "PostgreSQL nodes are woken by NOTIFY at COMMIT, read the entry over a socket, apply it, "
        "and announce their new seq (`authd_nodes` NOTIFY), which the node that took the batch "
        "reads before it says INSYNC.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
