"""Harness for the certbot acceptance test: the Debian `pebble` ACME test server on loopback.

Shell code for tests. Pebble ships no TLS certificate; the README recipe `pebble` makes a
throwaway CA and a server certificate for 127.0.0.1/localhost with openssl and writes
`pebble.json`. This module starts pebble from that config with `-dnsserver` aimed at authd, so
DNS-01 is validated against authd's real answers, waits for its "Listening on" log line, and
stops it by PID.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from authd import localnet


@dataclass
class Pebble:
    """A running pebble: its ACME directory URL and its log so far."""

    proc: subprocess.Popen[str]
    directory: str
    log: list[str] = field(default_factory=list)


def _accepts(address: str, proc: subprocess.Popen[str], timeout: float = 20.0) -> bool:
    """Whether pebble's HTTPS port takes a connection (Go logs "Listening on" just before it
    binds), trying until `timeout` or until pebble exits."""
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)  # refused at once: not bound yet
    return False


@contextmanager
def pebble_serve(exe: str, workdir: Path, config: Path, dns: str) -> Iterator[Pebble]:
    """Start `pebble -config CONFIG -dnsserver DNS` in `workdir`; stop it by PID at the end.

    PEBBLE_VA_NOSLEEP=1 turns off its random 0-15 s wait before each validation and
    PEBBLE_WFE_NONCEREJECT=0 its deliberate rejection of 5 % of good nonces (both are there
    to shake out careless clients; here they would only make the test slow and random).
    """
    listen = json.loads(config.read_text())["pebble"]["listenAddress"]
    env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
    proc = subprocess.Popen([exe, "-config", str(config), "-dnsserver", dns], cwd=workdir,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    log: list[str] = []
    ready = False
    for line in proc.stdout:
        log.append(line)
        if f"Listening on: {listen}" in line:
            ready = True
            break
    if not ready or not _accepts(listen, proc):
        localnet.stop(proc)
        raise AssertionError(f"pebble did not start (exit {proc.poll()}): {''.join(log)}")
    stream = proc.stdout
    reader = threading.Thread(target=lambda: log.extend(stream), daemon=True)
    reader.start()
    try:
        yield Pebble(proc, f"https://{listen}/dir", log)
    finally:
        localnet.stop(proc)
        reader.join(10)
