"""The control API with the AWS CLI (PyPI awscli) as an unchanged real client."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from authd.control.app import ControlAPI
from authd.store.sqlstore import SQLiteStore
from authd.zonefiles.seed import seed_store
from authd.zonefiles.zonefile import load_zone_dir
from tests.control_helpers import AWS, aws_env, running

ZONES = Path(__file__).resolve().parent.parent / "zones"


@pytest.fixture
def aws(tmp_path):
    if not AWS.exists():
        pytest.skip("aws CLI not installed (PyPI awscli, `make venv`)")
    store = SQLiteStore(tmp_path / "authd.db")
    seed_store(store, load_zone_dir(ZONES))
    with running(ControlAPI(store)) as url:

        def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
            proc = subprocess.run(
                [str(AWS), "--endpoint-url", url, "--output", "json", "route53", *args],
                capture_output=True, text=True, env=aws_env(), timeout=60,
            )
            if ok:
                assert proc.returncode == 0, proc.stderr
            return proc

        yield run, store
    store.close()


@pytest.mark.slow
def test_aws_cli_every_operation(aws, tmp_path):
    run, store = aws
    zones = json.loads(run("list-hosted-zones").stdout)["HostedZones"]
    assert {z["Id"] for z in zones} >= {"/hostedzone/Z0API0AWS", "/hostedzone/Z0AMAZONAWS"}
    made = json.loads(run("create-hosted-zone", "--name", "cli.test", "--caller-reference", "cli-1").stdout)
    zid = made["HostedZone"]["Id"]
    assert zid == "/hostedzone/Z0CLI0TEST"
    assert json.loads(run("get-hosted-zone", "--id", zid).stdout)["HostedZone"]["Name"] == "cli.test."
    by_name = json.loads(run("list-hosted-zones-by-name", "--dns-name", "cli.test").stdout)
    assert by_name["HostedZones"][0]["Name"] == "cli.test."

    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps({
        "Comment": "from the cli",
        "Changes": [{"Action": "CREATE", "ResourceRecordSet": {
            "Name": "www.cli.test", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.7"}]}}],
    }))
    out = json.loads(run("change-resource-record-sets", "--hosted-zone-id", zid, "--change-batch", f"file://{batch}").stdout)
    change = out["ChangeInfo"]["Id"]
    assert json.loads(run("get-change", "--id", change).stdout)["ChangeInfo"]["Status"] == "INSYNC"
    run("wait", "resource-record-sets-changed", "--id", change)
    listed = json.loads(run("list-resource-record-sets", "--hosted-zone-id", zid).stdout)["ResourceRecordSets"]
    assert {"Name": "www.cli.test.", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.7"}]} in listed

    # the same batch again: InvalidChangeBatch with Route 53's words, exit status non-zero
    again = run("change-resource-record-sets", "--hosted-zone-id", zid, "--change-batch", f"file://{batch}", ok=False)
    assert again.returncode != 0
    assert "InvalidChangeBatch" in again.stderr
    assert "[Tried to create resource record set [name='www.cli.test.', type='A'] but it already exists]" in again.stderr

    not_empty = run("delete-hosted-zone", "--id", zid, ok=False)
    assert not_empty.returncode != 0 and "HostedZoneNotEmpty" in not_empty.stderr
    batch.write_text(batch.read_text().replace("CREATE", "DELETE"))
    run("change-resource-record-sets", "--hosted-zone-id", zid, "--change-batch", f"file://{batch}")
    run("delete-hosted-zone", "--id", zid)
    missing = run("get-hosted-zone", "--id", zid, ok=False)
    assert missing.returncode != 0 and "NoSuchHostedZone" in missing.stderr
    assert store.get_zone("Z0CLI0TEST") is None


@pytest.mark.slow
def test_aws_cli_pages_through_a_zone(aws):
    run, store = aws
    # the CLI follows NextRecordName/Type/Identifier itself when paging
    out = json.loads(run("list-resource-record-sets", "--hosted-zone-id", "Z0API0AWS", "--page-size", "2").stdout)
    names = [(r["Name"], r["Type"], r.get("SetIdentifier")) for r in out["ResourceRecordSets"]]
    expected = [(rs.to_route53()["Name"], rs.rtype, rs.set_identifier) for rs in store.record_sets("Z0API0AWS")]
    assert names == expected
