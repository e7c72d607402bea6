"""Test helpers: a real `authd serve` process whose stderr lines the test waits on (never a
sleep), its DNS port read from its own log line, and a TXT lookup over UDP.

The process runs in its own session (`start_new_session`), so SIGINT reaches it as Ctrl-C
would (FIELD-NOTES: a background job of a script inherits SIGINT ignored).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dns.message
import dns.rdatatype


class Served:
    """`python -m authd serve ARGV...`, its stderr lines collected by a thread."""

    def __init__(self, argv: list[str], cwd: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "authd", "serve", *argv],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     cwd=cwd, start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:  # readline on a buffered pipe cannot be select()ed
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, within: float = 120) -> str:
        """The first stderr line (from now on, or already seen) holding `text`."""
        for line in self.lines:
            if text in line:
                return line
        deadline = time.monotonic() + within
        while True:
            line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            assert line is not None, f"exited before saying {text!r}: {self.lines[-5:]}"
            self.lines.append(line)
            if text in line:
                return line

    def dns_port(self, who: str = "primary") -> int:
        line = self.wait_for(f"{who}: DNS on")
        m = re.search(r"DNS on \S+ port (\d+)", line)
        assert m, line
        return int(m.group(1))

    def stop(self, sig: signal.Signals = signal.SIGINT, within: float = 60) -> tuple[int, float]:
        """Send `sig`; (exit status, seconds until exit). The rest of stderr lands in `lines`."""
        t = time.monotonic()
        os.kill(self.proc.pid, sig)
        try:
            code = self.proc.wait(within)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        took = time.monotonic() - t
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code, took

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def txt(port: int, name: str, timeout: float = 1.0) -> list[str]:
    """The TXT strings a loopback server at `port` answers for `name`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(dns.message.make_query(name, "TXT").to_wire(), ("127.0.0.1", port))
        reply = dns.message.from_wire(s.recv(65535))
    return [b.decode() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.TXT
            for rd in rrset for b in rd.strings]


def wait_for_txt(port: int, name: str, value: str, within: float) -> float:
    """Ask until `name`'s TXT holds `value`; seconds it took. Fails after `within` seconds."""
    t = time.monotonic()
    while value not in txt(port, name):
        assert time.monotonic() - t < within, f"{name} TXT {value!r} not answered within {within}s"
    return time.monotonic() - t
