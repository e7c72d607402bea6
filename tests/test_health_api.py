"""The health-check API through boto3 (real HTTP, SigV4, botocore's parser): shapes, errors,
idempotency by CallerReference, HealthCheckVersion, pagination, and bad input changing nothing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import botocore
import pytest
from botocore.exceptions import ClientError

from authd.control import api_health as A
from authd.control.app import ControlAPI
from authd.store.memstore import MemoryStore
from tests.control_helpers import client, running

TCP = {"Type": "TCP", "IPAddress": "127.0.0.1", "Port": 9001, "RequestInterval": 10, "FailureThreshold": 2}
MODEL = json.loads(gzip.decompress(
    (Path(botocore.__file__).parent / "data/route53/2013-04-01/service-2.json.gz").read_bytes()))


def conforms(value: Any, shape_name: str, path: str = "") -> list[str]:
    """Problems of a parsed response against the botocore model: missing required members,
    members the model does not have."""
    shape = MODEL["shapes"][shape_name]
    problems: list[str] = []
    if shape["type"] == "structure":
        members = shape.get("members", {})
        for req in shape.get("required", []):
            if req not in value and members[req].get("location") is None:
                problems.append(f"{path}.{req} missing")
        for name, sub in value.items():
            if name == "ResponseMetadata":
                continue
            if name not in members:
                problems.append(f"{path}.{name} not in model")
            else:
                problems += conforms(sub, members[name]["shape"], f"{path}.{name}")
    elif shape["type"] == "list":
        for i, item in enumerate(value):
            problems += conforms(item, shape["member"]["shape"], f"{path}[{i}]")
    return problems


@pytest.fixture
def api():
    store = MemoryStore()
    app = ControlAPI(store)
    with running(app) as url:
        yield client(url), store


def test_create_get_list_count_and_shapes(api):
    c, _ = api
    r = c.create_health_check(CallerReference="a", HealthCheckConfig=TCP)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 201
    hc = r["HealthCheck"]
    assert hc["Id"].startswith("hc-0001-") and r["Location"] == f"/2013-04-01/healthcheck/{hc['Id']}"
    assert hc["HealthCheckVersion"] == 1 and hc["CallerReference"] == "a"
    assert hc["HealthCheckConfig"] == {**TCP, "MeasureLatency": False, "Inverted": False, "Disabled": False}
    assert conforms(r, "CreateHealthCheckResponse") == []
    got = c.get_health_check(HealthCheckId=hc["Id"])
    assert got["HealthCheck"] == hc and conforms(got, "GetHealthCheckResponse") == []
    listed = c.list_health_checks()
    assert listed["HealthChecks"] == [hc] and listed["IsTruncated"] is False
    assert conforms(listed, "ListHealthChecksResponse") == []
    assert c.get_health_check_count()["HealthCheckCount"] == 1
    st = c.get_health_check_status(HealthCheckId=hc["Id"])
    assert st["HealthCheckObservations"] == [] and conforms(st, "GetHealthCheckStatusResponse") == []
    lf = c.get_health_check_last_failure_reason(HealthCheckId=hc["Id"])
    assert lf["HealthCheckObservations"] == []


def test_caller_reference_idempotency(api):
    c, store = api
    first = c.create_health_check(CallerReference="ref", HealthCheckConfig=TCP)
    again = c.create_health_check(CallerReference="ref", HealthCheckConfig=TCP)
    assert again["HealthCheck"] == first["HealthCheck"] and again["Location"] == first["Location"]
    with pytest.raises(ClientError) as err:
        c.create_health_check(CallerReference="ref", HealthCheckConfig={**TCP, "Port": 9002})
    assert err.value.response["Error"]["Code"] == "HealthCheckAlreadyExists"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    c.delete_health_check(HealthCheckId=first["HealthCheck"]["Id"])
    with pytest.raises(ClientError) as err:  # Route 53: the reference of a deleted check too
        c.create_health_check(CallerReference="ref", HealthCheckConfig=TCP)
    assert err.value.response["Error"]["Code"] == "HealthCheckAlreadyExists"
    new = c.create_health_check(CallerReference="ref2", HealthCheckConfig=TCP)["HealthCheck"]
    assert new["Id"].startswith("hc-0002-")  # ids are never reused
    assert store.count_resources(A.KIND) == 1


def test_update_with_version_and_reset(api):
    c, _ = api
    http = {"Type": "HTTP", "IPAddress": "127.0.0.1", "Port": 8080, "ResourcePath": "/h",
            "FullyQualifiedDomainName": "www.example.test"}
    hc = c.create_health_check(CallerReference="h", HealthCheckConfig=http)["HealthCheck"]
    with pytest.raises(ClientError) as err:
        c.update_health_check(HealthCheckId=hc["Id"], HealthCheckVersion=7, Port=81)
    assert err.value.response["Error"]["Code"] == "HealthCheckVersionMismatch"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    up = c.update_health_check(HealthCheckId=hc["Id"], HealthCheckVersion=1, Port=81, Inverted=True,
                               ResetElements=["ResourcePath"])
    assert conforms(up, "UpdateHealthCheckResponse") == []
    cfg = up["HealthCheck"]["HealthCheckConfig"]
    assert up["HealthCheck"]["HealthCheckVersion"] == 2
    assert (cfg["Port"], cfg["Inverted"], "ResourcePath" in cfg, cfg["FullyQualifiedDomainName"]) == \
        (81, True, False, "www.example.test")
    # without a version the update is unconditional
    assert c.update_health_check(HealthCheckId=hc["Id"], FailureThreshold=5)["HealthCheck"]["HealthCheckVersion"] == 3


def test_calculated_children_must_exist(api):
    c, _ = api
    a = c.create_health_check(CallerReference="a", HealthCheckConfig=TCP)["HealthCheck"]["Id"]
    with pytest.raises(ClientError) as err:
        c.create_health_check(CallerReference="c", HealthCheckConfig={
            "Type": "CALCULATED", "ChildHealthChecks": [a, "hc-9999-00000000"], "HealthThreshold": 1})
    assert "child health check hc-9999-00000000 does not exist" in err.value.response["Error"]["Message"]
    calc = c.create_health_check(CallerReference="c", HealthCheckConfig={
        "Type": "CALCULATED", "ChildHealthChecks": [a], "HealthThreshold": 1})["HealthCheck"]
    assert calc["HealthCheckConfig"] == {"Type": "CALCULATED", "Inverted": False, "Disabled": False,
                                         "HealthThreshold": 1, "ChildHealthChecks": [a]}
    b = c.create_health_check(CallerReference="b", HealthCheckConfig=TCP)["HealthCheck"]["Id"]
    up = c.update_health_check(HealthCheckId=calc["Id"], ChildHealthChecks=[b, a], HealthThreshold=2)
    assert up["HealthCheck"]["HealthCheckConfig"]["ChildHealthChecks"] == [b, a]
    with pytest.raises(ClientError) as err:
        c.update_health_check(HealthCheckId=calc["Id"], ChildHealthChecks=[calc["Id"]])
    assert "can't be its own child" in err.value.response["Error"]["Message"]
    reset = c.update_health_check(HealthCheckId=calc["Id"], ResetElements=["ChildHealthChecks"])
    assert reset["HealthCheck"]["HealthCheckConfig"]["ChildHealthChecks"] == []


def test_pagination_by_marker(api):
    c, _ = api
    ids = [c.create_health_check(CallerReference=f"r{i}", HealthCheckConfig=TCP)["HealthCheck"]["Id"]
           for i in range(5)]
    seen, marker = [], None
    while True:
        kw = {"MaxItems": "2", **({"Marker": marker} if marker else {})}
        page = c.list_health_checks(**kw)
        assert page["MaxItems"] == "2" and len(page["HealthChecks"]) <= 2
        seen += [h["Id"] for h in page["HealthChecks"]]
        if not page["IsTruncated"]:
            break
        marker = page["NextMarker"]
    assert seen == ids
    paginated = [h["Id"] for p in c.get_paginator("list_health_checks").paginate(PaginationConfig={"PageSize": 2})
                 for h in p["HealthChecks"]]
    assert paginated == ids


@pytest.mark.parametrize(("config", "fragment"), [
    ({"Type": "TCP", "IPAddress": "127.0.0.1"}, "Port is required for TCP health checks"),
    ({"Type": "HTTP", "IPAddress": "127.0.0.1", "RequestInterval": 20}, "RequestInterval must be 10 or 30"),
    ({"Type": "CLOUDWATCH_METRIC", "AlarmIdentifier": {"Region": "us-east-1", "Name": "x"}},
     "AlarmIdentifier is not supported by authd"),
    ({"Type": "TCP", "IPAddress": "127.0.0.1", "Port": 1, "Regions": ["us-east-1", "us-west-1", "eu-west-1"]},
     "Regions is not supported by authd"),
    ({"Type": "HTTPS_STR_MATCH", "IPAddress": "127.0.0.1"}, "SearchString is required"),
])
def test_bad_input_is_refused_and_changes_nothing(api, config, fragment):
    c, store = api
    with pytest.raises(ClientError) as err:
        c.create_health_check(CallerReference="bad", HealthCheckConfig=config)
    assert err.value.response["Error"]["Code"] == "InvalidInput"
    assert fragment in err.value.response["Error"]["Message"]
    assert store.count_resources(A.KIND) == 0 and c.get_health_check_count()["HealthCheckCount"] == 0


def test_missing_checks_are_no_such_health_check(api):
    c, _ = api
    for call in (c.get_health_check, c.delete_health_check, c.get_health_check_status,
                 c.get_health_check_last_failure_reason):
        with pytest.raises(ClientError) as err:
            call(HealthCheckId="hc-0042-deadbeef")
        assert err.value.response["Error"]["Code"] == "NoSuchHealthCheck"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as err:
        c.update_health_check(HealthCheckId="hc-0042-deadbeef", Port=1)
    assert err.value.response["Error"]["Code"] == "NoSuchHealthCheck"


def test_raw_xml_with_unknown_elements_is_refused(api):
    _, store = api
    body = (b'<CreateHealthCheckRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
            b"<CallerReference>x</CallerReference><HealthCheckConfig><Type>TCP</Type>"
            b"<IPAddress>127.0.0.1</IPAddress><Port>1</Port><Colour>red</Colour></HealthCheckConfig>"
            b"<Extra>1</Extra></CreateHealthCheckRequest>")
    resp = signed("POST", c_url(api) + "/2013-04-01/healthcheck", body)
    assert resp.status_code == 400 and b"Unknown or unsupported element Extra" in resp.content
    assert store.count_resources(A.KIND) == 0


def signed(method: str, url: str, body: bytes = b"") -> Any:
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method, url, data=body)
    SigV4Auth(Credentials("test", "test"), "route53", "us-east-1").add_auth(req)
    return httpx.request(method, url, content=body, headers=dict(req.headers.items()))


def raw_problems(elem: Any, shape_name: str, path: str) -> list[str]:
    """The raw response XML against the model: every element a member of its shape (in the
    list member's name for lists), every required member there."""
    shape = MODEL["shapes"][shape_name]
    problems: list[str] = []
    if shape["type"] == "structure":
        members = {m.get("locationName", name): (name, m) for name, m in shape.get("members", {}).items()
                   if m.get("location") is None}
        seen = set()
        for child in elem:
            tag = child.tag.rsplit("}", 1)[-1]
            if tag not in members:
                problems.append(f"{path}/{tag}: not a member of {shape_name}")
                continue
            seen.add(members[tag][0])
            problems += raw_problems(child, members[tag][1]["shape"], f"{path}/{tag}")
        for req in shape.get("required", []):
            if req not in seen and shape["members"][req].get("location") is None:
                problems.append(f"{path}: required {req} missing")
    elif shape["type"] == "list":
        item = shape["member"].get("locationName", "member")
        for child in elem:
            tag = child.tag.rsplit("}", 1)[-1]
            if tag != item:
                problems.append(f"{path}/{tag}: list items are {item}")
            else:
                problems += raw_problems(child, shape["member"]["shape"], f"{path}/{tag}")
    elif len(elem):
        problems.append(f"{path}: {shape_name} is a {shape['type']}, not a structure")
    return problems


def test_raw_responses_have_exactly_the_models_members(api):
    """botocore's parser ignores elements the model lacks, so the parsed checks above cannot see
    an extra element: this walks the raw XML of every health-check operation."""
    import xml.etree.ElementTree as ET

    c, _ = api
    url = c_url(api) + "/2013-04-01"
    hc = c.create_health_check(CallerReference="raw", HealthCheckConfig={
        "Type": "HTTPS_STR_MATCH", "IPAddress": "127.0.0.1", "SearchString": "ok", "ResourcePath": "/h",
        "FullyQualifiedDomainName": "www.example.test"})["HealthCheck"]["Id"]
    calc = c.create_health_check(CallerReference="calc", HealthCheckConfig={
        "Type": "CALCULATED", "ChildHealthChecks": [hc], "HealthThreshold": 1})["HealthCheck"]["Id"]
    update = (b'<UpdateHealthCheckRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
              b"<FailureThreshold>4</FailureThreshold></UpdateHealthCheckRequest>")
    create = (b'<CreateHealthCheckRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
              b"<CallerReference>raw-2</CallerReference><HealthCheckConfig><Type>TCP</Type>"
              b"<IPAddress>127.0.0.1</IPAddress><Port>9</Port></HealthCheckConfig></CreateHealthCheckRequest>")
    calls = [
        ("POST", "/healthcheck", create, "CreateHealthCheck"),
        ("GET", f"/healthcheck/{hc}", b"", "GetHealthCheck"),
        ("GET", f"/healthcheck/{calc}", b"", "GetHealthCheck"),
        ("GET", "/healthcheck?maxitems=1", b"", "ListHealthChecks"),
        ("POST", f"/healthcheck/{hc}", update, "UpdateHealthCheck"),
        ("GET", "/healthcheckcount", b"", "GetHealthCheckCount"),
        ("GET", f"/healthcheck/{hc}/status", b"", "GetHealthCheckStatus"),
        ("GET", f"/healthcheck/{hc}/lastfailurereason", b"", "GetHealthCheckLastFailureReason"),
        ("DELETE", f"/healthcheck/{calc}", b"", "DeleteHealthCheck"),
    ]
    for method, path, body, op in calls:
        resp = signed(method, url + path, body)
        model = MODEL["operations"][op]
        assert resp.status_code == model["http"].get("responseCode", 200), (op, resp.text)
        root = ET.fromstring(resp.content)
        out_shape = model["output"]["shape"]
        assert root.tag == "{https://route53.amazonaws.com/doc/2013-04-01/}" + out_shape
        assert raw_problems(root, out_shape, op) == [], resp.text


def c_url(api) -> str:
    return api[0].meta.endpoint_url


def test_awscli_health_check_commands(api, tmp_path):
    """`aws route53 create-health-check` / `list-health-checks` / `get-health-check-status`."""
    import subprocess

    from tests.control_helpers import AWS, aws_env

    if not AWS.exists():
        pytest.skip(f"aws cli not installed at {AWS}")
    url = c_url(api)

    def aws(*args: str) -> dict:
        out = subprocess.run([str(AWS), "--endpoint-url", url, "route53", *args, "--output", "json"],
                             capture_output=True, text=True, env=aws_env(), timeout=60, check=True)
        return json.loads(out.stdout) if out.stdout.strip() else {}

    made = aws("create-health-check", "--caller-reference", "cli-1", "--health-check-config",
               json.dumps({"Type": "TCP", "IPAddress": "127.0.0.1", "Port": 9001}))
    hc_id = made["HealthCheck"]["Id"]
    assert [h["Id"] for h in aws("list-health-checks")["HealthChecks"]] == [hc_id]
    assert aws("get-health-check-count")["HealthCheckCount"] == 1
    assert aws("get-health-check-status", "--health-check-id", hc_id)["HealthCheckObservations"] == []
    aws("delete-health-check", "--health-check-id", hc_id)
    assert aws("list-health-checks")["HealthChecks"] == []


@pytest.mark.skipif(not hasattr(__import__("authd.model.records").model.records.RecordSet, "health_check_id"),
                    reason="waiting for routing policies (records.RecordSet.health_check_id) to be merged")
def test_delete_while_record_sets_name_it_is_allowed_and_logged(api, caplog):
    """Route 53 "does not prevent you from deleting a health check even if the health check is
    associated with one or more resource record sets" (DeleteHealthCheck); octoDNS relies on it
    (it deletes unused checks before the batch that stops using them)."""
    import logging

    caplog.set_level(logging.INFO, logger="authd.health")
    c, store = api
    zone = c.create_hosted_zone(Name="inuse.test.", CallerReference="z")["HostedZone"]["Id"]
    hc = c.create_health_check(CallerReference="a", HealthCheckConfig=TCP)["HealthCheck"]["Id"]
    c.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": "www.inuse.test.", "Type": "A", "TTL": 60, "SetIdentifier": "one", "Weight": 1,
        "HealthCheckId": hc, "ResourceRecords": [{"Value": "192.0.2.1"}]}}]})
    c.delete_health_check(HealthCheckId=hc)
    assert store.count_resources(A.KIND) == 0
    assert any(f"deleted {hc} although record sets still name it" in r.getMessage()
               and "www.inuse.test. A [one]" in r.getMessage() for r in caplog.records)


def test_too_many_health_checks(api):
    c, store = api
    for i in range(A.MAX_HEALTH_CHECKS):
        A.create_step(store, f"r{i}", A.H.parse_config({"Type": "TCP", "IPAddress": "127.0.0.1", "Port": "1"}))
    with pytest.raises(ClientError) as err:
        c.create_health_check(CallerReference="one-more", HealthCheckConfig=TCP)
    assert err.value.response["Error"]["Code"] == "TooManyHealthChecks"
    assert store.count_resources(A.KIND) == A.MAX_HEALTH_CHECKS
