"""Issue 10, resolver parts: no packet ends `resolver serve`, the question is checked in full,
access control as in Unbound, and errors are logged once per class per second.

The process tests start the real `resolver serve` (and an authd under it) on loopback and
send the issue's packets over TCP and UDP; on main before the fix, the TCP ones ended the
process (exit 1) and each UDP one wrote a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
import trio
import trio.testing

from bench._fuzzcases import ISSUE10, ISSUE10_EXPECTED, header, name_wire, query, question, rr
from resolver.acl import AccessControl, AclError, check_listen, parse_network, refused_reply
from resolver.cache import cache_key
from resolver.procs import free_port, run_authd, spawn, stop, wait_answering
from resolver.resolution import Server
from resolver.server import ResolverConfig, serve_resolver
from resolver.wire import WireError, view_query

ROOT = Path(__file__).resolve().parent.parent


# ---- the real process ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def resolver_proc() -> Iterator[tuple[Server, subprocess.Popen, Path]]:
    """`resolver serve --forward` to an authd serving the shipped zones; both real processes."""
    with tempfile.TemporaryDirectory(prefix="resolver-hardening-") as tmp, \
            run_authd(ROOT / "zones") as upstream:
        port = free_port()
        log = Path(tmp) / "resolver.log"
        proc = spawn([sys.executable, "-m", "resolver", "serve", "--listen", f"127.0.0.1:{port}",
                      "--forward", str(upstream.server), "--timeout", "1"], log)
        server = Server("127.0.0.1", port)
        try:
            wait_answering(server, "example.test.", proc, "resolver", timeout=30)
            yield server, proc, log
        finally:
            stop(proc)


def exchange(server: Server, wires: list[bytes], until_id: int, tcp: bool) -> list[bytes]:
    """Send `wires` (UDP datagrams, or TCP frames on one connection); every reply up to and
    including the one with ID `until_id`."""
    replies: list[bytes] = []
    family, kind = socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    with socket.socket(family, kind) as s:
        s.settimeout(10)
        s.connect((server.host, server.port))
        if tcp:
            s.sendall(b"".join(struct.pack("!H", len(w)) + w for w in wires))
        else:
            for w in wires:
                s.send(w)
        buf = b""
        while not replies or replies[-1][:2] != until_id.to_bytes(2, "big"):
            if not tcp:
                replies.append(s.recv(65535))
                continue
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                n = struct.unpack("!H", buf[:2])[0]
                replies.append(buf[2:2 + n])
                buf = buf[2 + n:]
            if replies and replies[-1][:2] == until_id.to_bytes(2, "big"):
                break
            chunk = s.recv(65535)
            assert chunk, "the resolver closed the connection"
            buf += chunk
    return replies


def good_answer(server: Server, tcp: bool) -> bool:
    (reply,) = exchange(server, [query("host.example.test.", 1, qid=0x4242)], 0x4242, tcp)
    r = dns.message.from_wire(reply)
    return r.rcode() == dns.rcode.NOERROR and r.answer[0][0].address == "192.0.2.80"


@pytest.mark.realtime
@pytest.mark.parametrize("transport", ["tcp", "udp"])
@pytest.mark.parametrize("case", sorted(ISSUE10))
def test_issue10_packet_neither_kills_nor_floods(
    resolver_proc: tuple[Server, subprocess.Popen, Path], case: str, transport: str
) -> None:
    """Each packet 20 times, then a query no cache holds (so its answer comes after every
    reply the 20 could cause): FORMERR for each, or nothing for QR=1. The process lives,
    answers over both transports after it, and wrote no traceback, at most one line."""
    server, proc, log = resolver_proc
    before = log.read_text().count("\n")
    probe_id = 0x7000 + sorted(ISSUE10).index(case) * 2 + (transport == "tcp")
    probe = query(f"probe-{case}-{transport}.example.test.", 1, qid=probe_id)
    replies = exchange(server, [ISSUE10[case]] * 20 + [probe], probe_id, transport == "tcp")
    assert proc.poll() is None, f"{case} over {transport} ended the resolver"
    *before_probe, last = replies
    assert dns.message.from_wire(last).rcode() == dns.rcode.NXDOMAIN  # answered from authd
    expected = ISSUE10_EXPECTED[case]
    if expected is None:
        assert before_probe == [], f"{case}: a response (QR=1) must never be answered"
    else:
        assert len(before_probe) == 20
        for r in before_probe:
            assert r[:2] == ISSUE10[case][:2] and r[2] & 0x80 and r[3] & 0xF == expected
    assert good_answer(server, tcp=False) and good_answer(server, tcp=True)
    text = log.read_text()
    assert "Traceback" not in text
    assert text.count("\n") - before <= 2  # the probe's own resolution line, at most one more


@pytest.mark.realtime
def test_a_tcp_client_that_never_reads_is_closed(
    resolver_proc: tuple[Server, subprocess.Popen, Path]
) -> None:
    """Pipelined queries for a 600-byte answer, never read: once the buffers are full the
    resolver's write times out (TCP_WRITE_TIMEOUT, 5 s) and it closes the connection; the
    reset reaches us as POLLERR/POLLHUP (awaited, not polled). Others are served meanwhile."""
    import select

    server, proc, _log = resolver_proc
    q = query("big.example.test.", 16, qid=0x5A5A)
    chunk = (struct.pack("!H", len(q)) + q) * 2000
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.setblocking(False)
        sent = 0
        with contextlib.suppress(BlockingIOError):
            while sent < 100 * 2**20:  # until every buffer on the way is full
                sent += s.send(chunk)
        assert sent < 100 * 2**20, "the resolver read 100 MB and answered it: nothing stalled"
        assert good_answer(server, tcp=True) and good_answer(server, tcp=False)
        poller = select.poll()
        poller.register(s, select.POLLERR | select.POLLHUP)
        events = poller.poll(30_000)
        assert events and events[0][1] & (select.POLLERR | select.POLLHUP), \
            "the stalled connection was still open after 30 s"
    assert proc.poll() is None and good_answer(server, tcp=True)


def test_non_loopback_listen_needs_allow() -> None:
    """One line naming --allow, exit 2, no traceback; nothing is bound."""
    out = subprocess.run(
        [sys.executable, "-m", "resolver", "serve", "--listen", "0.0.0.0:0", "--forward",
         "127.0.0.1:9"], capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--allow" in lines[0] and "Traceback" not in out.stderr
    stub = subprocess.run(
        [sys.executable, "-m", "resolver", "stub", "--listen", "[::]:0", "--upstream",
         "127.0.0.1:9"], capture_output=True, text=True, timeout=60,
    )
    assert stub.returncode == 2 and "--allow" in stub.stderr and len(stub.stderr.splitlines()) == 1


def test_bad_allow_is_a_usage_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "resolver", "serve", "--allow", "10.0.0.0/33", "--forward",
         "127.0.0.1:9"], capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2 and "not a CIDR network: '10.0.0.0/33'" in out.stderr
    assert "Traceback" not in out.stderr


# ---- the question, checked in full ---------------------------------------------------------


def forged_reply(q: dns.message.Message, question_class: int, record_class: int) -> bytes:
    """A response to `q` whose question and TXT record carry the given classes (on the wire)."""
    qid = q.id
    name = q.question[0].name.to_wire()
    return (header(qid, 0x8180, 1, 1, 0, 0) + question(name, dns.rdatatype.TXT, question_class)
            + rr(b"\xc0\x0c", dns.rdatatype.TXT, record_class, 86400, b"\x06forged"))


@pytest.mark.parametrize("forge", ["question", "records"])
async def test_answer_of_another_class_is_not_accepted_or_cached(forge: str) -> None:
    """A fake upstream answers each query first with a CH-class forgery (the question's
    class, or the records' class, rewritten to CH), then with the truth."""
    fake = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await fake.bind(("127.0.0.1", 0))
    upstream = Server("127.0.0.1", fake.getsockname()[1])
    name = dns.name.from_text("www.shop.test.")

    async def fake_upstream() -> None:
        while True:
            data, addr = await fake.recvfrom(4096)
            q = dns.message.from_wire(data)
            ch, inet = dns.rdataclass.CH, dns.rdataclass.IN
            wire = forged_reply(q, ch, ch) if forge == "question" else forged_reply(q, inet, ch)
            await fake.sendto(wire, addr)
            true = dns.message.make_response(q)
            true.answer.append(dns.rrset.from_text(q.question[0].name, 300, "IN", "TXT", "real"))
            await fake.sendto(true.to_wire(), addr)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fake_upstream)
        config = ResolverConfig(listen=Server("127.0.0.1", 0), upstreams=[upstream])
        h = await nursery.start(serve_resolver, config)
        client = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await client.bind(("127.0.0.1", 0))
        await client.sendto(dns.message.make_query(name, "TXT").to_wire(), (h.udp.host, h.udp.port))
        reply = dns.message.from_wire(await client.recv(65535))
        texts = [rd.to_text() for rrset in reply.answer for rd in rrset]
        assert '"forged"' not in texts
        cached = h.resolver.cache.get(cache_key(name, dns.rdatatype.TXT), trio.current_time())
        if forge == "question":
            # Refused as a wrong question; the true answer that follows is the one used.
            assert texts == ['"real"']
            assert h.resolver.counters["rejected-wrong-question"] == 1
            assert cached is not None and b"forged" not in cached.entry.wire
        else:
            # The question matched, so the response was used, without its CH records.
            assert texts == []
            assert cached is None or b"forged" not in cached.entry.wire
        assert all(b"forged" not in e.wire for e in h.resolver.cache.entries.values())
        nursery.cancel_scope.cancel()


def test_question_name_compares_case_insensitively() -> None:
    """RFC 4343: a server that answers in another case still matches the question."""
    import random

    from resolver.resolution import ForwardResolution, check_response

    res = ForwardResolution(dns.name.from_text("WwW.Example.TEST."), dns.rdatatype.A, 1,
                            random.Random(1), upstreams=[Server("127.0.0.1", 53)])
    (send,) = res.start(0.0)
    r = dns.message.make_response(dns.message.make_query("www.example.test.", "A"))
    r.id = send.qid
    assert isinstance(check_response(send, r.to_wire(), send.server), dns.message.Message)


def test_glue_of_another_class_is_not_believed() -> None:
    """A referral whose glue for ns1.example.test. is class CH: not an address for an IN
    question, so the NS name is looked up instead (a sub-resolution), never sent to."""
    import random

    from resolver.resolution import Delegation, IterativeResolution

    root = Server("127.0.0.1", 5300)
    res = IterativeResolution(dns.name.from_text("www.example.test."), dns.rdatatype.A, 1,
                              random.Random(3), hints=Delegation(dns.name.root, (root,)))
    (send,) = res.start(0.0)
    q = dns.message.from_wire(send.wire)
    ns_rdata = name_wire("ns1.example.test.")
    wire = (header(q.id, 0x8000, 1, 0, 1, 1)
            + question(q.question[0].name.to_wire(), 1, 1)
            + rr(name_wire("example.test."), dns.rdatatype.NS, 1, 300, ns_rdata)
            + rr(name_wire("ns1.example.test."), dns.rdatatype.A, dns.rdataclass.CH, 300,
                 name_wire("ch.") + b"\x00\x01"))  # CH A: a domain and a 16-bit address
    sends = res.on_response(0.01, send, wire, root)
    assert res.sub is not None and res.sub.qname == dns.name.from_text("ns1.example.test.")
    assert [s.server for s in sends] == [root]  # the NS name's lookup starts at the root


# ---- access control -------------------------------------------------------------------------


def test_access_control_defaults_to_loopback() -> None:
    acl = AccessControl()
    assert acl.allows("127.0.0.1") and acl.allows("127.9.8.7") and acl.allows("::1")
    assert acl.allows("::ffff:127.0.0.1")  # an IPv4 client on a dual-stack socket
    assert not acl.allows("192.0.2.1") and not acl.allows("2001:db8::1")
    assert not acl.allows("::ffff:192.0.2.1") and not acl.allows("not-an-address")
    wide = AccessControl.from_cidrs(["192.0.2.0/24", "2001:db8::/32"])
    assert wide.allows("192.0.2.200") and wide.allows("2001:db8::5") and wide.allows("127.0.0.1")
    assert not wide.allows("192.0.3.1")
    with pytest.raises(AclError, match="not a CIDR"):
        parse_network("10.0.0.0/33")


def test_check_listen() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        check_listen(host, [])
    for host in ("0.0.0.0", "::", "192.0.2.1"):
        with pytest.raises(AclError, match="--allow"):
            check_listen(host, [])
        check_listen(host, ["192.0.2.0/24"])


def test_refused_reply_is_header_only_and_never_larger() -> None:
    q = query("host.example.test.", 1, qid=0x1234, edns=True)
    r = refused_reply(q)
    assert r is not None and len(r) == 12 <= len(q)
    m = dns.message.from_wire(r)
    assert m.id == 0x1234 and m.rcode() == dns.rcode.REFUSED and m.flags & dns.flags.QR
    assert m.flags & dns.flags.RD and not m.question
    assert refused_reply(q[:11]) is None
    assert refused_reply(ISSUE10["qr-any"]) is None  # responses are dropped


async def test_clients_outside_the_allow_list_get_refused() -> None:
    """In-process, with an allow list that leaves out the test's own address 127.0.0.1
    (the CLI always adds loopback, so this is the only way to be 'outside' on loopback)."""
    acl = AccessControl((parse_network("127.0.0.2/32"),))
    config = ResolverConfig(listen=Server("127.0.0.1", 0), upstreams=[Server("127.0.0.1", 9)],
                            acl=acl)
    async with trio.open_nursery() as nursery:
        h = await nursery.start(serve_resolver, config)
        q = query("host.example.test.", 1, qid=0x5151)
        client = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await client.bind(("127.0.0.1", 0))
        await client.sendto(q, (h.udp.host, h.udp.port))
        r = dns.message.from_wire(await client.recv(65535))
        assert r.id == 0x5151 and r.rcode() == dns.rcode.REFUSED
        stream = await trio.open_tcp_stream(h.tcp.host, h.tcp.port)
        await stream.send_all(struct.pack("!H", len(q)) + q)
        data = b""
        while len(data) < 14:
            data += await stream.receive_some(100)
        assert dns.message.from_wire(data[2:]).rcode() == dns.rcode.REFUSED
        await stream.aclose()
        assert h.resolver.counters["refused-acl"] == 2
        # Refused before the cache or any upstream was consulted.
        assert not h.resolver.inflight and not h.resolver.cache.entries
        assert h.resolver.cache.stats.hits == 0
        nursery.cancel_scope.cancel()


async def test_tcp_connections_beyond_the_cap_are_closed_and_udp_goes_on(authd) -> None:
    """With --tcp-max-connections 3, three idle clients hold their slots; a fourth is closed
    at once; UDP is answered throughout; a freed slot is usable again."""
    config = ResolverConfig(listen=Server("127.0.0.1", 0),
                            upstreams=[Server(authd.host, authd.port)], max_tcp_connections=3)
    q = query("host.example.test.", 1, qid=0x3333)
    frame = struct.pack("!H", len(q)) + q

    async def ask(stream: trio.SocketStream) -> bytes:
        await stream.send_all(frame)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = await stream.receive_some(65535)
            if not chunk:
                return b""
            data += chunk
        return data[2:]

    async with trio.open_nursery() as nursery:
        h = await nursery.start(serve_resolver, config)
        held = [await trio.open_tcp_stream(h.tcp.host, h.tcp.port) for _ in range(3)]
        for stream in held:  # answered: each has its slot
            assert dns.message.from_wire(await ask(stream)).rcode() == dns.rcode.NOERROR
        extra = await trio.open_tcp_stream(h.tcp.host, h.tcp.port)
        assert await extra.receive_some(100) == b""  # closed at once
        assert h.resolver.counters["tcp-refused-full"] == 1
        client = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await client.bind(("127.0.0.1", 0))
        await client.sendto(q, (h.udp.host, h.udp.port))
        assert dns.message.from_wire(await client.recv(65535)).rcode() == dns.rcode.NOERROR
        await held.pop().aclose()
        while h.resolver.tcp_open > 2:  # the server notices the close on its next read
            await trio.testing.wait_all_tasks_blocked()
        again = await trio.open_tcp_stream(h.tcp.host, h.tcp.port)
        assert dns.message.from_wire(await ask(again)).rcode() == dns.rcode.NOERROR
        for stream in [*held, again, extra]:
            await stream.aclose()
        nursery.cancel_scope.cancel()


# ---- error boundaries and the rate-limited log -------------------------------------------------


async def test_unexpected_errors_answer_servfail_and_log_once(caplog: pytest.LogCaptureFixture,
                                                              mock_clock: object) -> None:
    """A bug in the answer path (simulated) costs SERVFAIL for that query, nothing more:
    100 such queries in one second write one line, and the server goes on answering.
    (MockClock at rate 0: no time passes, however busy the machine.)"""
    config = ResolverConfig(listen=Server("127.0.0.1", 0), upstreams=[Server("127.0.0.1", 9)])
    async with trio.open_nursery() as nursery:
        h = await nursery.start(serve_resolver, config)
        calls = 0

        async def broken(wire: bytes, max_size_hint: bool) -> bytes | None:
            nonlocal calls
            calls += 1
            raise KeyError("simulated bug")

        h.resolver.answer = broken  # type: ignore[method-assign]
        client = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await client.bind(("127.0.0.1", 0))
        with caplog.at_level(logging.WARNING, logger="resolver"):
            for i in range(100):
                await client.sendto(query(f"n{i}.example.test.", 1, qid=i), (h.udp.host, h.udp.port))
                r = dns.message.from_wire(await client.recv(65535))
                assert r.id == i and r.rcode() == dns.rcode.SERVFAIL
            stream = await trio.open_tcp_stream(h.tcp.host, h.tcp.port)
            q = query("tcp.example.test.", 1, qid=7)
            await stream.send_all(struct.pack("!H", len(q)) + q)
            data = b""
            while len(data) < 14:
                data += await stream.receive_some(100)
            assert dns.message.from_wire(data[2:]).rcode() == dns.rcode.SERVFAIL
        lines = [r.getMessage() for r in caplog.records]
        assert calls == 101 and h.resolver.counters["internal-errors"] == 101
        assert len([x for x in lines if x.startswith("resolver udp-query: KeyError")]) == 1
        assert len([x for x in lines if x.startswith("resolver tcp-query: KeyError")]) == 1
        assert len(lines) == 2
        assert "Traceback" not in caplog.text
        nursery.cancel_scope.cancel()


def test_view_query_refuses_names_over_255_octets() -> None:
    with pytest.raises(WireError, match="255"):
        view_query(ISSUE10["long-question"])
    ok = query(".".join(["a" * 63] * 3) + "." + "b" * 61 + ".", 1)  # exactly 255 octets
    assert view_query(ok).end == len(ok)


# ---- a real client that is not on loopback (network namespace) ----------------------------


@contextlib.contextmanager
def namespace_client() -> Iterator[tuple[str, str, str]]:
    """A network namespace joined to this host by a veth pair, on RFC 2544's benchmarking
    range (198.18.0.0/15, FIELD-NOTES): (namespace, host address, client address).
    Deleted at the end; skips unless root with `ip`."""
    import os
    import shutil

    ip = shutil.which("ip")
    if ip is None or os.geteuid() != 0:
        pytest.skip("needs root and `ip` (Debian package iproute2) for a network namespace")
    tag = f"{os.getpid() % 100000}"
    ns, host_if, ns_if = f"rh-{tag}", f"rhh{tag}", f"rhn{tag}"
    host_addr, client_addr = "198.18.10.1", "198.18.10.2"

    def run(*argv: str) -> None:
        subprocess.run([ip, *argv], check=True, capture_output=True, timeout=30)

    try:
        run("netns", "add", ns)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace: {exc.stderr.decode().strip()}")
    try:
        run("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        run("link", "set", ns_if, "netns", ns)
        run("addr", "add", f"{host_addr}/30", "dev", host_if)
        run("link", "set", host_if, "up")
        run("netns", "exec", ns, ip, "addr", "add", f"{client_addr}/30", "dev", ns_if)
        run("netns", "exec", ns, ip, "link", "set", ns_if, "up")
        run("netns", "exec", ns, ip, "link", "set", "lo", "up")
        yield ns, host_addr, client_addr
    finally:
        subprocess.run([ip, "link", "del", host_if], capture_output=True, timeout=30)
        subprocess.run([ip, "netns", "del", ns], capture_output=True, timeout=30)


def wait_for_line(proc: subprocess.Popen, log: Path, text: str, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        assert time.monotonic() < deadline, f"no {text!r} in {log} within {timeout} s"
        time.sleep(0.05)  # polling a log file: there is no event to wait on


ASK_FROM_NAMESPACE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(bytes.fromhex(sys.argv[1]), (sys.argv[2], int(sys.argv[3])))
print(s.recv(65535).hex())
"""


@pytest.mark.realtime
def test_real_client_off_loopback_is_refused_unless_allowed() -> None:
    """`resolver serve` on a veth address: a client in another namespace gets REFUSED while
    --allow names another network, and an answer once --allow covers it."""
    with namespace_client() as (ns, host_addr, client_addr), \
            tempfile.TemporaryDirectory() as tmp, run_authd(ROOT / "zones") as upstream:
        for allow, rcode in (("198.18.99.0/24", dns.rcode.REFUSED),
                             (f"{client_addr}/32", dns.rcode.NOERROR)):
            port = free_port(host_addr)
            log = Path(tmp) / f"resolver-{rcode}.log"
            proc = spawn([sys.executable, "-m", "resolver", "serve", "--listen",
                          f"{host_addr}:{port}", "--allow", allow, "--forward",
                          str(upstream.server)], log)
            try:
                # Our own queries to 198.18.10.1 come from 198.18.10.1, not loopback, so they
                # would be refused too: readiness is the start-up line instead.
                wait_for_line(proc, log, "listening on")
                q = query("host.example.test.", 1, qid=0x6262)
                out = subprocess.run(
                    ["ip", "netns", "exec", ns, sys.executable, "-c", ASK_FROM_NAMESPACE,
                     q.hex(), host_addr, str(port)], capture_output=True, text=True, timeout=60,
                )
                assert out.returncode == 0, out.stderr
                r = dns.message.from_wire(bytes.fromhex(out.stdout.strip()))
                assert r.id == 0x6262 and r.rcode() == rcode
                if rcode == dns.rcode.NOERROR:
                    assert r.answer[0][0].address == "192.0.2.80"
                else:
                    assert not r.question and not r.answer  # header only, as Unbound
                assert proc.poll() is None
            finally:
                stop(proc)
