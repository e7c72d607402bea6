"""End to end: a real `authd serve --geo-map`, boto3 writing geolocation, latency, failover
and multivalue sets through the change API, and real `dig` from different mapped subnets
(`+subnet=`, and source addresses with `-b`) getting the answers the rules say, with the
EDNS Client Subnet option echoed. Health statuses are written to the store's file as the
prober writes them (RESOURCE journal entries), and the running server follows them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from authd.store.sqlstore import SQLiteStore
from tests.control_helpers import client

ROOT = Path(__file__).resolve().parent.parent
DIG = shutil.which("dig")
HC = "0d6a1d2e-0000-4000-8000-0000000000e2"
pytestmark = [pytest.mark.realtime,
              pytest.mark.skipif(DIG is None, reason="dig (bind9-dnsutils) is not installed")]


@pytest.fixture
def server(tmp_path: Path):
    store = tmp_path / "store.db"
    (tmp_path / "nozones").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "authd", "serve", "--zones", str(tmp_path / "nozones"),
         "--store", str(store), "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
         "--geo-map", str(ROOT / "zones" / "geo-map.txt")],
        stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    url = port = None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if m := re.search(r"authd listening on 127\.0\.0\.1 port (\d+)", line):
            port = int(m.group(1))
        if "control API (Route 53 2013-04-01) on " in line:
            url = line.rsplit(" on ", 1)[1].strip()
        if url and port:
            break
    else:
        raise AssertionError(f"server did not start (exit {proc.wait()}): {''.join(seen)}")
    assert any("geo map " in line and "9 blocks" in line for line in seen), seen
    # keep reading the server's log, or a full pipe would stall whichever task logs next
    drain = threading.Thread(target=lambda: seen.extend(proc.stderr), daemon=True)
    drain.start()
    try:
        yield url, port, store
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def dig(port: int, name: str, *args: str) -> str:
    out = subprocess.run([DIG, "@127.0.0.1", "-p", str(port), "+norecurse", "+tries=1",
                          "+time=5", name, "A", *args],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout


def answers(text: str) -> set[str]:
    return set(re.findall(r"\sIN\s+A\s+(\S+)", text.split("ANSWER SECTION:")[-1])) \
        if "ANSWER SECTION:" in text else set()


def wait_for(port: int, name: str, want: set[str], deadline: float = 20.0) -> set[str]:
    """The server follows the store file's journal: poll dig until it shows `want`."""
    end = time.monotonic() + deadline
    got: set[str] = set()
    while time.monotonic() < end:
        got = answers(dig(port, name))
        if got == want:
            return got
        time.sleep(0.1)
    return got


def rrset(name: str, ident: str, value: str, **extra) -> dict:
    return {"Action": "CREATE", "ResourceRecordSet": {
        "Name": name, "Type": "A", "SetIdentifier": ident, "TTL": 30,
        "ResourceRecords": [{"Value": value}], **extra}}


def test_routing_policies_answered_by_real_dig(server):
    url, port, store_path = server
    r53 = client(url)
    zone = r53.create_hosted_zone(Name="geo.test.", CallerReference="e2e")["HostedZone"]["Id"]
    # the health check as the health-check API stores it, and its status as the prober does
    store = SQLiteStore(str(store_path))
    store.put_resource("healthcheck", HC, {"Type": "TCP", "IPAddress": "127.0.0.1", "Port": 9})
    store.put_resource("healthcheck-status", HC, {"healthy": True}, journal=True)
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        rrset("www.geo.test.", "ca", "192.0.2.1", GeoLocation={"CountryCode": "US", "SubdivisionCode": "CA"}),
        rrset("www.geo.test.", "eu", "192.0.2.2", GeoLocation={"ContinentCode": "EU"}),
        rrset("www.geo.test.", "any", "192.0.2.9", GeoLocation={"CountryCode": "*"}),
        rrset("lat.geo.test.", "use1", "198.51.100.1", Region="us-east-1"),
        rrset("lat.geo.test.", "euw1", "198.51.100.2", Region="eu-west-1"),
        rrset("lat.geo.test.", "apne1", "198.51.100.3", Region="ap-northeast-1"),
        rrset("fo.geo.test.", "primary", "203.0.113.1", Failover="PRIMARY", HealthCheckId=HC),
        rrset("fo.geo.test.", "secondary", "203.0.113.2", Failover="SECONDARY"),
        *(rrset("mv.geo.test.", f"v{i}", f"192.0.2.{50 + i}", MultiValueAnswer=True) for i in range(3)),
    ]})
    listed = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    by_id = {s.get("SetIdentifier"): s for s in listed}
    assert by_id["ca"]["GeoLocation"] == {"CountryCode": "US", "SubdivisionCode": "CA"}
    assert by_id["primary"]["HealthCheckId"] == HC and by_id["primary"]["Failover"] == "PRIMARY"
    assert by_id["apne1"]["Region"] == "ap-northeast-1" and by_id["v0"]["MultiValueAnswer"] is True

    # geolocation by EDNS Client Subnet, the option echoed with the deciding block's scope
    out = dig(port, "www.geo.test", "+subnet=127.0.1.0/24")
    assert answers(out) == {"192.0.2.1"}
    assert "CLIENT-SUBNET: 127.0.1.0/24/24" in out
    assert answers(dig(port, "www.geo.test", "+subnet=127.0.2.0/24")) == {"192.0.2.2"}
    assert answers(dig(port, "www.geo.test", "+subnet=127.0.4.0/24")) == {"192.0.2.9"}
    # latency by the source address (no ECS): a Tokyo client, a Frankfurt client
    assert answers(dig(port, "lat.geo.test", "-b", "127.0.4.1")) == {"198.51.100.3"}
    assert answers(dig(port, "lat.geo.test", "-b", "127.0.2.1")) == {"198.51.100.2"}
    assert answers(dig(port, "lat.geo.test", "+subnet=127.0.1.0/24")) == {"198.51.100.1"}
    # multivalue: every healthy record
    assert answers(dig(port, "mv.geo.test")) == {"192.0.2.50", "192.0.2.51", "192.0.2.52"}
    # failover follows the health status the prober writes
    assert answers(dig(port, "fo.geo.test")) == {"203.0.113.1"}
    store.put_resource("healthcheck-status", HC, {"healthy": False}, journal=True)
    assert wait_for(port, "fo.geo.test", {"203.0.113.2"}) == {"203.0.113.2"}
    store.put_resource("healthcheck-status", HC, {"healthy": True}, journal=True)
    assert wait_for(port, "fo.geo.test", {"203.0.113.1"}) == {"203.0.113.1"}
    # IP-based routing: a CIDR collection made through the API, learned through the journal
    cid = r53.create_cidr_collection(Name="offices", CallerReference="e2e")["Collection"]["Id"]
    r53.change_cidr_collection(Id=cid, Changes=[
        {"LocationName": "hq", "Action": "PUT", "CidrList": ["127.0.9.0/24"]}])
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        rrset("ip.geo.test.", "hq", "192.0.2.101", CidrRoutingConfig={"CollectionId": cid, "LocationName": "hq"}),
        rrset("ip.geo.test.", "any", "192.0.2.109", CidrRoutingConfig={"CollectionId": cid, "LocationName": "*"}),
    ]})
    assert answers(dig(port, "ip.geo.test", "-b", "127.0.9.7")) == {"192.0.2.101"}
    assert answers(dig(port, "ip.geo.test", "-b", "127.0.3.7")) == {"192.0.2.109"}
    out = dig(port, "ip.geo.test", "+subnet=127.0.9.0/24")
    assert answers(out) == {"192.0.2.101"} and "CLIENT-SUBNET: 127.0.9.0/24/24" in out
    store.close()
