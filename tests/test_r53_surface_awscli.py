"""The aws cli (PyPI awscli, unchanged) against a real `authd serve` process: every route53
subcommand of the hosted-zone surface (issue 11 section 3), and TestDNSAnswer checked
against what real `dig` gets from the same process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.control_helpers import AWS, aws_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def served(tmp_path):
    """`authd serve` on loopback ephemeral ports, with two quotas lowered by --limit."""
    if not AWS.exists():
        pytest.skip("aws CLI not installed (PyPI awscli, `make venv`)")
    proc = subprocess.Popen(
        [sys.executable, "-m", "authd", "serve", "--zones", str(ROOT / "zones"), "--store", str(tmp_path / "a.db"),
         "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
         "--limit", "MAX_HOSTED_ZONES_BY_OWNER=4", "--limit", "MAX_RRSETS_BY_ZONE=20"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert proc.stderr is not None
    url, dns = None, None
    for line in proc.stderr:
        if "primary: DNS on " in line:
            host, port = line.rsplit("DNS on ", 1)[1].split(",")[0].split(" port ")
            dns = (host, int(port))
        if "control API (Route 53 2013-04-01) on " in line:
            url = line.rsplit(" on ", 1)[1].strip()
        if url and dns:
            break
    assert url and dns, f"authd serve did not start (exit {proc.poll()})"
    threading.Thread(target=lambda: [None for _ in proc.stderr or ()], daemon=True).start()

    def aws(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        env = aws_env() | {"AWS_ENDPOINT_URL": url, "AWS_ENDPOINT_URL_ROUTE_53": url}
        out = subprocess.run([str(AWS), "--endpoint-url", url, "--output", "json", "route53", *args],
                             capture_output=True, text=True, env=env, timeout=60)
        if ok:
            assert out.returncode == 0, out.stderr
        return out

    try:
        yield aws, dns
    finally:
        proc.terminate()
        proc.wait(30)


def js(proc: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


@pytest.mark.slow
@pytest.mark.realtime
def test_aws_cli_every_surface_subcommand(served):
    aws, (dns_host, dns_port) = served
    # quotas, as configured by --limit
    assert js(aws("get-hosted-zone-count"))["HostedZoneCount"] == 3
    limit = js(aws("get-account-limit", "--type", "MAX_HOSTED_ZONES_BY_OWNER"))
    assert limit == {"Limit": {"Type": "MAX_HOSTED_ZONES_BY_OWNER", "Value": 4}, "Count": 3}
    zl = js(aws("get-hosted-zone-limit", "--hosted-zone-id", "Z0API0AWS", "--type", "MAX_RRSETS_BY_ZONE"))
    assert zl["Limit"]["Value"] == 20 and zl["Count"] > 0

    # tags
    aws("change-tags-for-resource", "--resource-type", "hostedzone", "--resource-id", "Z0API0AWS",
        "--add-tags", "Key=team,Value=dns", "Key=env,Value=lab")
    aws("change-tags-for-resource", "--resource-type", "hostedzone", "--resource-id", "Z0API0AWS",
        "--remove-tag-keys", "env")
    tags = js(aws("list-tags-for-resource", "--resource-type", "hostedzone", "--resource-id", "Z0API0AWS"))
    assert tags["ResourceTagSet"]["Tags"] == [{"Key": "team", "Value": "dns"}]
    many = js(aws("list-tags-for-resources", "--resource-type", "hostedzone", "--resource-ids", "Z0API0AWS", "Z0AMAZONAWS"))
    assert [s["ResourceId"] for s in many["ResourceTagSets"]] == ["Z0API0AWS", "Z0AMAZONAWS"]

    # reusable delegation sets, and a zone that takes its name servers from one
    ds = js(aws("create-reusable-delegation-set", "--caller-reference", "cli-ds"))["DelegationSet"]
    assert ds["Id"] == "/delegationset/N00000001" and len(ds["NameServers"]) == 4
    assert js(aws("get-reusable-delegation-set", "--id", ds["Id"]))["DelegationSet"]["NameServers"] == ds["NameServers"]
    assert [d["Id"] for d in js(aws("list-reusable-delegation-sets"))["DelegationSets"]] == [ds["Id"]]
    zone = js(aws("create-hosted-zone", "--name", "cli-ds.test", "--caller-reference", "cli-z",
                  "--delegation-set-id", ds["Id"]))
    assert zone["DelegationSet"]["NameServers"] == ds["NameServers"]
    ns = subprocess.run(["dig", f"@{dns_host}", "-p", str(dns_port), "+short", "+norecurse", "cli-ds.test", "NS"],
                        capture_output=True, text=True, timeout=30).stdout.split() if shutil.which("dig") else None
    if ns is not None:  # the delegation set's servers, served by DNS itself
        assert sorted(ns) == sorted(ds["NameServers"])
    in_use = aws("delete-reusable-delegation-set", "--id", ds["Id"], ok=False)
    assert in_use.returncode != 0 and "DelegationSetInUse" in in_use.stderr
    # the zone quota (4): the fifth zone is refused
    too_many = aws("create-hosted-zone", "--name", "fifth.test", "--caller-reference", "cli-5", ok=False)
    assert too_many.returncode != 0 and "TooManyHostedZones" in too_many.stderr
    aws("delete-hosted-zone", "--id", zone["HostedZone"]["Id"])
    aws("delete-reusable-delegation-set", "--id", ds["Id"])

    # reference data
    assert js(aws("get-checker-ip-ranges"))["CheckerIpRanges"] == ["127.0.0.0/8", "::1/128"]
    geo = js(aws("list-geo-locations", "--max-items", "5"))  # the cli pages by itself
    assert geo["GeoLocationDetailsList"][0] == {"CountryCode": "*", "CountryName": "Default"}
    assert len(geo["GeoLocationDetailsList"]) == 5
    first = js(aws("list-geo-locations"))  # no paginator for this one: a page of 100
    assert len(first["GeoLocationDetailsList"]) == 100 and first["IsTruncated"] is True
    last = js(aws("list-geo-locations", "--start-continent-code", "AF"))
    assert last["GeoLocationDetailsList"][-1] == {"ContinentCode": "SA", "ContinentName": "South America"}
    assert len(last["GeoLocationDetailsList"]) == 7 and last["IsTruncated"] is False
    got = js(aws("get-geo-location", "--country-code", "US", "--subdivision-code", "NY"))
    assert got["GeoLocationDetails"]["SubdivisionName"] == "New York"

    # DNSSEC
    dnssec = js(aws("get-dnssec", "--hosted-zone-id", "Z0API0AWS"))
    assert dnssec["Status"]["ServeSignature"] == "NOT_SIGNING" and dnssec["KeySigningKeys"] == []
    refused = aws("enable-hosted-zone-dnssec", "--hosted-zone-id", "Z0API0AWS", ok=False)
    assert refused.returncode != 0 and "authd does not sign zones" in refused.stderr

    # TestDNSAnswer asks the very index DNS is served from: it agrees with dig
    answer = js(aws("test-dns-answer", "--hosted-zone-id", "Z0API0AWS", "--record-name", "api.aws",
                    "--record-type", "NS", "--resolver-ip", "127.0.0.1",
                    "--edns0-client-subnet-ip", "127.0.0.0", "--edns0-client-subnet-mask", "24"))
    assert answer["ResponseCode"] == "NOERROR" and answer["Protocol"] == "UDP"
    if shutil.which("dig"):
        out = subprocess.run(["dig", f"@{dns_host}", "-p", str(dns_port), "+short", "+norecurse", "api.aws", "NS"],
                             capture_output=True, text=True, timeout=30).stdout.split()
        assert sorted(answer["RecordData"]) == sorted(out)
    nx = js(aws("test-dns-answer", "--hosted-zone-id", "Z0API0AWS", "--record-name", "nope.api.aws",
                "--record-type", "A"))
    assert nx["ResponseCode"] == "NXDOMAIN" and nx["RecordData"] == []
