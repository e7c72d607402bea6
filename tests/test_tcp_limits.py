"""authd's TCP limits in-process: whom the cap closes, write timeouts, one connection's errors."""

from __future__ import annotations

import logging
import socket

import dns.message
import dns.rcode
import pytest
import trio

from authd.dns.server import _bind_pair, _Slot, pick_victim, serve_tcp
from authd.errlog import ErrorLog

QUERY = dns.message.make_query("host.example.test.", "A").to_wire()
FRAME = len(QUERY).to_bytes(2, "big") + QUERY


def test_pick_victim_prefers_the_longest_idle_then_the_longest_blocked_write():
    def slot(idle: bool, since: float) -> _Slot:
        return _Slot(trio.CancelScope(), idle, since)

    old_idle, new_idle = slot(True, 1.0), slot(True, 5.0)
    old_write, new_write = slot(False, 0.5), slot(False, 3.0)
    assert pick_victim([new_idle, old_write, old_idle, new_write]) is old_idle
    assert pick_victim([new_write, old_write]) is old_write
    assert pick_victim([]) is None


async def _listen(nursery: trio.Nursery, index: object, errors: ErrorLog, **limits: object) -> int:
    _udp, tcp = _bind_pair("127.0.0.1", 0, False)
    _udp.close()
    nursery.start_soon(lambda: serve_tcp(index, tcp, errors=errors, **limits))  # type: ignore[arg-type]
    return tcp.getsockname()[1]


async def _ask(port: int, wire: bytes = QUERY) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(len(wire).to_bytes(2, "big") + wire)
    buf = b""
    while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
        data = await stream.receive_some(4096)
        if not data:
            break
        buf += data
    await stream.aclose()
    return buf[2:]


async def test_a_peer_that_never_reads_is_closed_after_the_write_timeout(nursery, index):
    errors = ErrorLog(logging.getLogger("test"))
    port = await _listen(nursery, index, errors, write_timeout=0.5, idle_timeout=30.0)
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    # The idle timeout (30 s) cannot be what ends it: only the stalled write can
    with trio.fail_after(10), pytest.raises(OSError):
        while True:
            await sock.send(FRAME * 1000)
    sock.close()
    assert errors.counts["tcp write timeout"] >= 1
    reply = dns.message.from_wire(await _ask(port))  # and the server serves on
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer


async def test_a_query_that_makes_the_responder_raise_ends_only_its_connection(nursery, index):
    class Exploding:
        def respond(self, wire: bytes, *, tcp: bool) -> bytes | None:
            if b"boom" in wire:
                raise RuntimeError("a bug in the responder")
            return index.respond(wire, tcp=tcp)

    errors = ErrorLog(logging.getLogger("test"))
    port = await _listen(nursery, Exploding(), errors)
    bad = dns.message.make_query("boom.example.test.", "A").to_wire()
    for _ in range(3):
        assert await _ask(port, bad) == b""  # closed, no answer
    assert errors.counts["tcp connection: RuntimeError"] == 3
    reply = dns.message.from_wire(await _ask(port))
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer


def test_error_log_writes_one_line_per_class_per_interval(caplog):
    errors = ErrorLog(logging.getLogger("test.errlog"), interval=1.0)
    with caplog.at_level(logging.ERROR, logger="test.errlog"):
        written = [errors.exception("udp", ValueError("bad\nline"), now=t / 10) for t in range(25)]
        errors.exception("udp", KeyError("k"), now=0.0)
    assert written.count(True) == 3  # at 0.0, 1.0 and 2.0
    assert errors.counts["udp: ValueError"] == 25
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and all("\n" not in line for line in lines)
    assert "+9 more since the last line" in lines[1]


def test_the_stop_line_says_what_the_guards_did(index):
    from authd.dns.guard import Guard
    from authd.dns.rrl import RateLimiter
    from authd.dns.server import hardening_summary

    guard = Guard(index.respond, bytes(16), RateLimiter(rate=1, slip=2, window=1))
    for _ in range(3):
        guard.answer(QUERY, "10.0.0.1", 0.0, 1_700_000_000, tcp=False)
    errors = ErrorLog(logging.getLogger("test"))
    errors.exception("udp answer", ValueError("x"), 0.0)
    line = hardening_summary(guard, errors)
    assert "rrl sent 1, slipped 1, dropped 1" in line and "udp answer: ValueError 1" in line


async def test_at_the_cap_the_idle_connection_goes_before_a_blocked_writer(nursery, index):
    errors = ErrorLog(logging.getLogger("test"))
    port = await _listen(nursery, index, errors, max_connections=2, write_timeout=30.0,
                         idle_timeout=30.0)
    # the writer: pipelines until the server's write to it blocks (it reads nothing yet)
    writer = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await writer.connect(("127.0.0.1", port))
    with trio.move_on_after(1.0):  # until the kernel stops taking our queries: the pin
        while True:
            await writer.send(FRAME * 200)
    # the idle one: one exchange, then silence
    idle = await trio.open_tcp_stream("127.0.0.1", port)
    await idle.send_all(FRAME)
    assert await idle.receive_some(4096)
    # a third connection: the idle one is closed for it, the writer keeps its slot
    assert dns.message.from_wire(await _ask(port)).answer
    with trio.fail_after(5):
        assert await idle.receive_some(4096) == b""  # closed by the server
    # one eviction, and it was the idle connection: the blocked writer kept its slot
    assert errors.counts["tcp connection limit"] == 1
    writer.close()
