"""Loopback helpers for starting real daemons (ours and peers) in tests, demos and benchmarks.

Trio-free shell code: finding a free UDP+TCP port on loopback, finding a Debian tool that may
live in /usr/sbin, and waiting until a freshly started DNS server answers a real query. The
outage demo, the benchmarks, the resolver's daemon helpers and the tests all use these.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode


def find_tool(name: str) -> str | None:
    """The tool's path on PATH or in /usr/sbin (where Debian puts nsd, knotd, unbound)."""
    path = shutil.which(name)
    if path is None and Path(f"/usr/sbin/{name}").exists():
        path = f"/usr/sbin/{name}"
    return path


def _can_bind(host: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", *others: str) -> int:
    """A port free for UDP and TCP on `host` and on every address in `others`, right now.

    DNS listens on both transports, so a port free for one only is no use. The daemon binds
    it a moment later; a port taken in between makes it fail to start, loudly.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))  # holding it proves UDP on `host` is free
            port = int(u.getsockname()[1])
            if _can_bind(host, port, socket.SOCK_STREAM) and all(
                _can_bind(h, port, kind)
                for h in others
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM)
            ):
                return port
    raise RuntimeError("no free port on loopback")


def wait_answering(
    port: int,
    proc: subprocess.Popen,
    what: str,
    *,
    qname: str = "example.test.",
    qtype: str = "SOA",
    host: str = "127.0.0.1",
    timeout: float = 20.0,
) -> None:
    """Poll with real queries until the server answers `qname`/`qtype` with data.

    The daemons we start have no readiness signal of their own; a real answer is the signal.
    Raises RuntimeError if the process exits or nothing answers within `timeout` seconds.
    """
    q = dns.message.make_query(qname, qtype)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            r = dns.query.udp(q, host, port=port, timeout=0.5)
            if r.rcode() == dns.rcode.NOERROR and r.answer:
                return
        except (dns.exception.DNSException, OSError):
            time.sleep(0.1)  # not listening yet: the refusal came back at once
    raise RuntimeError(f"{what} did not answer {qname} {qtype} on {host}:{port} in {timeout:g}s")


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
