"""SIGKILL crash loop: every batch is there whole or absent whole, every acknowledged one is there.

A child process applies batches to a SQLiteStore as fast as it can and prints `ACK n` after
each acknowledged commit. The parent kills it with SIGKILL at a random moment, reopens the
file and checks. SIGKILL stops the process, not the machine, so this tests SQLite's atomic
commit and our one-transaction-per-batch use of it (power loss is what synchronous=FULL is for).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from authd.store.sqlstore import SQLiteStore

PER_BATCH = 40  # record sets per batch: enough that kills land inside transactions

def child(db: str, per: int, wfd: int) -> None:
    """Runs in a forked process (no interpreter start-up per round): apply batches forever,
    writing `ACK n` after each acknowledged commit."""
    from authd.model.records import RecordSet
    from authd.store.contract import Action, Change

    store = SQLiteStore(db)
    try:
        zone = store.find_zone_by_name("crash.test.")
    except Exception:
        zone, _ = store.create_zone("crash.test.", "crash")
    n = store._conn.execute("SELECT COUNT(*) FROM journal WHERE kind='change'").fetchone()[0]
    os.write(wfd, f"READY {n}\n".encode())
    while True:
        batch = [
            Change(Action.CREATE, RecordSet(f"r{j}.b{n}.crash.test.", "A", 60, (f"10.0.{n % 256}.{j}",)))
            for j in range(per)
        ]
        batch.append(Change(Action.UPSERT, RecordSet("last.crash.test.", "TXT", 60, (f'"{n}"',))))
        store.change_batch(zone.id, batch, f"batch {n}")
        os.write(wfd, f"ACK {n}\n".encode())
        n += 1


def check(db: Path, acked: int, connect: Callable[[], Any] | None = None) -> int:
    """Returns the number of batches present; asserts atomicity and durability.

    Reads the file with plain sqlite3 (an independent reader, and cheap per round).
    `connect`: another DB-API connection with sqlite3's `execute` and `?` (the PostgreSQL
    crash loop passes one; the tables and columns are the same)."""
    import sqlite3

    conn = connect() if connect is not None else sqlite3.connect(db)
    try:
        zone_id, serial, count = conn.execute(
            "SELECT id, serial, record_set_count FROM zones WHERE name='crash.test.'"
        ).fetchone()
        counts: dict[int, int] = {}
        for (name,) in conn.execute("SELECT name FROM rrsets WHERE zone_id=? AND name LIKE 'r%'", (zone_id,)):
            b = int(name.split(".")[1][1:])
            counts[b] = counts.get(b, 0) + 1
        present = sorted(counts)
        assert present == list(range(len(present))), "batches are applied in order, no gaps"
        assert all(c == PER_BATCH for c in counts.values()), f"a half batch survived: {counts}"
        assert len(present) >= acked, f"acknowledged {acked} batches but only {len(present)} survived"
        journaled = conn.execute(
            "SELECT COUNT(*) FROM journal WHERE kind='change' AND puts LIKE '%\"r0.b%'"
        ).fetchone()[0]
        assert journaled == len(present), "journal and record sets agree"
        assert count == conn.execute("SELECT COUNT(*) FROM rrsets WHERE zone_id=?", (zone_id,)).fetchone()[0]
        if present:
            (data,) = conn.execute(
                "SELECT data FROM rrsets WHERE zone_id=? AND name='last.crash.test.'", (zone_id,)
            ).fetchone()
            assert f'\\"{len(present) - 1}\\"' in data, data
            (last_serial,) = conn.execute("SELECT serial FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
            assert serial == last_serial
        return len(present)
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.realtime
def test_sigkill_crash_loop(tmp_path):
    db = tmp_path / "crash.db"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "2025")))
    rounds = int(os.environ.get("CRASH_ROUNDS", "50"))
    total_acked = 0
    killed_mid_batch = 0
    deadline = time.monotonic() + 120
    for _ in range(rounds):
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                os.close(rfd)
                child(str(db), PER_BATCH, wfd)
            finally:
                os._exit(0)
        os.close(wfd)
        reader = os.fdopen(rfd, "r")
        ready = reader.readline().split()
        assert ready and ready[0] == "READY", ready
        start = int(ready[1])
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        out = reader.read()
        reader.close()
        # only whole lines count: a kill can cut the last "ACK n" short, and a cut-off
        # acknowledgement is no acknowledgement
        acks = [int(line.split()[1]) for line in out.split("\n")[:-1] if len(line.split()) == 2 and line.startswith("ACK ")]
        acked = (acks[-1] + 1) if acks else start
        present = check(db, acked)
        killed_mid_batch += present == acked  # the kill fell before the next commit finished
        total_acked = acked
        assert present in (acked, acked + 1), "at most the one in flight committed unacknowledged"
        assert time.monotonic() < deadline, "crash loop is too slow for this machine"
    assert total_acked >= rounds // 2, "the child made too little progress to test anything"
    assert killed_mid_batch > 0


def _start_server(db: Path, zones: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "authd", "serve", "--zones", str(zones), "--store", str(db),
         "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "control API (Route 53 2013-04-01) on " in line:
            return proc, line.rsplit(" on ", 1)[1].strip()
    raise AssertionError(f"server did not start (exit {proc.wait()})")


@pytest.mark.slow
@pytest.mark.realtime
def test_sigkill_the_server_while_it_applies_batches(tmp_path):
    """The same promise through the real server and its HTTP API: kill -9 mid-stream, restart."""
    import threading

    from tests.control_helpers import client

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    db = tmp_path / "crash.db"
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "crash.test.zone").write_text(
        "$ORIGIN crash.test.\n$TTL 60\n@ SOA ns hostmaster 1 7200 900 1209600 60\n@ NS ns\nns A 192.0.2.1\n"
    )
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    zone_id = "Z0CRASH0TEST"
    acked = 0
    for _ in range(int(os.environ.get("CRASH_SERVER_ROUNDS", "5"))):
        proc, url = _start_server(db, zones, env)
        r53 = client(url)
        stop = threading.Event()
        counter = {"next": check(db, acked) if acked else 0, "acked": acked}

        def writer(r53=r53, counter=counter, stop=stop) -> None:
            while not stop.is_set():
                n = counter["next"]
                changes = [
                    {"Action": "CREATE", "ResourceRecordSet": {"Name": f"r{j}.b{n}.crash.test.", "Type": "A", "TTL": 60,
                                                               "ResourceRecords": [{"Value": f"10.0.{n % 256}.{j}"}]}}
                    for j in range(PER_BATCH)
                ]
                changes.append({"Action": "UPSERT", "ResourceRecordSet": {"Name": "last.crash.test.", "Type": "TXT", "TTL": 60,
                                                                           "ResourceRecords": [{"Value": f'"{n}"'}]}})
                try:
                    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
                except Exception:
                    return  # the server died under us: this batch is unacknowledged
                counter["acked"] = n + 1
                counter["next"] = n + 1

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(rng.uniform(0.2, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        thread.join(30)
        acked = counter["acked"]
        present = check(db, acked)
        assert present in (acked, acked + 1)
        acked = present
    assert acked > 0, "no batch was ever acknowledged: nothing was tested"
