"""Acceptance (issue 11): a failover pair behind a real TCP health check, real `authd serve`,
real `dig`, real boto3.

A loopback listener started here is the PRIMARY's endpoint. Stop it, and dig switches to the
SECONDARY within RequestInterval x FailureThreshold plus one interval; start it again and dig
switches back. Both switches are log lines of the server and show in GetHealthCheckStatus.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from authd.model import records
from tests.control_helpers import client

INTERVAL, THRESHOLD = 10, 2
BOUND = INTERVAL * THRESHOLD + INTERVAL  # the promise
SLACK = 5.0  # a busy shared machine: process scheduling, dig's own time
PRIMARY, SECONDARY = "192.0.2.10", "192.0.2.20"

pytestmark = [
    pytest.mark.realtime,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed"),
    pytest.mark.skipif(not hasattr(records.RecordSet, "health_check_id"),
                       reason="waiting for routing policies (records.RecordSet.health_check_id, "
                       "failover answers in authd.dns.answer) to be merged"),
]


class Listener:
    """A TCP listener on 127.0.0.1 that accepts and closes; stop() makes the port refuse."""

    def __init__(self, port: int = 0):
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # already stopped
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


class Server:
    """`authd serve` in its own process; its log lines collected as they come."""

    def __init__(self, zones: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "authd", "serve", "--zones", str(zones), "--store", ":memory:",
             "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
            stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.url = ""
        self.dns_port = 0
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(60) or not self.url:
            self.stop()
            raise AssertionError("authd serve did not start:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if m := re.search(r"primary: DNS on \S+ port (\d+)", line):
                self.dns_port = int(m.group(1))
            if "control API (Route 53 2013-04-01) on " in line:
                self.url = line.rsplit(" on ", 1)[1].strip()
                self.ready.set()
        self.ready.set()

    def stop(self) -> None:
        self.proc.terminate()  # by PID, the process this test started
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def dig(port: int) -> str:
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", "+norecurse", "+time=2",
                          "+tries=1", "www.failover.test", "A"], capture_output=True, text=True, timeout=10)
    return out.stdout.strip()


def wait_for_answer(port: int, want: str, since: float) -> float:
    """Seconds from `since` until dig answers `want` (polling every 0.25 s)."""
    deadline = since + BOUND + SLACK + 10
    while time.monotonic() < deadline:
        if dig(port) == want:
            return time.monotonic() - since
        time.sleep(0.25)
    raise AssertionError(f"dig never answered {want} within {deadline - since:.0f} s")


def test_failover_follows_a_real_tcp_health_check(tmp_path: Path):
    (tmp_path / "zones").mkdir()
    listener = Listener()
    server = Server(tmp_path / "zones")
    try:
        r53 = client(server.url)
        zone = r53.create_hosted_zone(Name="failover.test.", CallerReference="e2e")["HostedZone"]["Id"]
        hc = r53.create_health_check(CallerReference="e2e-primary", HealthCheckConfig={
            "Type": "TCP", "IPAddress": "127.0.0.1", "Port": listener.port,
            "RequestInterval": INTERVAL, "FailureThreshold": THRESHOLD})["HealthCheck"]["Id"]

        def member(role: str, value: str, **extra: str) -> dict:
            return {"Action": "CREATE", "ResourceRecordSet": {
                "Name": "www.failover.test.", "Type": "A", "TTL": 0, "SetIdentifier": role.lower(),
                "Failover": role, "ResourceRecords": [{"Value": value}], **extra}}

        r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
            member("PRIMARY", PRIMARY, HealthCheckId=hc), member("SECONDARY", SECONDARY)]})
        assert wait_for_answer(server.dns_port, PRIMARY, time.monotonic()) < 5

        stopped = time.monotonic()
        listener.stop()
        took_down = wait_for_answer(server.dns_port, SECONDARY, stopped)
        assert took_down <= BOUND + SLACK, f"switch to SECONDARY took {took_down:.1f} s"
        status = r53.get_health_check_status(HealthCheckId=hc)["HealthCheckObservations"]
        assert status and status[0]["StatusReport"]["Status"] == "Failure: Connection refused."
        reason = r53.get_health_check_last_failure_reason(HealthCheckId=hc)["HealthCheckObservations"]
        assert reason[0]["StatusReport"]["Status"] == "Failure: Connection refused."

        started = time.monotonic()
        listener = Listener(listener.port)
        took_up = wait_for_answer(server.dns_port, PRIMARY, started)
        assert took_up <= BOUND + SLACK, f"switch back to PRIMARY took {took_up:.1f} s"
        status = r53.get_health_check_status(HealthCheckId=hc)["HealthCheckObservations"]
        assert status[0]["StatusReport"]["Status"] == "Success: TCP connection established."
    finally:
        server.stop()
        listener.stop()
    log = "".join(server.lines)
    target = f"health {hc} tcp 127.0.0.1:{listener.port}"
    assert f"{target} HEALTHY -> UNHEALTHY ({THRESHOLD} failures: Failure: Connection refused.)" in log
    assert f"{target} UNHEALTHY -> HEALTHY ({THRESHOLD} successes: Success: TCP connection established.)" in log
    print(f"failover: down in {took_down:.1f} s, back in {took_up:.1f} s (bound {BOUND} s)")
