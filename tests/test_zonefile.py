"""Zone loading: shipped zones load, bad zones are refused with file, line or record, and reason."""

from pathlib import Path

import pytest

from authd.model.records import RecordSet
from authd.zonefiles.zonefile import ZoneLoadError, load_zone_dir, load_zone_file

ZONES = Path(__file__).resolve().parent.parent / "zones"


def test_shipped_zones_load():
    zones = {z.origin: z for z in load_zone_dir(ZONES)}
    assert {"api.aws.", "amazonaws.com.", "example.test."} <= set(zones)
    api = zones["api.aws."]
    stable = [rs for rs in api.record_sets if rs.name == "dynamodb.us-east-1.api.aws."]
    assert {rs.rtype for rs in stable} == {"A", "AAAA"}
    assert all(rs.alias and rs.alias.dns_name.startswith("plan-0001.") for rs in stable)
    weighted = [rs for rs in api.record_sets if rs.name.startswith("plan-0001.") and rs.is_weighted]
    assert len(weighted) >= 6


def test_bad_master_file_names_the_line(tmp_path):
    bad = tmp_path / "bad.test.zone"
    bad.write_text(
        "$ORIGIN bad.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\nx A 999.1.1.1\n"
    )
    with pytest.raises(ZoneLoadError) as info:
        load_zone_file(bad)
    assert info.value.line == 6
    assert str(info.value).startswith(f"{bad}:6:")


def test_bad_route53_json_names_the_record(tmp_path):
    doc = (ZONES / "api.aws.json").read_text().replace('"Weight": 50', '"Weight": 300')
    bad = tmp_path / "api.aws.json"
    bad.write_text(doc)
    with pytest.raises(ZoneLoadError) as info:
        load_zone_file(bad)
    assert "Weight 300 is out of range" in str(info.value)
    assert "ResourceRecordSets[" in str(info.value)


def test_alias_to_missing_target_is_refused(tmp_path):
    doc = (ZONES / "api.aws.json").read_text().replace(
        '"DNSName": "plan-0001.dynamodb.us-east-1.api.aws."',
        '"DNSName": "plan-0099.dynamodb.us-east-1.api.aws."',
    )
    bad = tmp_path / "api.aws.json"
    bad.write_text(doc)
    with pytest.raises(ZoneLoadError, match="alias target plan-0099"):
        load_zone_file(bad)


def test_route53_round_trip():
    for z in load_zone_dir(ZONES):
        for rs in z.record_sets:
            assert RecordSet.from_route53(rs.to_route53()) == rs
