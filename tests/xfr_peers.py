"""Test helpers: Knot and NSD started as secondaries of authd on loopback, with TSIG."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from authd.localnet import find_tool, free_port, stop


@dataclass
class Secondary:
    kind: str  # "knot" or "nsd"
    port: int
    workdir: Path
    proc: subprocess.Popen
    conf: Path

    @property
    def log(self) -> str:
        path = self.workdir / f"{self.kind}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop(self.proc)

    def soa_serial(self, zone: str) -> int | None:
        try:
            r = dns.query.udp(dns.message.make_query(zone, "SOA"), "127.0.0.1", port=self.port,
                              timeout=0.5)
        except Exception:  # noqa: BLE001 - not answering (yet)
            return None
        if r.rcode() != dns.rcode.NOERROR or not r.answer:
            return None
        return r.answer[0][0].serial

    def wait_serial(self, zone: str, serial: int, timeout: float) -> float | None:
        """Seconds until the secondary serves `serial` (or newer), None past the timeout.

        A foreign process offers no event to await: this polls its SOA every 20 ms."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            got = self.soa_serial(zone)
            if got is not None and got >= serial:
                return time.monotonic() - start
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.log[-2000:]}")
            time.sleep(0.02)
        return None


def start_knot(workdir: Path, zone: str, primary_port: int, key: tuple[str, str],
               port: int | None = None) -> Secondary:
    knotd = find_tool("knotd")
    if knotd is None:
        pytest.skip("knotd not installed (Debian package knot)")
    port = port or free_port()
    name, secret = key
    conf = workdir / "knot.conf"
    conf.write_text(f"""server:
    listen: 127.0.0.1@{port}
    rundir: "{workdir}"
log:
  - target: "{workdir}/knot.log"
    any: info
database:
    storage: "{workdir}"
key:
  - id: {name}
    algorithm: hmac-sha256
    secret: {secret}
remote:
  - id: authd
    address: 127.0.0.1@{primary_port}
    key: {name}
acl:
  - id: from_authd
    address: 127.0.0.1
    key: {name}
    action: notify
template:
  - id: default
    storage: "{workdir}"
    zonefile-sync: -1
    journal-content: all
    zonefile-load: none
    semantic-checks: off
zone:
  - domain: {zone}
    master: authd
    acl: from_authd
""")
    proc = subprocess.Popen([knotd, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return Secondary("knot", port, workdir, proc, conf)


def start_nsd(workdir: Path, zone: str, primary_port: int, key: tuple[str, str],
              port: int | None = None) -> Secondary:
    nsd = find_tool("nsd")
    if nsd is None:
        pytest.skip("nsd not installed (Debian package nsd)")
    port = port or free_port()
    name, secret = key
    conf = workdir / "nsd.conf"
    conf.write_text(f"""server:
  ip-address: 127.0.0.1@{port}
  username: ""
  chroot: ""
  zonesdir: "{workdir}"
  database: ""
  pidfile: "{workdir}/nsd.pid"
  xfrdfile: "{workdir}/xfrd.state"
  xfrdir: "{workdir}"
  zonelistfile: "{workdir}/zone.list"
  logfile: "{workdir}/nsd.log"
  server-count: 1
  verbosity: 2
remote-control:
  control-enable: no
key:
  name: {name}
  algorithm: hmac-sha256
  secret: "{secret}"
zone:
  name: {zone}
  zonefile: "{workdir}/{zone}zone"
  allow-notify: 127.0.0.1 {name}
  request-xfr: 127.0.0.1@{primary_port} {name}
""")
    proc = subprocess.Popen([nsd, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return Secondary("nsd", port, workdir, proc, conf)
