"""Issue 10's TCP no-read pin, against a real `authd serve` process.

256 clients connect, pipeline queries as fast as the kernel takes them and never read a byte.
While they are connected a new TCP client must be answered within 5 s, and the server's RSS
must stay under twice its idle value, and every pinned slot must be freed (the server closes
the non-reader) within seconds. On the code before the fix every slot stayed pinned in
`send_all` and new clients were closed unanswered.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.rcode
import pytest
import trio

from tests.conftest import ZONES

ATTACKERS = 256
QUERY = dns.message.make_query("host.example.test.", "A").to_wire()
FRAME = len(QUERY).to_bytes(2, "big") + QUERY
BURST = FRAME * 1700  # ~60 KB of pipelined queries per write


def _rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]


def _start_serve() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "authd", "serve", "--zones", str(ZONES), "--listen",
         "127.0.0.1:0", "--control", "off"],
        stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    lines = []
    while True:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        assert line, f"authd exited early: {''.join(lines)}"
        lines.append(line)
        m = re.search(r"listening on 127\.0\.0\.1 port (\d+)", line)
        if m:
            return proc, int(m.group(1))


class Pins:
    def __init__(self) -> None:
        self.connected = 0
        self.closed_by_server = 0
        self.all_connected = trio.Event()
        self.all_closed = trio.Event()


async def _pin(port: int, pins: Pins) -> None:
    """Connect, then write queries whenever the kernel takes them; never read."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up soon
    try:
        await sock.connect(("127.0.0.1", port))
        pins.connected += 1
        if pins.connected == ATTACKERS:
            pins.all_connected.set()
        with trio.move_on_after(40):  # a bound for the old code, which never closes us
            while True:
                await sock.send(BURST)
    except OSError:  # the server closed us (reset): its write timeout freed the slot
        pins.closed_by_server += 1
        if pins.closed_by_server == ATTACKERS:
            pins.all_closed.set()
    finally:
        sock.close()


async def _answered_over_tcp(port: int) -> dns.message.Message:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    q = dns.message.make_query("mail.example.test.", "A")
    await stream.send_all(len(q.to_wire()).to_bytes(2, "big") + q.to_wire())
    buf = b""
    while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
        data = await stream.receive_some(4096)
        if not data:
            raise ConnectionError("closed without an answer")
        buf += data
    await stream.aclose()
    return dns.message.from_wire(buf[2:])


@pytest.mark.slow
async def test_256_clients_that_never_read_do_not_lock_out_a_new_client():
    proc, port = await trio.to_thread.run_sync(_start_serve)
    try:
        with trio.fail_after(20):
            assert (await _answered_over_tcp(port)).rcode() == dns.rcode.NOERROR
        idle = _rss_kib(proc.pid)
        pins = Pins()
        peak = idle
        async with trio.open_nursery() as nursery:
            for _ in range(ATTACKERS):
                nursery.start_soon(_pin, port, pins)
            with trio.fail_after(60):  # generous: the machine is shared
                await pins.all_connected.wait()
            await trio.sleep(1.0)  # let the pipelines fill: the pin is in place
            peak = max(peak, _rss_kib(proc.pid))
            # while they are connected (and sending), a new client gets its answer in 5 s
            with trio.fail_after(5):
                reply = await _answered_over_tcp(port)
            assert reply.rcode() == dns.rcode.NOERROR and reply.answer
            for _ in range(10):
                peak = max(peak, _rss_kib(proc.pid))
                await trio.sleep(0.2)  # sampling RSS, not waiting for anything
            # every pinned slot is freed within seconds (write timeout 2 s; generous bound)
            with trio.fail_after(30):
                await pins.all_closed.wait()
        assert peak < 2 * idle, f"RSS grew from {idle} KiB idle to {peak} KiB under the pin"
    finally:
        proc.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(proc.wait, 10)
