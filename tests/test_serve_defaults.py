"""`authd serve` defaults: the change API is on and the store is a durable SQLite file.

The mission asks for an embedded durable store by default: a change made through the API
with no --store flag must survive a restart. `--control off` is the store-less DNS-only path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from authd.cli.control import DEFAULT_STORE
from tests.control_helpers import client

ROOT = Path(__file__).resolve().parent.parent


def _start(cwd: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "authd", "serve", "--zones", str(ROOT / "zones"),
         "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", *extra],
        stderr=subprocess.PIPE, text=True, cwd=cwd,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "control API (Route 53 2013-04-01) on " in line:
            return proc, line.rsplit(" on ", 1)[1].strip()
    raise AssertionError(f"server did not start (exit {proc.wait()}): {''.join(seen)}")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _txt(r53, zone_id: str) -> list[str]:
    sets = r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return [rr["Value"] for s in sets if s["Name"] == "durable.api.aws." for rr in s["ResourceRecords"]]


@pytest.mark.realtime
def test_default_store_is_durable_across_restarts(tmp_path: Path) -> None:
    proc, url = _start(tmp_path)
    try:
        r53 = client(url)
        r53.change_resource_record_sets(
            HostedZoneId="Z0API0AWS",
            ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": {
                "Name": "durable.api.aws.", "Type": "TXT", "TTL": 60,
                "ResourceRecords": [{"Value": '"survives a restart"'}]}}]},
        )
    finally:
        _stop(proc)
    assert (tmp_path / DEFAULT_STORE).is_file(), "no --store given: the default SQLite file"
    proc, url = _start(tmp_path)
    try:
        assert _txt(client(url), "Z0API0AWS") == ['"survives a restart"']
    finally:
        _stop(proc)


@pytest.mark.realtime
def test_memory_store_forgets_and_writes_no_file(tmp_path: Path) -> None:
    proc, url = _start(tmp_path, "--store", ":memory:")
    try:
        r53 = client(url)
        r53.change_resource_record_sets(
            HostedZoneId="Z0API0AWS",
            ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": {
                "Name": "durable.api.aws.", "Type": "TXT", "TTL": 60,
                "ResourceRecords": [{"Value": '"gone after exit"'}]}}]},
        )
    finally:
        _stop(proc)
    assert not (tmp_path / ".authd").exists()
    proc, url = _start(tmp_path, "--store", ":memory:")
    try:
        assert _txt(client(url), "Z0API0AWS") == []
    finally:
        _stop(proc)


def test_workers_need_control_off() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "authd", "serve", "--listen", "127.0.0.1:0", "--workers", "2",
         "--control", "127.0.0.1:0", "--store", ":memory:"],
        capture_output=True, text=True, cwd=ROOT, timeout=30,
    )
    assert out.returncode == 2
    assert "--control off" in out.stderr
