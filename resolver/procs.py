"""Start real DNS daemons on loopback for tests, experiments and benchmarks (process shell).

Knot (authoritative, zone reload through `knotc`), Unbound (the reference resolver), authd
(ours, once on main) and our own resolver as a subprocess. Each helper is a context manager
that writes a temporary config, starts the daemon on an ephemeral loopback port, waits until
it answers a real query, and stops it (by its own PID) on exit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.rcode

from authd.localnet import find_tool, free_port, stop  # noqa: F401  (free_port, stop: re-exported)
from resolver.resolution import Server


class DaemonError(RuntimeError):
    """A daemon did not start or did not answer in time; the message carries its stderr."""


def query_once(server: Server, name: str, rdtype: str = "SOA", timeout: float = 0.2):
    q = dns.message.make_query(name, rdtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q.to_wire(), (server.host, server.port))
        data, _ = s.recvfrom(65535)
    return dns.message.from_wire(data)


def wait_answering(
    server: Server, name: str, proc: subprocess.Popen, what: str, timeout: float = 10.0
) -> None:
    """Poll with real queries until the daemon answers (it has no readiness signal of its own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = _stderr_text(proc)
            raise DaemonError(f"{what} exited with {proc.returncode}: {err[-2000:]}")
        with contextlib.suppress(OSError, dns.exception.DNSException):
            r = query_once(server, name)
            if r.rcode() != dns.rcode.REFUSED:
                return
    raise DaemonError(f"{what} did not answer on {server} within {timeout:.0f}s")


def _stderr_text(proc: subprocess.Popen) -> str:
    path = getattr(proc, "stderr_path", None)
    return Path(path).read_text(errors="replace") if path and Path(path).exists() else ""


def spawn(argv: list[str], log_path: Path) -> subprocess.Popen:
    """Start a daemon with stderr to a file (a pipe nobody reads would fill and stall it)."""
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    proc.stderr_path = str(log_path)  # type: ignore[attr-defined]
    return proc




def require(tool: str, package: str) -> str:
    path = find_tool(tool)
    if path is None:
        raise FileNotFoundError(f"{tool} not installed (Debian package {package})")
    return path


@dataclass
class Knot:
    server: Server
    workdir: Path
    proc: subprocess.Popen

    def reload(self, zone: str) -> None:
        """Re-read the zone file now (knotc zone-reload), blocking until Knot has it."""
        subprocess.run(
            [require("knotc", "knot"), "-s", str(self.workdir / "knot.sock"), "-b",
             "zone-reload", zone],
            check=True, capture_output=True, timeout=10,
        )

    def replace_zones(self, zones: dict[str, str]) -> None:
        knot_replace_zones(self, zones)


@contextlib.contextmanager
def run_knot(
    zones: dict[str, str], host: str = "127.0.0.1", port: int | None = None
) -> Iterator[Knot]:
    """Knot serving `zones` ({origin: zone file text}); files are rewritable for reloads."""
    knotd = require("knotd", "knot")
    with tempfile.TemporaryDirectory(prefix="knot-") as tmp:
        work = Path(tmp)
        port = port or free_port(host)
        conf = [
            "server:", f"    listen: {host}@{port}", f"    rundir: {work}", "    user: root:root",
            "log:", "  - target: stderr", "    any: error",
            "database:", f"    storage: {work}/db",
            "control:", f"    listen: {work}/knot.sock",
            "template:", "  - id: default", f"    storage: {work}", "    zonefile-sync: -1",
            "    journal-content: none", "    semantic-checks: off",
            "zone:",
        ]
        for origin, text in zones.items():
            fname = origin.strip(".") or "root"
            (work / f"{fname}.zone").write_text(text)
            conf += [f"  - domain: {origin}", f"    file: {fname}.zone"]
        (work / "knot.conf").write_text("\n".join(conf) + "\n")
        if os.geteuid() != 0:
            (work / "knot.conf").write_text(
                (work / "knot.conf").read_text().replace("    user: root:root\n", "")
            )
        proc = spawn([knotd, "-c", str(work / "knot.conf")], work / "knotd.log")
        server = Server(host, port)
        try:
            wait_answering(server, next(iter(zones)), proc, "knotd")
            yield Knot(server, work, proc)
        finally:
            stop(proc)


def write_zone(knot: Knot, origin: str, text: str) -> None:
    fname = origin.strip(".") or "root"
    (knot.workdir / f"{fname}.zone").write_text(text)
    knot.reload(origin)


def knot_replace_zones(knot: Knot, zones: dict[str, str]) -> None:
    """Rewrite every zone file and reload them all at once (the Authd.replace_zones twin)."""
    for origin, text in zones.items():
        (knot.workdir / f"{origin.strip('.') or 'root'}.zone").write_text(text)
    subprocess.run(
        [require("knotc", "knot"), "-s", str(knot.workdir / "knot.sock"), "-b", "zone-reload"],
        check=True, capture_output=True, timeout=30,
    )


@dataclass
class Unbound:
    server: Server
    proc: subprocess.Popen


@contextlib.contextmanager
def run_unbound(
    forward: list[Server], *, extra: list[str] | None = None, host: str = "127.0.0.1",
    threads: int = 1, probe: str = ".",
) -> Iterator[Unbound]:
    """Unbound forwarding every name to `forward`, no DNSSEC, no chroot, foreground."""
    unbound = require("unbound", "unbound")
    with tempfile.TemporaryDirectory(prefix="unbound-") as tmp:
        port = free_port(host)
        lines = [
            "server:",
            f"  interface: {host}@{port}", f"  port: {port}",
            "  do-daemonize: no", "  chroot: \"\"", f"  directory: \"{tmp}\"",
            "  username: \"\"", "  pidfile: \"\"", "  use-syslog: no", "  logfile: \"\"",
            "  verbosity: 0", f"  num-threads: {threads}",
            "  access-control: 127.0.0.0/8 allow", "  do-not-query-localhost: no",
            "  module-config: \"iterator\"", "  qname-minimisation: no",
            "  harden-referral-path: no", "  minimal-responses: yes",
            # Unbound answers RFC 6761 special-use names itself; our test zones live there.
            "  local-zone: \"test.\" nodefault", "  local-zone: \"invalid.\" nodefault",
            *[f"  {x}" for x in (extra or [])],
            "forward-zone:", "  name: \".\"",
            *[f"  forward-addr: {s.host}@{s.port}" for s in forward],
        ]
        conf = Path(tmp) / "unbound.conf"
        conf.write_text("\n".join(lines) + "\n")
        proc = spawn([unbound, "-d", "-c", str(conf)], Path(tmp) / "unbound.log")
        server = Server(host, port)
        try:
            wait_answering(server, probe, proc, "unbound")
            yield Unbound(server, proc)
        finally:
            stop(proc)


@contextlib.contextmanager
def run_resolver(
    args: list[str], log_path: Path, host: str = "127.0.0.1", probe: str = "."
) -> Iterator[Server]:
    """Our resolver as a subprocess (`resolver serve|stub ARGS --listen host:port`)."""
    port = free_port(host)
    argv = [sys.executable, "-m", "resolver", *args[:1], "--listen", f"{host}:{port}", *args[1:]]
    proc = spawn(argv, log_path)
    server = Server(host, port)
    try:
        wait_answering(server, probe, proc, "resolver")
        yield server
    finally:
        stop(proc)


class Authd:
    """authd as a process serving a zone directory; `replace_zones` swaps the content.

    The swap starts a second authd on the same port with SO_REUSEPORT, waits until it is
    listening (its own log line), then stops the old one: no moment without a server, and the
    moment the old one stops is when every query sees the new content. (Once authd's change
    API is wired to its data plane, the experiment uses that instead: the real mechanism.)
    """

    def __init__(self, server: Server, workdir: Path, zones: dict[str, str] | Path) -> None:
        self.server = server
        self.workdir = workdir
        self.generation = 0
        self.proc: subprocess.Popen | None = None
        self._start(zones)

    def _start(self, zones: dict[str, str] | Path) -> subprocess.Popen:
        self.generation += 1
        if isinstance(zones, Path):
            zdir = zones  # a shipped zone directory, served as it is
        else:
            zdir = self.workdir / f"zones-{self.generation}"
            zdir.mkdir()
            for origin, text in zones.items():
                (zdir / f"{origin.strip('.') or 'root'}.zone").write_text(text)
        log_path = self.workdir / f"authd-{self.generation}.log"
        proc = spawn(
            [sys.executable, "-m", "authd", "serve", "--zones", str(zdir), "--listen",
             f"{self.server.host}:{self.server.port}", "--reuse-port", "--control", "off",
             "--log-level", "INFO"],
            log_path,
        )
        deadline = time.monotonic() + 15
        while "authd listening" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                raise DaemonError(f"authd did not start: {_stderr_text(proc)[-2000:]}")
            time.sleep(0.01)
        old, self.proc = self.proc, proc
        if old is not None:
            stop(old)
        return proc

    def replace_zones(self, zones: dict[str, str]) -> None:
        self._start(zones)

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)


@contextlib.contextmanager
def run_authd(
    zones: dict[str, str] | Path, host: str = "127.0.0.1", port: int | None = None
) -> Iterator[Authd]:
    """authd serving `zones` ({origin: RFC 1035 text}, or a zone directory) on loopback."""
    with tempfile.TemporaryDirectory(prefix="authd-") as tmp:
        a = Authd(Server(host, port or free_port(host)), Path(tmp), zones)
        try:
            yield a
        finally:
            a.close()


async def run_dig(server: Server, name: str, rdtype: str, *extra: str) -> dict:
    """Run real dig (from trio); return status, ANSWER and AUTHORITY lines as dig printed them.

    Raises FileNotFoundError naming the Debian package when dig is missing.
    """
    import re

    import trio

    proc = await trio.run_process(
        [require("dig", "bind9-dnsutils"), f"@{server.host}", "-p", str(server.port),
         "+tries=1", "+time=3", "+nocookie", name, rdtype, *extra],
        capture_stdout=True, capture_stderr=True, check=False,
    )
    out = proc.stdout.decode()
    status = re.search(r"status: (\w+)", out)
    sections: dict[str, list[list[str]]] = {"ANSWER": [], "AUTHORITY": []}
    current = None
    for line in out.splitlines():
        m = re.match(r";; (\w+) SECTION:", line)
        if m:
            current = m.group(1)
            continue
        if not line.strip():
            current = None
            continue
        if current in sections and not line.startswith(";"):
            sections[current].append(line.split())
    return {
        "status": status.group(1) if status else out,
        "answer": sections["ANSWER"],
        "authority": sections["AUTHORITY"],
        "raw": out,
    }
