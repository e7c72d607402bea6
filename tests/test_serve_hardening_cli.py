"""`authd serve` hardening flags as a process: refused settings, the cookie secret across workers."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import pytest
import trio

from authd.dns.cookies import COOKIE, make_server_cookie
from tests.conftest import ZONES

ROOT = Path(__file__).resolve().parent.parent


def _serve(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "authd", "serve", "--zones", str(ZONES),
                             "--listen", "127.0.0.1:0", "--control", "off", *args],
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


@pytest.mark.parametrize("args, says", [
    (["--rrl-rate", "0"], "--rrl-rate must be positive"),
    (["--rrl-slip", "-1"], "--rrl-slip must be 0 or more"),
    (["--rrl", "maybe"], "invalid choice"),
    (["--cookie-secret", "00ff"], "expected 32 hex digits"),
])
def test_bad_hardening_flags_stop_startup_with_the_reason(args, says):
    proc = _serve(*args)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and says in err, err


def _wait_ports(proc: subprocess.Popen, workers: int) -> int:
    seen = ""
    while seen.count("listening") < workers:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        assert line, f"authd exited early: {seen}"
        seen += line
    return int(re.search(r"listening on 127\.0\.0\.1 port (\d+)", seen).group(1))  # type: ignore[union-attr]


def _exchange(port: int, q: dns.message.Message) -> dns.message.Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a new source port each time
        s.settimeout(5)
        s.sendto(q.to_wire(), ("127.0.0.1", port))
        return dns.message.from_wire(s.recv(65535))


def _cookie_in(reply: dns.message.Message) -> bytes:
    return next(o for o in reply.options if o.otype == COOKIE).to_wire()


def _ask(port: int, cookie: bytes) -> bytes:
    q = dns.message.make_query("host.example.test.", "A", use_edns=0,
                               options=[dns.edns.GenericOption(COOKIE, cookie)])
    return _cookie_in(_exchange(port, q))


def _ask_cookie_only(port: int, cookie: bytes) -> tuple[int, bytes]:
    """RFC 7873 §5.4: no question; NOERROR if our server cookie is valid, else BADCOOKIE."""
    q = dns.message.Message(id=7)
    q.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(COOKIE, cookie)])
    reply = _exchange(port, q)
    return reply.rcode(), _cookie_in(reply)


@pytest.mark.slow
async def test_the_given_secret_makes_rfc9018_cookies_and_workers_share_a_random_one():
    secret = bytes(range(16))
    proc = _serve("--cookie-secret", secret.hex())
    try:
        port = await trio.to_thread.run_sync(_wait_ports, proc, 1)
        client = b"\x11" * 8
        got = await trio.to_thread.run_sync(_ask, port, client)
        stamp = int.from_bytes(got[12:16], "big")
        assert got == client + make_server_cookie(secret, client, "127.0.0.1", stamp)
    finally:
        proc.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(proc.wait, 10)

    proc = _serve("--workers", "2")
    try:
        port = await trio.to_thread.run_sync(_wait_ports, proc, 2)
        cookie = await trio.to_thread.run_sync(_ask, port, b"\x22" * 8)
        # from 20 source ports the kernel spreads over both workers: each finds it valid and
        # gives it back as it is (a worker with another secret would issue a new one)
        for _ in range(20):
            assert await trio.to_thread.run_sync(_ask, port, cookie) == cookie
    finally:
        proc.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(proc.wait, 10)


@pytest.mark.slow
async def test_rolling_the_cookie_secret_over_keeps_old_cookies_valid():
    old, new = bytes(range(16)), bytes(range(16, 32))
    client = b"\x33" * 8
    proc = _serve("--cookie-secret", old.hex())
    try:
        port = await trio.to_thread.run_sync(_wait_ports, proc, 1)
        issued = await trio.to_thread.run_sync(_ask, port, client)
    finally:
        proc.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(proc.wait, 10)
    proc = _serve("--cookie-secret", new.hex(), "--cookie-secret-previous", old.hex(),
                  "--workers", "2")
    try:
        port = await trio.to_thread.run_sync(_wait_ports, proc, 2)
        for _ in range(6):  # whichever worker answers accepts it and renews it with the new one
            rcode, renewed = await trio.to_thread.run_sync(_ask_cookie_only, port, issued)
            assert rcode == dns.rcode.NOERROR  # valid: BADCOOKIE without the previous secret
            stamp = int.from_bytes(renewed[12:16], "big")
            assert renewed == client + make_server_cookie(new, client, "127.0.0.1", stamp)
        rcode, _ = await trio.to_thread.run_sync(_ask_cookie_only, port, client + b"\x01" * 16)
        assert rcode == dns.rcode.BADCOOKIE
    finally:
        proc.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(proc.wait, 10)
