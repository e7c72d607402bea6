"""Iterative resolution through the test universe: root -> aws. -> api.aws., each a real authd.

Three authd processes on 127.0.1.1, 127.0.1.2 and 127.0.1.3 (one port), the resolver in-process
with `zones/universe/root.hints`, and real `dig` as the client.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import pytest
import trio
import trio.testing

from resolver.cache import CachePolicy, cache_key
from resolver.cli import load_root_hints
from resolver.procs import free_port, run_authd, run_dig
from resolver.resolution import Delegation, Server
from resolver.server import ResolverConfig, serve_resolver

pytestmark = pytest.mark.realtime

UNIVERSE = Path(__file__).parent.parent / "zones" / "universe"
ADDRS = {"root": "127.0.1.1", "aws": "127.0.1.2", "api.aws": "127.0.1.3"}


async def dig(server: Server, name: str, rdtype: str) -> dict:
    try:
        return await run_dig(server, name, rdtype)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def universe() -> Iterator[int]:
    port = free_port(*ADDRS.values())
    try:
        with (
            run_authd(UNIVERSE / "root", ADDRS["root"], port),
            run_authd(UNIVERSE / "aws", ADDRS["aws"], port),
            run_authd(UNIVERSE / "api.aws", ADDRS["api.aws"], port),
        ):
            yield port
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.1.x loopback addresses: {exc}")


async def test_iterative_follows_referrals_to_the_endpoint(
    universe: int, mock_clock: trio.testing.MockClock
) -> None:
    hints = load_root_hints(UNIVERSE / "root.hints", universe)
    config = ResolverConfig(listen=Server("127.0.0.1", 0), root_hints=hints)
    async with trio.open_nursery() as nursery:
        h = await nursery.start(serve_resolver, config)
        r = await dig(h.udp, "dynamodb.us-east-1.api.aws", "A")
        assert r["status"] == "NOERROR", r["raw"]
        assert r["answer"] and all(a[3] == "A" for a in r["answer"])
        # The referral chain was learned: the next name in api.aws. goes straight there.
        assert dns.name.from_text("api.aws.") in h.resolver.delegations
        assert dns.name.from_text("aws.") in h.resolver.delegations
        nx = await dig(h.udp, "nope.api.aws", "A")
        assert nx["status"] == "NXDOMAIN" and nx["authority"][0][3] == "SOA"
        # Negative answer from the right zone is cached (RFC 2308): a second ask is a hit.
        before = h.resolver.counters["upstream-answers"]
        await dig(h.udp, "nope.api.aws", "TXT")
        assert h.resolver.counters["upstream-answers"] == before
        nursery.cancel_scope.cancel()


async def test_out_of_bailiwick_data_from_a_referral_is_never_cached(
    mock_clock: trio.testing.MockClock,
) -> None:
    """A fake root that answers with a referral to aws. plus poison for another zone."""
    victim = dns.name.from_text("www.bank.example.")
    root = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await root.bind(("127.0.0.1", 0))
    aws = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await aws.bind(("127.0.0.1", 0))
    # The test harness needs both fake servers on one port, so use a second address.
    port = root.getsockname()[1]
    aws.close()
    aws = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        await aws.bind(("127.0.1.9", port))
    except OSError:
        pytest.skip("port taken on 127.0.1.9")
    poison = dns.rrset.from_text(victim, 86400, "IN", "A", "6.6.6.6")

    async def fake_root() -> None:
        while True:
            data, addr = await root.recvfrom(4096)
            q = dns.message.make_response(dns.message.from_wire(data))
            q.flags &= ~dns.flags.AA
            q.authority.append(dns.rrset.from_text("aws.", 3600, "IN", "NS", "ns1.aws."))
            q.additional.append(dns.rrset.from_text("ns1.aws.", 3600, "IN", "A", "127.0.1.9"))
            q.additional.append(poison)
            q.answer.append(poison)  # answer-section poison, unrelated to the question
            await root.sendto(q.to_wire(), addr)

    async def fake_aws() -> None:
        while True:
            data, addr = await aws.recvfrom(4096)
            query = dns.message.from_wire(data)
            r = dns.message.make_response(query)
            r.flags |= dns.flags.AA
            r.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "192.0.2.9"))
            # An authority for aws. may not speak for bank.example.
            r.answer.append(poison)
            r.authority.append(dns.rrset.from_text("bank.example.", 3600, "IN", "NS", "evil.aws."))
            await aws.sendto(r.to_wire(), addr)

    hints = Delegation(dns.name.root, (Server("127.0.0.1", port),))
    config = ResolverConfig(listen=Server("127.0.0.1", 0), root_hints=hints, policy=CachePolicy())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fake_root)
        nursery.start_soon(fake_aws)
        h = await nursery.start(serve_resolver, config)
        r = await dig(h.udp, "x.aws", "A")
        assert [a[4] for a in r["answer"]] == ["192.0.2.9"]
        now = trio.current_time()
        assert h.resolver.cache.get(cache_key(victim, dns.rdatatype.A), now) is None
        assert dns.name.from_text("bank.example.") not in h.resolver.delegations
        assert h.resolver.counters["rejected-out-of-bailiwick"] >= 2
        nursery.cancel_scope.cancel()
