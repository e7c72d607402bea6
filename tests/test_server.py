"""End to end: authd on an ephemeral loopback port, queried with real dig and dnspython over UDP
and TCP; RFC 7766 TCP behaviour; the serve command as a process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import pytest
import trio

from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import RecordKey
from tests.conftest import ZONES, dig, require_tool, start_authd

pytestmark = pytest.mark.realtime

STABLE = "dynamodb.us-east-1.api.aws."
LEAVES_A = {"192.0.2.11", "192.0.2.12", "198.51.100.21", "203.0.113.31"}


async def test_dig_weighted_alias_answers_change_across_queries(authd):
    seen = set()
    for _ in range(12):
        res = await dig(authd, STABLE, "A")
        assert res.status == "NOERROR" and {"qr", "aa"} <= res.flags
        assert res.counts["ANSWER"] == 1
        name, ttl, _, rtype, value = res.answer[0]
        assert (name, rtype) == (STABLE, "A")  # owner is the query name, no CNAME
        seen.add(value)
    assert seen <= LEAVES_A and len(seen) >= 2


async def test_dig_aaaa_nxdomain_nodata(authd):
    res = await dig(authd, STABLE, "AAAA")
    assert res.status == "NOERROR" and res.answer[0][3] == "AAAA"
    res = await dig(authd, "nosuch.api.aws.", "A")
    assert res.status == "NXDOMAIN" and res.counts["ANSWER"] == 0
    assert res.authority[0][3] == "SOA" and res.authority[0][1] == 60
    res = await dig(authd, "dynamodb.us-east-1.amazonaws.com.", "AAAA")
    assert res.status == "NOERROR" and res.counts["ANSWER"] == 0
    assert res.authority[0][3] == "SOA"


async def test_dig_shows_the_outage_after_the_tree_is_deleted(authd):
    """The cleaner deletes the active plan's tree: dig shows NOERROR, ANSWER: 0, SOA."""
    index = authd.index
    zone_id, zone_name = next((zid, name) for zid, (name, _) in index._zones.items()
                              if name == "api.aws.")
    records = index._zones[zone_id][1]
    doomed = tuple(k for k in records if k.name.endswith("plan-0001." + STABLE)
                   or k.name == "plan-0001." + STABLE)
    assert doomed
    index.apply(JournalEntry(seq=index.seq + 1, kind=EntryKind.CHANGE, zone_id=zone_id,
                             zone_name=zone_name, serial=2, change_id="C000000000001",
                             deletes=doomed))
    for qtype in ("A", "AAAA"):
        for tcp in (False, True):
            res = await dig(authd, STABLE, qtype, tcp=tcp)
            assert res.status == "NOERROR"
            assert res.flags == {"qr", "aa"}
            assert res.counts == {"QUERY": 1, "ANSWER": 0, "AUTHORITY": 1, "ADDITIONAL": 1}
            assert res.authority[0][:4] == ("api.aws.", 60, "IN", "SOA")
    assert index.resolve_all(STABLE, "A") == [("NOERROR", ())]
    assert RecordKey(STABLE, "A") in records  # the alias itself still exists


async def test_dig_over_tcp_and_truncation_fallback(authd):
    res = await dig(authd, "host.example.test.", "A", tcp=True)
    assert res.status == "NOERROR" and res.values() == ["192.0.2.80"]
    res = await dig(authd, "+noedns", "+ignore", "big.example.test.", "TXT")
    assert "tc" in res.flags and res.counts["ANSWER"] == 0
    res = await dig(authd, "+noedns", "big.example.test.", "TXT")  # dig retries over TCP
    assert "Truncated, retrying in TCP mode" in res.text
    assert res.counts["ANSWER"] == 6 and "tc" not in res.flags


async def test_dig_edns_do_bit_echoed_and_payload(authd):
    res = await dig(authd, "+dnssec", "host.example.test.", "A")
    assert res.edns.get("flags") == "do" and res.edns.get("udp") == "1232"
    res = await dig(authd, "+edns=1", "+noednsnegotiation", "host.example.test.", "A")
    assert res.status == "BADVERS"


async def test_dnspython_udp_and_tcp(authd):
    for query_fn in (dns.asyncquery.udp, dns.asyncquery.tcp):
        q = dns.message.make_query("WWW.Example.TEST.", "A")
        r = await query_fn(q, authd.host, port=authd.port, timeout=3)
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
        assert str(r.question[0].name) == "WWW.Example.TEST."
        # names compress into the question, so they show its case (as with NSD)
        assert str(r.answer[0].name) == "WWW.Example.TEST."
        assert [str(rr.name).lower() for rr in r.answer] == [
            "www.example.test.", "web.example.test.", "host.example.test."]
    q = dns.message.make_query("example.org.", "A")
    r = await dns.asyncquery.udp(q, authd.host, port=authd.port, timeout=3)
    assert r.rcode() == dns.rcode.REFUSED


async def _tcp_exchange(stream: trio.SocketStream, count: int) -> list[dns.message.Message]:
    buf = b""
    out = []
    with trio.fail_after(5):
        while len(out) < count:
            while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
                data = await stream.receive_some(65536)
                assert data, "server closed the connection early"
                buf += data
            n = int.from_bytes(buf[:2], "big")
            out.append(dns.message.from_wire(buf[2:2 + n]))
            buf = buf[2 + n:]
    return out


def _framed(q: dns.message.Message) -> bytes:
    w = q.to_wire()
    return len(w).to_bytes(2, "big") + w


async def test_tcp_pipelined_queries_on_one_connection(authd):
    stream = await trio.open_tcp_stream(authd.host, authd.port)
    queries = [dns.message.make_query(n, "A") for n in
               ("host.example.test.", "nosuch.example.test.", STABLE, "mail.example.test.")]
    for i, q in enumerate(queries):
        q.id = 100 + i
    # all four in one write, one of them split across two writes
    blob = b"".join(_framed(q) for q in queries)
    await stream.send_all(blob[:30])
    await stream.send_all(blob[30:])
    replies = await _tcp_exchange(stream, 4)
    by_id = {r.id: r for r in replies}
    assert set(by_id) == {100, 101, 102, 103}
    assert by_id[101].rcode() == dns.rcode.NXDOMAIN
    assert by_id[103].answer[0][0].address == "192.0.2.25"
    await stream.aclose()


async def test_tcp_idle_timeout_and_connection_limit(nursery, index):
    server = await start_authd(nursery, index, tcp_idle_timeout=0.5, tcp_max_connections=1)
    first = await trio.open_tcp_stream(server.host, server.port)
    await first.send_all(_framed(dns.message.make_query("host.example.test.", "A")))
    assert (await _tcp_exchange(first, 1))[0].rcode() == dns.rcode.NOERROR
    # over the limit: the idle first connection gives up its slot (RFC 7766 §6.2.3)
    second = await trio.open_tcp_stream(server.host, server.port)
    await second.send_all(_framed(dns.message.make_query("mail.example.test.", "A")))
    assert (await _tcp_exchange(second, 1))[0].answer
    with trio.fail_after(5):
        assert await first.receive_some(100) == b""
    with trio.fail_after(5):  # the idle second connection is closed by the server
        assert await second.receive_some(100) == b""
    third = await trio.open_tcp_stream(server.host, server.port)  # capacity is back
    await third.send_all(_framed(dns.message.make_query("mail.example.test.", "A")))
    assert (await _tcp_exchange(third, 1))[0].answer
    await third.aclose()


async def test_malformed_udp_packets_never_stop_the_server(authd):
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.connect((authd.host, authd.port))
    good = dns.message.make_query("host.example.test.", "A")
    good.id = 4242
    for junk in (b"", b"\x00", b"\xff" * 11, b"\x12\x34" + b"\xff" * 40, good.to_wire()[:-2],
                 good.to_wire() + b"junk", os.urandom(300)):
        await sock.send(junk)
    await sock.send(good.to_wire())
    with trio.fail_after(5):
        while True:
            data = await sock.recv(65535)
            reply = dns.message.from_wire(data)
            if reply.id == 4242 and reply.rcode() == dns.rcode.NOERROR and reply.answer:
                break
    sock.close()


# --- the serve command as a process -------------------------------------------------------------


def _spawn_serve(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "authd", "serve", *args],
                            stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent)


def _wait_listening(proc: subprocess.Popen, count: int) -> list[str]:
    lines = []
    while sum("listening" in line for line in lines) < count:
        line = proc.stderr.readline()
        assert line, f"authd exited early: {''.join(lines)}"
        lines.append(line)
    return lines


@pytest.mark.slow
async def test_serve_command_starts_answers_and_stops_on_ctrl_c():
    require_tool("dig")
    proc = _spawn_serve("--zones", str(ZONES), "--listen", "127.0.0.1:0", "--workers", "2",
                        "--control", "off")
    try:
        lines = await trio.to_thread.run_sync(_wait_listening, proc, 2)
        text = "".join(lines)
        assert "zone api.aws. (Z0API0AWS) loaded" in text
        ports = {int(p) for p in re.findall(r"listening on 127\.0\.0\.1 port (\d+)", text)}
        assert len(ports) == 1  # two workers, one port (SO_REUSEPORT)
        assert "worker 1/2" in text and "worker 2/2" in text

        class Server:
            host, port = "127.0.0.1", ports.pop()

        res = await dig(Server, STABLE, "A")  # type: ignore[arg-type]
        assert res.status == "NOERROR" and res.values()[0] in LEAVES_A
    finally:
        proc.send_signal(signal.SIGINT)
        rc = await trio.to_thread.run_sync(proc.wait, 10)
    assert rc == 0


def test_serve_refuses_a_bad_zone_with_file_line_and_reason(tmp_path):
    (tmp_path / "bad.test.zone").write_text(
        "$ORIGIN bad.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nx A 999.1.1.1\n")
    proc = _spawn_serve("--zones", str(tmp_path), "--listen", "127.0.0.1:0", "--control", "off")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "bad.test.zone:5:" in err and "not starting" in err
