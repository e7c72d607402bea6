"""Acceptance: a failover pair behind a TCP health check on a loopback listener, seen with dig.

Issue 11 "Done when": stop the listener and `dig` switches to SECONDARY within
RequestInterval x FailureThreshold plus one interval; start it again and it switches back.
Both switches appear as authd log lines and in GetHealthCheckStatus. Everything goes through
the real processes: boto3 to `authd serve`'s change API, authd's own prober against a TCP
listener this test owns on 127.0.0.41, real dig against authd's DNS port.

Until authd has health checks and failover routing (other branches of issue 11) this skips,
naming what is missing.
"""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from authd import localnet
from tests.acceptance_helpers import Authd, authd_serve, dig, need
from tests.test_acceptance_octodns import Listeners

pytestmark = [pytest.mark.realtime, pytest.mark.slow]

INTERVAL, THRESHOLD = 10, 1  # Route 53 allows RequestInterval 10 or 30; threshold 1..10
BOUND = INTERVAL * THRESHOLD + INTERVAL  # the bound for one switch
SLACK = 10  # a busy shared machine: probes and dig are real processes


def _await_answer(authd: Authd, want: str, deadline: float) -> float:
    """Seconds until dig answers only `want` for www.fo.test A (polled like a client would:
    the switch happens on the prober's clock, with no event to await from outside)."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        if dig(authd, "www.fo.test", "A").values() == [want]:
            return time.monotonic() - start
        time.sleep(0.25)
    raise AssertionError(f"www.fo.test still not {want} after {deadline:g}s")


def _status(r53, hc_id: str) -> list[str]:
    seen = r53.get_health_check_status(HealthCheckId=hc_id)["HealthCheckObservations"]
    return [o["StatusReport"]["Status"] for o in seen]


def test_failover_pair_follows_a_tcp_health_check(tmp_path: Path) -> None:
    need("dig", "Debian package bind9-dnsutils")
    port = localnet.free_port()
    target = Listeners(port)
    target.start("127.0.0.41")
    try:
        with authd_serve(tmp_path) as authd:
            r53 = boto3.client("route53", endpoint_url=authd.url, region_name="us-east-1",
                               aws_access_key_id="test", aws_secret_access_key="test")
            zone = r53.create_hosted_zone(Name="fo.test", CallerReference="fo-1")["HostedZone"]["Id"]
            try:
                hc = r53.create_health_check(CallerReference="fo-hc-1", HealthCheckConfig={
                    "Type": "TCP", "IPAddress": "127.0.0.41", "Port": port,
                    "RequestInterval": INTERVAL, "FailureThreshold": THRESHOLD})["HealthCheck"]["Id"]
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "UnknownOperation":
                    pytest.skip("authd has no Route 53 operation CreateHealthCheck yet "
                                "(health-checks branch, issue 11)")
                raise

            def member(role: str, value: str, **more: str) -> dict:
                return {"Action": "CREATE", "ResourceRecordSet": {
                    "Name": "www.fo.test", "Type": "A", "SetIdentifier": role.lower(),
                    "Failover": role, "TTL": 5, "ResourceRecords": [{"Value": value}], **more}}

            try:
                r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
                    member("PRIMARY", "192.0.2.1", HealthCheckId=hc),
                    member("SECONDARY", "192.0.2.2")]})
            except ClientError as exc:
                if "needs both SetIdentifier and Weight" in str(exc):
                    pytest.skip("authd does not take Failover record sets yet "
                                "(routing-policies branch, issue 11)")
                raise

            # Healthy (a new check starts healthy, as in Route 53): the PRIMARY answers.
            _await_answer(authd, "192.0.2.1", BOUND + SLACK)

            target.stop("127.0.0.41")
            down = _await_answer(authd, "192.0.2.2", BOUND + SLACK)
            assert any(hc in line and "-> UNHEALTHY" in line for line in authd.log), authd.log_text()
            assert _status(r53, hc) and all(s.startswith("Failure") for s in _status(r53, hc))

            target.start("127.0.0.41")
            up = _await_answer(authd, "192.0.2.1", BOUND + SLACK)
            assert any(hc in line and "-> HEALTHY" in line for line in authd.log), authd.log_text()
            assert _status(r53, hc) and all(s.startswith("Success") for s in _status(r53, hc))
            # The bound, measured from the moment the listener changed.
            assert down <= BOUND + SLACK and up <= BOUND + SLACK, (down, up)
            print(f"failover switch after {down:.1f}s, back after {up:.1f}s (bound {BOUND}s)")
    finally:
        target.stop_all()
