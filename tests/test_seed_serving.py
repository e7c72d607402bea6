"""A node on a NEW store answers DNS from the zone file while the store is seeded, and opens
the change API once the import has committed (`authd.node`, `zonefiles.seed.Seeding.early`;
issue 12). Real sockets; the import is held at its start by an event, never a sleep.

- while held: DNS answers the file's records (its SOA serial), the change API's port is
  closed, and the store file holds no zone (other readers see it only at commit);
- released: the node starts, the index takes the file's zone over (no rebuild), and a
  change through the API reaches DNS;
- a process killed during the import leaves a store without the zone, and the next start
  seeds it again.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
import trio

from authd.localnet import free_port
from authd.node import NodeConfig, run_node
from authd.store.contract import NoSuchHostedZone
from authd.store.sqlcore import SQLCore
from authd.store.sqlstore import SQLiteStore
from authd.zonefiles.seed import seed_dir
from tests.control_helpers import client
from tests.test_seed_fast import generated

pytestmark = [pytest.mark.realtime]

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "g.test."


def _zones(tmp_path: Path) -> Path:
    d = tmp_path / "zones"
    d.mkdir()
    (d / "g.test.zone").write_text(generated(200).replace(" host 7 ", " host 0 "))  # bumped at import
    return d


def _ask(port: int, name: str, rtype: str) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=port, timeout=5)


def _serial(port: int) -> int:
    return _ask(port, ORIGIN, "SOA").answer[0][0].serial


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


async def test_dns_answers_from_the_file_while_the_store_is_seeded(tmp_path, monkeypatch):
    entered, gate = threading.Event(), threading.Event()
    real = SQLCore.import_sets

    def held(self, *args, **kwargs):
        entered.set()
        assert gate.wait(60)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SQLCore, "import_sets", held)
    db = tmp_path / "s.sqlite3"
    dns_port, api_port = free_port(), free_port()
    cfg = NodeConfig(store_path=str(db), zones_dir=str(_zones(tmp_path)), dns_port=dns_port,
                     control=("127.0.0.1", api_port), metrics=False, health_checks=False)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            box: dict = {}
            started = trio.Event()

            async def start() -> None:
                box["node"] = await nursery.start(run_node, cfg)
                started.set()

            nursery.start_soon(start)
            await trio.to_thread.run_sync(entered.wait, 30)
            # the import is running: DNS answers from the file, as written
            reply = await trio.to_thread.run_sync(_ask, dns_port, f"h5.{ORIGIN}", "A")
            assert [str(r) for r in reply.answer[0]] == ["10.0.0.5"]
            assert await trio.to_thread.run_sync(_serial, dns_port) == 0
            assert not await trio.to_thread.run_sync(_accepting, api_port)  # no change API yet
            reader = SQLiteStore(db, readonly=True)
            with pytest.raises(NoSuchHostedZone):
                reader.find_zone_by_name(ORIGIN)
            gate.set()
            await started.wait()
            node = box["node"]
            zone = node.store.find_zone_by_name(ORIGIN)
            assert zone.serial > 0 and reader.find_zone_by_name(ORIGIN).id == zone.id
            reader.close()
            assert await trio.to_thread.run_sync(_serial, dns_port) == zone.serial
            r53 = client(node.control_url)
            change = functools.partial(r53.change_resource_record_sets, HostedZoneId=zone.id, ChangeBatch={
                "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                    "Name": f"h5.{ORIGIN}", "Type": "A", "TTL": 60,
                    "ResourceRecords": [{"Value": "192.0.2.55"}]}}]})
            info = (await trio.to_thread.run_sync(change))["ChangeInfo"]
            await node.primary.follower.wait_applied(int(info["Id"].rsplit("C", 1)[-1]))
            reply = await trio.to_thread.run_sync(_ask, dns_port, f"h5.{ORIGIN}", "A")
            assert [str(r) for r in reply.answer[0]] == ["192.0.2.55"]
            nursery.cancel_scope.cancel()


CHILD = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    from authd.store.sqlcore import SQLCore
    real = SQLCore._journal

    def stuck(self, *args, **kwargs):  # every set written, the transaction not committed
        if len(args) > 8:  # the import's journal row (it passes its encodings)
            Path(sys.argv[1]).write_text("importing")
            threading.Event().wait()  # until killed
        return real(self, *args, **kwargs)

    SQLCore._journal = stuck
    from authd.cli.main import main
    raise SystemExit(main(sys.argv[2:]))
""")


def test_a_kill_during_the_import_leaves_no_zone_and_the_next_start_seeds(tmp_path):
    zdir, db, marker = _zones(tmp_path), tmp_path / "k.sqlite3", tmp_path / "importing"
    dns_port = free_port()
    argv = ["serve", "--zones", str(zdir), "--store", str(db), "--listen", f"127.0.0.1:{dns_port}",
            "--control", f"127.0.0.1:{free_port()}", "--log-level", "WARNING"]
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(marker), *argv], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        answered = None
        for _ in range(300):  # up to 60 s (each try waits at most 0.2 s)
            if child.poll() is not None:
                break
            try:
                answered = dns.query.udp(dns.message.make_query(ORIGIN, "SOA"), "127.0.0.1",
                                         port=dns_port, timeout=0.2)
            except (dns.exception.Timeout, OSError):
                continue
            if marker.exists():
                break
        assert answered is not None and answered.answer and marker.exists()
        assert answered.answer[0][0].serial == 0  # the file's
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    store = SQLiteStore(db)
    with pytest.raises(NoSuchHostedZone):
        store.find_zone_by_name(ORIGIN)
    assert [line for line in seed_dir(store, zdir) if "created from" in line]
    assert store.find_zone_by_name(ORIGIN).record_set_count > 200
    store.close()
