"""A write to the store file by another process reaches a running primary and a replica
process at once, woken by the WAL watch (inotify) rather than by their poll: both run with a
30 s poll here (their progress heartbeat still looks every 5 s), so only the watch can deliver
a change within the test's 2 s.

Real processes; the test waits on their log lines and asks DNS until the answer changes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from authd.model.records import RecordSet
from authd.store.contract import Action, Change
from authd.store.sqlstore import SQLiteStore
from tests.serve_helpers import Served, txt, wait_for_txt

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.realtime,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")]

SLOW = ["--poll-interval", "30", "--idle-poll", "30"]


def test_another_processs_write_wakes_the_primary_and_a_replica_process(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    with Served(["--zones", str(REPO / "zones"), "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
                 "--store", str(db), *SLOW], tmp_path) as primary:
        primary.wait_for("control API")
        with Served(["--replica", "--store", str(db), "--listen", "127.0.0.1:0", "--replica-name", "r1",
                     *SLOW], tmp_path) as replica:
            ports = {"primary": primary.dns_port(), "r1": replica.dns_port("r1")}
            assert txt(ports["primary"], "wake.example.test.") == []
            writer = SQLiteStore(db)  # as `authd change --store` would, from this process
            zone = writer.find_zone_by_name("example.test.")
            for i in range(3):  # each a separate commit, each seen long before a poll
                value = f"written-{i}"
                writer.change_batch(zone.id, [Change(Action.UPSERT, RecordSet(
                    "wake.example.test.", "TXT", 0, (f'"{value}"',)))])
                for port in ports.values():
                    wait_for_txt(port, "wake.example.test.", value, within=2)
            writer.close()
            code, _ = replica.stop()
            assert code == 0
        code, _ = primary.stop()
        assert code == 0
        assert not any("Traceback" in ln for ln in primary.lines + replica.lines)
