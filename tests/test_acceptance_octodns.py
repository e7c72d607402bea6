"""Acceptance: octoDNS (`octodns` + `octodns-route53` from PyPI, unchanged) against `authd serve`.

Issue 11 "Done when", run from the README recipes `env`, `octodns`, `geo-map` and
`octodns-dynamic` with free ports swapped in:
- a plain zone (A, AAAA, CNAME, MX, TXT, SRV, CAA, NAPTR and a Route 53 alias) is applied,
  the second sync plans no changes, and `octodns-dump` gives the same records back;
- a dynamic record (weighted pools, failover between pools, geo rules, TCP health checks on
  loopback listeners the test owns) and one with subnet rules (IP-based routing) are applied,
  re-planned clean and dumped back equal, and real `dig +subnet=` gets the pool the rules
  name for clients in each mapped subnet; when a pool's listeners stop, its clients fail
  over to the fallback pool, and back.

octodns-route53 calls operations (ListHealthChecks before every apply, CreateHealthCheck,
ChangeTagsForResource) that other branches add to authd. Until authd has them a test skips,
naming the operation authd answered UnknownOperation to; any other failure fails.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from authd import localnet
from tests.acceptance_helpers import (
    README_API,
    README_DNS_PORT,
    Authd,
    authd_serve,
    dig,
    need,
    route53_env,
    run_recipe,
)

pytestmark = [pytest.mark.realtime, pytest.mark.slow]

_UNKNOWN_OP = re.compile(r"\(UnknownOperation\) when calling the (\w+) operation")


def _needs_tools() -> None:
    need("octodns-sync", "PyPI octodns and octodns-route53, `make venv`")
    need("dig", "Debian package bind9-dnsutils")


def _run_or_skip(names: list[str], cwd: Path, authd: Authd, extra: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
    """Run README recipes; skip naming the Route 53 operation authd lacks, else must succeed."""
    replace = {README_API: authd.url, f"-p {README_DNS_PORT}": f"-p {authd.dns_port}",
               **(extra or {})}
    proc = run_recipe(names, cwd, route53_env(authd.url), replace, check=False)
    if proc.returncode != 0 and (m := _UNKNOWN_OP.search(proc.stderr)):
        pytest.skip(f"authd has no Route 53 operation {m.group(1)} yet (octodns-route53 calls "
                    "it; issue 11)")
    assert proc.returncode == 0, f"recipe failed\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc


def _records(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """An octoDNS zone YAML as {(name, type): record}, values always a list, for comparing.

    The apex NS set is left out (authd, like Route 53, makes it with the zone; the source
    does not manage it), and so is an alias's TTL (Route 53 aliases have none; octodns-route53
    dumps a placeholder). An alias's default fields (evaluate-target-health false, no
    hosted-zone-id: the same zone) are dropped, as octodns-route53 reads them back so.
    """
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for name, entry in (yaml.safe_load(path.read_text()) or {}).items():
        for rec in entry if isinstance(entry, list) else [entry]:
            rec = dict(rec)
            if name == "" and rec["type"] == "NS":
                continue
            values = rec.pop("values", None) or [rec.pop("value")]
            rec.pop("value", None)
            if rec["type"] == "Route53Provider/ALIAS":
                rec.pop("ttl", None)
                values = [{k: v for k, v in val.items()
                           if (k, v) not in (("evaluate-target-health", False), ("hosted-zone-id", None))}
                          for val in values]
            rec["values"] = sorted(values, key=repr)
            # octoDNS's own defaults, which a dump spells out: weight 1, status obey, no fallback.
            for pool in rec.get("dynamic", {}).get("pools", {}).values():
                pool.setdefault("fallback", None)
                for member in pool["values"]:
                    member.setdefault("weight", 1)
                    member.setdefault("status", "obey")
            # Provider settings (the health check's port, protocol, interval) are not record
            # data and cannot be read back; the test checks them in the health checks instead.
            rec.pop("octodns", None)
            rec.setdefault("ttl", 300)
            out[(str(name), rec["type"])] = rec
    return out


def test_octodns_plain_zone_apply_replan_dump(tmp_path: Path) -> None:
    _needs_tools()
    with authd_serve(tmp_path) as authd:
        _run_or_skip(["env", "octodns"], tmp_path, authd)

        # What octoDNS applied, through real DNS.
        def answer(name: str, rtype: str) -> list[str]:
            res = dig(authd, name, rtype)
            assert res.status == "NOERROR" and "aa" in res.flags, res.text
            return sorted(res.values())

        assert answer("octo.test", "A") == ["192.0.2.1", "192.0.2.2"]
        assert answer("octo.test", "AAAA") == ["2001:db8::1"]
        assert answer("octo.test", "CAA") == ['0 issue "letsencrypt.org"']
        assert answer("octo.test", "MX") == ["10 mx1.octo.test.", "20 mx2.octo.test."]
        assert answer("octo.test", "TXT") == ['"hello world"', '"v=spf1 -all"']
        assert answer("_sip._tcp.octo.test", "SRV") == ["10 60 5060 sip.octo.test."]
        assert answer("sip.octo.test", "NAPTR") == ['100 10 "S" "SIP+D2T" "" _sip._tcp.octo.test.']
        www = dig(authd, "www.octo.test", "A")
        assert ("www.octo.test.", "CNAME", "octo.test.") in [(r[0], r[3], r[4]) for r in www.answer]
        # The alias answers as the apex's A set under its own name, with no CNAME (Route 53).
        api = dig(authd, "api.octo.test", "A")
        assert sorted((r[0], r[3], r[4]) for r in api.answer) == [
            ("api.octo.test.", "A", "192.0.2.1"), ("api.octo.test.", "A", "192.0.2.2")]

        # The dump is the source, record for record.
        source = _records(tmp_path / "octodns" / "zones" / "octo.test.yaml")
        dumped = _records(tmp_path / "dump" / "octo.test.yaml")
        assert len(source) == 9
        assert dumped == source


class Listeners:
    """TCP listeners on loopback addresses, the targets of the health checks; start/stop each."""

    def __init__(self, port: int):
        self.port = port
        self._socks: dict[str, socket.socket] = {}

    def start(self, host: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, self.port))
        sock.listen(64)
        self._socks[host] = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    @staticmethod
    def _accept(sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed by stop()
            conn.close()

    def stop(self, host: str) -> None:
        sock = self._socks.pop(host)
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def stop_all(self) -> None:
        for host in list(self._socks):
            self.stop(host)


def _has_geo_map(cwd: Path) -> bool:
    """Whether `authd serve` (run as the harness runs it, from `cwd`) has --geo-map."""
    helptext = subprocess.run([sys.executable, "-m", "authd", "serve", "--help"], cwd=cwd,
                              capture_output=True, text=True, check=True).stdout
    return "--geo-map" in helptext


def _answers(authd: Authd, subnet: str, times: int = 1, name: str = "app.geo.test") -> set[str]:
    got: set[str] = set()
    for _ in range(times):
        res = dig(authd, f"+subnet={subnet}", name, "A")
        assert res.status == "NOERROR", res.text
        assert "CLIENT-SUBNET" in res.text, f"ECS not echoed (RFC 7871 §7.2.1): {res.text}"
        got.update(res.values())
    return got


def _await_answer(authd: Authd, subnet: str, want: set[str], deadline: float) -> float:
    """Seconds until every answer for `subnet` is within `want` (polling real DNS, as a client
    would: the switch is the prober's, on its own clock, and has no event we could await)."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        if _answers(authd, subnet, times=4) <= want:
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"{subnet} still not answered {want} after {deadline:g}s")


def test_octodns_dynamic_record_pools_failover_geo_health(tmp_path: Path) -> None:
    _needs_tools()
    if not _has_geo_map(tmp_path):
        pytest.skip("authd serve has no --geo-map yet (routing-policies branch, issue 11)")
    port = str(localnet.free_port())
    run_recipe("geo-map", tmp_path, route53_env("http://127.0.0.1:1"), {})
    targets = Listeners(int(port))
    for host in ("127.0.0.11", "127.0.0.12", "127.0.0.21", "127.0.0.31"):
        targets.start(host)
    try:
        with authd_serve(tmp_path, "--geo-map", str(tmp_path / "geo-map.txt")) as authd:
            _run_or_skip(["env", "octodns-dynamic"], tmp_path, authd, {"18080": port})
            dumped = _records(tmp_path / "geo-dump" / "geo.test.yaml")
            source = _records(tmp_path / "octodns" / "geo" / "geo.test.yaml")
            assert dumped[("app", "A")]["dynamic"] == source[("app", "A")]["dynamic"]
            assert dumped == source
            # One TCP health check per pool value, as the record's octodns settings say.
            r53 = boto3.client("route53", endpoint_url=authd.url, region_name="us-east-1",
                               aws_access_key_id="test", aws_secret_access_key="test")
            checks = r53.list_health_checks()["HealthChecks"]
            configs = sorted((c["HealthCheckConfig"]["IPAddress"], c["HealthCheckConfig"]["Type"],
                              c["HealthCheckConfig"]["Port"], c["HealthCheckConfig"]["RequestInterval"],
                              c["HealthCheckConfig"]["FailureThreshold"]) for c in checks)
            assert configs == [(ip, "TCP", int(port), 10, 1) for ip in
                               ("127.0.0.11", "127.0.0.12", "127.0.0.21", "127.0.0.31")]

            # Every check is healthy once probed: each subnet gets its rule's pool. The first
            # probe results take up to one RequestInterval (10 s) to come in.
            _await_answer(authd, "10.1.0.0/24", {"127.0.0.11", "127.0.0.12"}, 60)
            assert _answers(authd, "10.1.0.0/24", times=40) == {"127.0.0.11", "127.0.0.12"}
            assert _answers(authd, "10.2.0.0/24", times=4) == {"127.0.0.31"}
            assert _answers(authd, "10.3.0.0/24", times=4) == {"127.0.0.21"}
            # IP-based routing (the `net` record's subnet rule, a CIDR collection location).
            assert _answers(authd, "10.9.1.0/24", times=4, name="net.geo.test") == {"127.0.0.51"}
            assert _answers(authd, "10.3.0.0/24", times=4, name="net.geo.test") == {"127.0.0.52"}

            # Weighted with health checks: a member whose check fails is left out.
            bound = 10 * 1 + 10 + 15  # RequestInterval x FailureThreshold + one interval + slack
            targets.stop("127.0.0.11")
            _await_answer(authd, "10.1.0.0/24", {"127.0.0.12"}, bound)
            # Failover between pools: with both eu members down, `_octodns-eu-pool`'s PRIMARY
            # is unhealthy (EvaluateTargetHealth) and EU clients get its SECONDARY, the us pool.
            targets.stop("127.0.0.12")
            took = _await_answer(authd, "10.1.0.0/24", {"127.0.0.21"}, bound)
            assert _answers(authd, "10.2.0.0/24", times=4) == {"127.0.0.31"}
            check_11 = next(c["Id"] for c in checks
                            if c["HealthCheckConfig"]["IPAddress"] == "127.0.0.11")
            seen = r53.get_health_check_status(HealthCheckId=check_11)["HealthCheckObservations"]
            assert seen and all(o["StatusReport"]["Status"].startswith("Failure") for o in seen), seen
            # And back, once the listeners answer again.
            targets.start("127.0.0.11")
            targets.start("127.0.0.12")
            _await_answer(authd, "10.1.0.0/24", {"127.0.0.11", "127.0.0.12"}, bound)
            assert _answers(authd, "10.1.0.0/24", times=40) == {"127.0.0.11", "127.0.0.12"}
            assert took <= bound
    finally:
        targets.stop_all()
