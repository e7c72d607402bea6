"""The README's table of Route 53 operations that Terraform and external-dns call, kept honest.

Every operation the table marks "yes" for authd is sent through boto3 to a real `authd serve`
with the smallest input botocore's model accepts (made from the model's input shape, so no
operation needs a hand-written call). authd may refuse that input (NoSuchHostedZone,
InvalidInput, ...): what it must not do is answer UnknownOperation, which means no route. An
operation marked "no" that authd has since learned is reported as a warning naming the rows
to update (a branch adding routes must not turn this red before the README catches up). A GeoProximityLocation set (outside issue 11) must be refused, never stored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import botocore.model
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.acceptance_helpers import README, authd_serve

pytestmark = [pytest.mark.realtime]

_ROW = re.compile(r"^\| ([A-Z][A-Za-z, ]+?) \|.*\| (yes|no) \|$", re.M)


def _table() -> dict[str, bool]:
    text = README.read_text()
    assert "<!-- operations table -->" in text, "README lost the operations table"
    table = text.split("<!-- operations table -->", 1)[1].split("\n\n", 1)[0]
    ops: dict[str, bool] = {}
    for names, mark in _ROW.findall(table):
        for name in names.split(","):
            ops[name.strip()] = mark == "yes"
    assert len(ops) >= 15, table
    return ops


def _minimal(shape: botocore.model.Shape, depth: int = 0) -> Any:
    """The smallest value of `shape` that botocore's client-side validation accepts."""
    if isinstance(shape, botocore.model.StructureShape):
        return {name: _minimal(shape.members[name], depth + 1)
                for name in shape.required_members}
    if isinstance(shape, botocore.model.ListShape):
        return [_minimal(shape.member, depth + 1)]
    if shape.type_name == "string":
        if shape.enum:
            return shape.enum[0]
        return "x" * max(1, int(shape.metadata.get("min", 1)))
    if shape.type_name in ("integer", "long"):
        return max(1, int(shape.metadata.get("min", 1)))
    if shape.type_name == "boolean":
        return False
    raise AssertionError(f"no minimal value for {shape.name} ({shape.type_name})")


def _call(r53: Any, op: str) -> str:
    """Send `op` with a minimal input; the error code authd answered, or "" on success."""
    model = r53.meta.service_model.operation_model(op)
    params = _minimal(model.input_shape) if model.input_shape is not None else {}
    try:
        r53._make_api_call(op, params)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return ""


def test_readme_operations_table_matches_the_router(tmp_path: Path) -> None:
    ops = _table()
    with authd_serve(tmp_path) as authd:
        r53 = boto3.client("route53", endpoint_url=authd.url, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test",
                           config=Config(retries={"max_attempts": 1}))
        answered = {op: _call(r53, op) for op in ops}
    routed = {op for op, code in answered.items() if code != "UnknownOperation"}
    claimed = {op for op, yes in ops.items() if yes}
    assert claimed <= routed, f"README says yes, authd has no route: {sorted(claimed - routed)}"
    # the other way too: a warning went unread while the table said "no" for 17 operations
    # authd answered, so a route the README does not claim is now a failure
    assert routed <= claimed, (f"authd answers {sorted(routed - claimed)}: mark them yes in "
                               "the README's operations table")


def test_geoproximity_record_set_is_refused(tmp_path: Path) -> None:
    with authd_serve(tmp_path) as authd:
        r53 = boto3.client("route53", endpoint_url=authd.url, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")
        zone = r53.create_hosted_zone(Name="geoprox.test", CallerReference="gp-1")["HostedZone"]["Id"]
        with pytest.raises(ClientError) as refused:
            r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{
                "Action": "CREATE", "ResourceRecordSet": {
                    "Name": "app.geoprox.test", "Type": "A", "SetIdentifier": "east",
                    "GeoProximityLocation": {"AWSRegion": "us-east-1", "Bias": 0}, "TTL": 60,
                    "ResourceRecords": [{"Value": "192.0.2.1"}]}}]})
        assert refused.value.response["Error"]["Code"] in ("InvalidInput", "InvalidChangeBatch")
        sets = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
        assert [s["Type"] for s in sets] == ["NS", "SOA"]
