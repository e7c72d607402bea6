"""`authd change`, `authd records`, `authd export`, through the HTTP API and through --store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from authd.cli.main import main
from authd.control.app import ControlAPI
from authd.store.sqlstore import SQLiteStore
from authd.zonefiles.seed import seed_store
from authd.zonefiles.zonefile import load_zone_dir, load_zone_file
from tests.control_helpers import running

ZONES = Path(__file__).resolve().parent.parent / "zones"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "authd.db"
    store = SQLiteStore(path)
    seed_store(store, load_zone_dir(ZONES))
    store.close()
    return path


@pytest.fixture(params=["store", "http"])
def target(request, db):
    if request.param == "store":
        yield ["--store", str(db)]
        return
    store = SQLiteStore(db)
    with running(ControlAPI(store)) as url:
        yield ["--endpoint", url]
    store.close()


def write_batch(tmp_path, action, name, value="192.0.2.8"):
    path = tmp_path / f"{action}-{name}.json"
    path.write_text(json.dumps({"Comment": "cli test", "Changes": [{"Action": action, "ResourceRecordSet": {
        "Name": name, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": value}]}}]}))
    return str(path)


def test_change_records_export_roundtrip(target, tmp_path, capsys, db):
    assert main(["change", "--zone", "api.aws", "--batch", write_batch(tmp_path, "CREATE", "cli.api.aws"), "--wait", *target]) == 0
    out, err = capsys.readouterr()
    change_id = out.strip()
    assert change_id.startswith("C") and len(change_id) == 13
    assert "INSYNC" in err

    assert main(["records", "--zone", "Z0API0AWS", *target]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["NAME", "TYPE", "SET-ID", "WEIGHT", "TTL", "VALUE"]
    assert any(line.split()[:2] == ["cli.api.aws.", "A"] for line in table.splitlines())
    assert "-> plan-0001.dynamodb.us-east-1.api.aws." in table

    exported = tmp_path / "api.aws.json"
    assert main(["export", "--zone", "api.aws.", "-o", str(exported), *target]) == 0
    loaded = load_zone_file(exported)
    store = SQLiteStore(db, readonly=True)
    assert set(loaded.record_sets) == set(store.record_sets("Z0API0AWS"))
    store.close()


def test_rejected_change_prints_every_problem(target, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Changes": [
        {"Action": "DELETE", "ResourceRecordSet": {"Name": "nope.api.aws.", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.1"}]}},
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "ns1.api.aws.", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.1"}]}},
    ]}))
    assert main(["change", "--zone", "api.aws", "--batch", str(bad), *target]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "authd change: InvalidChangeBatch: Tried to delete resource record set [name='nope.api.aws.', type='A'] but it was not found",
        "authd change: InvalidChangeBatch: Tried to create resource record set [name='ns1.api.aws.', type='A'] but it already exists",
    ]
    assert main(["records", "--zone", "nope.test", *target]) == 1
    assert "NoSuchHostedZone" in capsys.readouterr().err


def test_unreadable_batch_is_a_clear_error(tmp_path, capsys, db):
    (tmp_path / "x.json").write_text("{not json")
    assert main(["change", "--zone", "api.aws", "--batch", str(tmp_path / "x.json"), "--store", str(db)]) == 2  # bad input: exit 2 (a rejected batch is 1)
    assert "cannot read the change batch" in capsys.readouterr().err


def test_every_command_has_help():
    for cmd in ([], ["change"], ["records"], ["export"]):
        out = subprocess.run([sys.executable, "-m", "authd", *cmd, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "usage: authd" in out.stdout
