"""End-to-end: real sockets, a real authoritative server (authd, and Knot as a cross-check), real `dig`.

The resolver runs in-process under trio's MockClock (rate 0): time moves only when the test
jumps it, so "cached for exactly min(SOA TTL, MINIMUM)" is checked to the millisecond while
every packet still crosses a real loopback socket.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import trio
import trio.testing

from resolver.cache import CachePolicy, cache_key
from resolver.procs import Authd, Knot, run_authd, run_dig, run_knot
from resolver.resolution import Server
from resolver.server import ResolverConfig, ResolverHandle, serve_resolver

pytestmark = pytest.mark.realtime

SOA_TTL = 7
SOA_MINIMUM = 4


def zone_text(*, with_aaaa: bool = False, serial: int = 1) -> str:
    big = "\n".join(f'big IN TXT "{str(i) * 200}"' for i in range(10))
    return f"""$ORIGIN neg.test.
$TTL 300
@ {SOA_TTL} IN SOA ns1 hostmaster {serial} 7200 900 1209600 {SOA_MINIMUM}
@ IN NS ns1
ns1 IN A 127.0.0.1
www 60 IN A 192.0.2.1
{"www 60 IN AAAA 2001:db8::1" if with_aaaa else ""}
alias IN CNAME www
{big}
"""


@pytest.fixture(params=["authd", "knot"])
def knot(request: pytest.FixtureRequest) -> Iterator[Authd | Knot]:
    """The authority under the resolver: ours, and Knot so a difference would show."""
    runner = run_authd if request.param == "authd" else run_knot
    try:
        with runner({"neg.test.": zone_text()}) as k:
            yield k
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


async def dig(server: Server, name: str, rdtype: str, *extra: str) -> dict:
    try:
        return await run_dig(server, name, rdtype, *extra)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


async def start(nursery: trio.Nursery, upstream: Server, **policy: object) -> ResolverHandle:
    config = ResolverConfig(
        listen=Server("127.0.0.1", 0), upstreams=[upstream], policy=CachePolicy(**policy)
    )
    return await nursery.start(serve_resolver, config)


async def test_positive_answer_and_ttl_countdown(knot: Authd | Knot, mock_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        h = await start(nursery, knot.server)
        first = await dig(h.udp, "www.neg.test", "A")
        assert first["status"] == "NOERROR"
        assert first["answer"][0][4] == "192.0.2.1" and first["answer"][0][1] == "60"
        mock_clock.jump(25.5)
        later = await dig(h.udp, "www.neg.test", "A")
        assert later["answer"][0][1] == "34"  # 60 - 25.5, counted down
        assert h.resolver.counters["upstream-answers"] == 1
        cname = await dig(h.udp, "alias.neg.test", "A")
        assert [r[3] for r in cname["answer"]] == ["CNAME", "A"]
        nursery.cancel_scope.cancel()


async def test_nodata_cached_for_exactly_min_soa_ttl_minimum(
    knot: Authd | Knot, mock_clock: trio.testing.MockClock
) -> None:
    neg_ttl = min(SOA_TTL, SOA_MINIMUM)
    async with trio.open_nursery() as nursery:
        h = await start(nursery, knot.server)
        r = await dig(h.udp, "www.neg.test", "AAAA")
        assert r["status"] == "NOERROR" and r["answer"] == []
        assert r["authority"][0][3] == "SOA" and r["authority"][0][1] == str(neg_ttl)
        # The record appears at the authority; the resolver must keep saying NODATA until
        # the negative TTL is over, and not a millisecond longer.
        await trio.to_thread.run_sync(
            lambda: knot.replace_zones({"neg.test.": zone_text(with_aaaa=True, serial=2)})
        )
        mock_clock.jump(neg_ttl - 0.001)
        r = await dig(h.udp, "www.neg.test", "AAAA")
        assert r["answer"] == [] and r["authority"][0][1] == "0"
        mock_clock.jump(0.001)
        r = await dig(h.udp, "www.neg.test", "AAAA")
        assert r["answer"] and r["answer"][0][4] == "2001:db8::1"
        assert h.resolver.counters["upstream-answers"] == 2
        nursery.cancel_scope.cancel()


async def test_max_negative_ttl_caps(knot: Authd | Knot, mock_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        h = await start(nursery, knot.server, max_negative_ttl=1)
        r = await dig(h.udp, "nope.neg.test", "A")
        assert r["status"] == "NXDOMAIN" and r["authority"][0][1] == "1"
        mock_clock.jump(1.0)
        await dig(h.udp, "nope.neg.test", "TXT")  # NXDOMAIN is per name, so this was cached...
        assert h.resolver.counters["upstream-answers"] == 2  # ...but it expired after 1 s
        nursery.cancel_scope.cancel()


async def test_truncated_upstream_retried_over_tcp(knot: Authd | Knot, mock_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        h = await start(nursery, knot.server)
        r = await dig(h.udp, "big.neg.test", "TXT")  # dig itself retries over TCP on our TC
        assert r["status"] == "NOERROR" and len(r["answer"]) == 10
        r = await dig(h.udp, "big.neg.test", "TXT", "+tcp")
        assert len(r["answer"]) == 10
        assert h.resolver.counters["upstream-answers"] == 1
        nursery.cancel_scope.cancel()


async def test_stale_served_when_upstream_dies(mock_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        with run_authd({"neg.test.": zone_text()}) as k:
            h = await start(nursery, k.server, serve_stale=True, max_stale=3600)
            r = await dig(h.udp, "www.neg.test", "A")
            assert r["answer"][0][1] == "60"
        # Knot is gone. After expiry the resolver must ask upstream, fail, and serve stale.
        mock_clock.jump(61)
        result: dict = {}

        async def ask() -> None:
            result.update(await dig(h.udp, "www.neg.test", "A"))

        nursery.start_soon(ask)
        while not h.resolver.inflight:
            await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(2)  # past the 1.5 s upstream timeout
        while not result:
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(0)
        assert result["status"] == "NOERROR"
        assert result["answer"][0][1] == "30" and result["answer"][0][4] == "192.0.2.1"
        assert "EDE: 3 (Stale Answer)" in result["raw"]
        # RFC 9520: the failure is remembered, so the next query is answered without asking.
        again = await dig(h.udp, "www.neg.test", "A")
        assert again["answer"][0][1] == "30"
        assert h.resolver.counters["failure-cache-hits"] == 1
        nursery.cancel_scope.cancel()


async def test_servfail_without_serve_stale(mock_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        dead = Server("127.0.0.1", 9)  # discard port: nothing listens, ICMP unreachable
        h = await start(nursery, dead)
        result: dict = {}

        async def ask() -> None:
            result.update(await dig(h.udp, "www.neg.test", "A"))

        nursery.start_soon(ask)
        while not h.resolver.inflight:
            await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(2)
        while not result:
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(0)
        assert result["status"] == "SERVFAIL"
        nursery.cancel_scope.cancel()


async def test_spoofed_responses_never_cached(mock_clock: trio.testing.MockClock) -> None:
    """A fake upstream that answers every query with forgeries first, then the truth."""
    victim = dns.name.from_text("victim.bank.test.")
    fake = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await fake.bind(("127.0.0.1", 0))
    other = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # wrong source port
    await other.bind(("127.0.0.1", 0))
    upstream = Server("127.0.0.1", fake.getsockname()[1])
    seen: list[str] = []

    async def fake_upstream() -> None:
        while True:
            data, addr = await fake.recvfrom(4096)
            q = dns.message.from_wire(data)
            seen.append(str(q.question[0].name))
            evil = dns.rrset.from_text(victim, 86400, "IN", "A", "6.6.6.6")

            # 1. wrong ID
            r = dns.message.make_response(q)
            r.id = (q.id + 1) % 65536
            r.answer.append(evil)
            await fake.sendto(r.to_wire(), addr)
            # 2. wrong question (asks about the victim)
            r = dns.message.make_response(dns.message.make_query(victim, "A"))
            r.id = q.id
            r.answer.append(evil)
            await fake.sendto(r.to_wire(), addr)
            # 3. right ID and question, wrong source port
            r = dns.message.make_response(q)
            r.answer.append(evil)
            await other.sendto(r.to_wire(), addr)
            # 4. garbage with the right ID
            await fake.sendto(data[:2] + b"\x80\x00" + b"garbage-garbage", addr)
            # 5. the real answer, with out-of-bailiwick records riding along
            r = dns.message.make_response(q)
            r.answer.append(dns.rrset.from_text(q.question[0].name, 300, "IN", "A", "192.0.2.7"))
            r.answer.append(evil)
            r.additional.append(evil)
            await fake.sendto(r.to_wire(), addr)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fake_upstream)
        config = ResolverConfig(listen=Server("127.0.0.1", 0), upstreams=[upstream])
        h = await nursery.start(serve_resolver, config)
        r = await dig(h.udp, "www.shop.test", "A")
        assert [a[4] for a in r["answer"]] == ["192.0.2.7"]  # only the chain for the question
        c = h.resolver.counters
        assert c["rejected-wrong-id"] == 1
        assert c["rejected-wrong-question"] == 1
        assert c["rejected-wrong-server"] == 1
        assert c["rejected-malformed"] == 1
        assert h.resolver.cache.get(cache_key(victim, dns.rdatatype.A), trio.current_time()) is None
        assert len(h.resolver.cache.entries) == 1
        # And asking for the victim goes upstream (nothing poisoned was cached).
        seen.clear()
        await dig(h.udp, "victim.bank.test", "A")
        assert seen == ["victim.bank.test."]
        nursery.cancel_scope.cancel()


async def test_malformed_client_queries_never_crash(knot: Authd | Knot, mock_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        h = await start(nursery, knot.server)
        s = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await s.bind(("127.0.0.1", 0))
        rng = random.Random(5)
        for n in range(200):
            junk = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 60)))
            if n % 3 == 0:
                junk = b"\x12\x34\x01\x00\x00\x01" + junk  # header-ish, then junk
            await s.sendto(junk, (h.udp.host, h.udp.port))
        # Crafted near-misses of the fast path: plain header, cut or odd OPT, no question end.
        q = dns.message.make_query("www.neg.test.", "A", use_edns=0).to_wire()
        for bad in (q[:-1], q[:-5], q[:-11], q[:20], q[:12] + b"\x03www", q + b"\x00",
                    q[:-11] + b"\x00\x00\x29\x04", b"\x00\x00\x00\x00\x00\x01" + b"\x00" * 11):
            for _ in range(2):
                await s.sendto(bad, (h.udp.host, h.udp.port))
        # FORMERR for a header with a broken question; still answering real queries after.
        r = await dig(h.udp, "www.neg.test", "A")
        assert r["status"] == "NOERROR"
        assert h.resolver.counters["internal-errors"] == 0
        nursery.cancel_scope.cancel()


async def test_jvm_stub_keeps_negative_10s_whatever_the_soa(
    knot: Authd | Knot, mock_clock: trio.testing.MockClock
) -> None:
    """Layered caches: a JVM-like stub in front of the resolver, both in-process."""
    from resolver.cli import STUB_PRESETS

    async with trio.open_nursery() as nursery:
        resolver = await start(nursery, knot.server)
        stub_cfg = ResolverConfig(
            listen=Server("127.0.0.1", 0), upstreams=[resolver.udp],
            policy=CachePolicy(**STUB_PRESETS["jvm"]), name="stub",
        )
        stub = await nursery.start(serve_resolver, stub_cfg)
        r = await dig(stub.udp, "www.neg.test", "AAAA")
        assert r["status"] == "NOERROR" and r["answer"] == []
        await trio.to_thread.run_sync(
            lambda: knot.replace_zones({"neg.test.": zone_text(with_aaaa=True, serial=2)})
        )
        # The resolver forgets after min(SOA TTL, MINIMUM) = 4 s; the stub holds on for 10 s.
        mock_clock.jump(min(SOA_TTL, SOA_MINIMUM))
        assert (await dig(resolver.udp, "www.neg.test", "AAAA"))["answer"]
        mock_clock.jump(9.999 - min(SOA_TTL, SOA_MINIMUM))
        assert (await dig(stub.udp, "www.neg.test", "AAAA"))["answer"] == []
        mock_clock.jump(0.001)
        assert (await dig(stub.udp, "www.neg.test", "AAAA"))["answer"]
        # Positive answers live 30 s in the JVM whatever their TTL (60 here).
        first = await dig(stub.udp, "www.neg.test", "A")
        assert first["answer"][0][1] == "30"
        nursery.cancel_scope.cancel()


async def test_cli_serve_and_stub_processes(knot: Authd | Knot) -> None:
    """The commands as a user runs them: `resolver serve` and `resolver stub`, then dig."""
    import tempfile
    from pathlib import Path

    from resolver.procs import run_resolver

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp)
        with (
            run_resolver(["serve", "--forward", str(knot.server), "--max-negative-ttl", "2"],
                         log / "serve.log", probe="neg.test.") as res,
            run_resolver(["stub", "--upstream", str(res), "--preset", "jvm"],
                         log / "stub.log", probe="neg.test.") as stub,
        ):
            r = await dig(stub, "www.neg.test", "A")
            assert r["status"] == "NOERROR" and r["answer"][0][4] == "192.0.2.1"
            r = await dig(res, "nope.neg.test", "A")
            assert r["status"] == "NXDOMAIN" and r["authority"][0][1] == "2"
            r = await dig(res, "big.neg.test", "TXT", "+tcp")
            assert len(r["answer"]) == 10
        text = (log / "serve.log").read_text()
        assert "cached nxdomain ttl=2" in text  # one log line per decision


@pytest.mark.parametrize("hedge", [None, 0.010])
async def test_hedging_beats_a_silent_first_upstream(knot: Authd | Knot, hedge: float | None) -> None:
    """Real time: the first upstream swallows queries; hedging asks the second after 10 ms."""
    silent = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await silent.bind(("127.0.0.1", 0))
    swallowed: list[bytes] = []

    async def swallow() -> None:
        while True:
            data, _ = await silent.recvfrom(4096)
            swallowed.append(data)

    config = ResolverConfig(
        listen=Server("127.0.0.1", 0),
        upstreams=[Server("127.0.0.1", silent.getsockname()[1]), knot.server],
        hedge_after=hedge, timeout=1.0,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(swallow)
        h = await nursery.start(serve_resolver, config)
        started = trio.current_time()
        r = await dig(h.udp, "www.neg.test", "A")
        took = trio.current_time() - started
        assert r["answer"][0][4] == "192.0.2.1"
        assert len(swallowed) == 1  # the first upstream was asked either way
        if hedge is None:
            assert took >= 1.0  # waited out the timeout before the second upstream
            assert h.resolver.counters["hedged"] == 0
        else:
            assert took < 0.9
            assert h.resolver.counters["hedged"] == 1 and h.resolver.counters["hedge-won"] == 1
        nursery.cancel_scope.cancel()


async def test_random_name_flood_stays_bounded() -> None:
    """A flood of never-repeated names: cache and in-flight work stay within their bounds."""
    with run_authd({"neg.test.": zone_text()}) as authority:
        await _flood(authority.server)


async def _flood(upstream: Server) -> None:
    config = ResolverConfig(
        listen=Server("127.0.0.1", 0), upstreams=[upstream],
        policy=CachePolicy(max_entries=200, max_bytes=100_000), max_inflight=50,
    )
    peak = 0
    async with trio.open_nursery() as nursery:
        h = await nursery.start(serve_resolver, config)
        s = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await s.bind(("127.0.0.1", 0))
        rng = random.Random(9)
        for i in range(1200):
            name = f"r{rng.getrandbits(48):x}.neg.test."
            await s.sendto(dns.message.make_query(name, "A").to_wire(), (h.udp.host, h.udp.port))
            peak = max(peak, len(h.resolver.inflight))
            if i % 50 == 0:
                await trio.sleep(0.005)  # let answers flow, as a real flood would
        with trio.move_on_after(5):
            while h.resolver.inflight:
                await trio.sleep(0.05)
        cache = h.resolver.cache
        assert len(cache.entries) <= 200 and cache.bytes_used <= 100_000
        assert peak <= 50
        assert cache.stats.evictions > 0  # the LRU did its job
        assert h.resolver.counters["upstream-answers"] > 200
        nursery.cancel_scope.cancel()


async def test_stale_answer_at_the_client_timer_while_resolution_goes_on(
    mock_clock: trio.testing.MockClock,
) -> None:
    """RFC 8767 §5: after 1.8 s without fresh data the client gets stale; resolving goes on."""
    fake = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await fake.bind(("127.0.0.1", 0))
    silent = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await silent.bind(("127.0.0.1", 0))
    answering = [True]

    async def upstream() -> None:
        while True:
            data, addr = await fake.recvfrom(4096)
            if answering[0]:
                q = dns.message.from_wire(data)
                r = dns.message.make_response(q)
                r.answer.append(dns.rrset.from_text(q.question[0].name, 10, "IN", "A", "192.0.2.50"))
                await fake.sendto(r.to_wire(), addr)

    config = ResolverConfig(
        listen=Server("127.0.0.1", 0),
        upstreams=[Server("127.0.0.1", fake.getsockname()[1]),
                   Server("127.0.0.1", silent.getsockname()[1])],
        policy=CachePolicy(serve_stale=True, max_stale=3600), timeout=1.5,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(upstream)
        h = await nursery.start(serve_resolver, config)
        assert (await dig(h.udp, "api.example.test", "A"))["answer"][0][1] == "10"
        answering[0] = False
        mock_clock.jump(11)
        result: dict = {}

        async def ask() -> None:
            result.update(await dig(h.udp, "api.example.test", "A"))

        nursery.start_soon(ask)
        while not h.resolver.inflight:
            await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(1.8)  # both upstreams together would take 3 s to give up
        while not result:
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(0)
        assert result["answer"][0][1] == "30" and "EDE: 3 (Stale Answer)" in result["raw"]
        assert h.resolver.inflight  # the resolution is still going, in the background
        nursery.cancel_scope.cancel()
