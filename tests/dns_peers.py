"""Test helpers: authd, Knot and NSD started as primaries of the same zone files on loopback.

Shell code for the differential suite (`tests/test_dns_differential.py`): each server gets an
ephemeral port and its own temporary directory, serves every `*.zone` file given (the origin
is the file name without `.zone`), and is stopped by its PID. Knot and NSD are configured as
plain authoritative servers: no DNSSEC, no rate limiting, no identity or version answers,
NSD with `minimal-responses` and both advertising a 1232-octet EDNS payload, as authd does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from authd.localnet import find_tool, free_port, stop, wait_answering

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    kind: str  # "authd", "knot" or "nsd"
    port: int
    proc: subprocess.Popen
    workdir: Path

    def stop(self) -> None:
        stop(self.proc)


def _origin(path: Path) -> str:
    return path.name.removesuffix(".zone")


def start_authd(workdir: Path, zone_files: list[Path]) -> Server:
    zones = workdir / "zones"
    zones.mkdir()
    for f in zone_files:
        shutil.copy(f, zones / f.name)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "authd", "serve", "--zones", str(zones), "--listen",
         f"127.0.0.1:{port}", "--control", "off", "--log-level", "WARNING"], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=(workdir / "authd.log").open("w"))
    return Server("authd", port, proc, workdir)


def start_knot(workdir: Path, zone_files: list[Path]) -> Server:
    knotd = find_tool("knotd")
    if knotd is None:
        pytest.skip("knotd not installed (Debian package knot)")
    port = free_port()
    zones = "\n".join(f'  - domain: {_origin(f)}\n    file: "{f}"' for f in zone_files)
    conf = workdir / "knot.conf"
    conf.write_text(f"""server:
    listen: 127.0.0.1@{port}
    rundir: "{workdir}"
    identity: ""
    version: ""
    udp-max-payload: 1232
    tcp-max-clients: 64
log:
  - target: "{workdir}/knot.log"
    any: warning
database:
    storage: "{workdir}"
template:
  - id: default
    storage: "{workdir}"
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
zone:
{zones}
""")
    proc = subprocess.Popen([knotd, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return Server("knot", port, proc, workdir)


def start_nsd(workdir: Path, zone_files: list[Path]) -> Server:
    nsd = find_tool("nsd")
    if nsd is None:
        pytest.skip("nsd not installed (Debian package nsd)")
    port = free_port()
    zones = "\n".join(f'zone:\n  name: {_origin(f)}\n  zonefile: "{f}"' for f in zone_files)
    conf = workdir / "nsd.conf"
    conf.write_text(f"""server:
  ip-address: 127.0.0.1@{port}
  username: ""
  chroot: ""
  zonesdir: "{workdir}"
  database: ""
  pidfile: "{workdir}/nsd.pid"
  xfrdfile: "{workdir}/xfrd.state"
  zonelistfile: "{workdir}/zone.list"
  logfile: "{workdir}/nsd.log"
  server-count: 1
  rrl-ratelimit: 0
  minimal-responses: yes
  hide-version: yes
  hide-identity: yes
  ipv4-edns-size: 1232
  verbosity: 1
remote-control:
  control-enable: no
{zones}
""")
    proc = subprocess.Popen([nsd, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return Server("nsd", port, proc, workdir)


STARTERS = {"authd": start_authd, "knot": start_knot, "nsd": start_nsd}


def start(kind: str, workdir: Path, zone_files: list[Path], probe: str) -> Server:
    """Start one server and wait until it answers `probe` SOA (or fail naming it)."""
    server = STARTERS[kind](workdir, zone_files)
    try:
        wait_answering(server.port, server.proc, kind, qname=probe, timeout=30)
    except BaseException:
        server.stop()
        raise
    return server
