"""Property test: the in-process resolver, under MockClock, against a model of RFC 2308 caching.

Hypothesis generates a sequence of clock jumps and queries. Each example runs a fresh resolver
in-process (trio MockClock, rate 0) in front of one real authd; every answer is decoded with
dnslib (an independent decoder) and compared with a tiny model: an answer is fetched upstream
exactly when the model's entry has expired, and its TTL is the entry's TTL minus the whole
seconds (rounded up) since it was fetched.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator

import dns.message
import dnslib
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolver.procs import run_authd
from resolver.resolution import Server
from resolver.server import ResolverConfig, serve_resolver

pytestmark = pytest.mark.realtime

ZONE = """$ORIGIN prop.test.
$TTL 300
@ 7 IN SOA ns1 hostmaster 1 7200 900 1209600 4
@ IN NS ns1
ns1 IN A 127.0.0.1
www 6 IN A 192.0.2.1
alias 300 IN CNAME www
slow 9 IN A 192.0.2.2
"""
# (name, type) -> (rcode, TTL the resolver caches it for); NXDOMAIN shares a per-name entry.
EXPECTED = {
    ("www.prop.test.", "A"): ("NOERROR", 6),
    ("www.prop.test.", "AAAA"): ("NOERROR", 4),  # NODATA: min(SOA TTL 7, MINIMUM 4)
    ("alias.prop.test.", "A"): ("NOERROR", 6),  # CNAME chain: min(300, 6)
    ("slow.prop.test.", "A"): ("NOERROR", 9),
    ("nope.prop.test.", "A"): ("NXDOMAIN", 4),
    ("nope.prop.test.", "TXT"): ("NXDOMAIN", 4),
}
QUESTIONS = sorted(EXPECTED)


@pytest.fixture(scope="module")
def authd() -> Iterator[Server]:
    with run_authd({"prop.test.": ZONE}) as a:
        yield a.server


def model_key(name: str, rdtype: str) -> tuple[str, str]:
    return (name, "*") if EXPECTED[(name, rdtype)][0] == "NXDOMAIN" else (name, rdtype)


async def ask(server: Server, name: str, rdtype: str) -> dnslib.DNSRecord:
    q = dns.message.make_query(name, rdtype)
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        await s.bind(("127.0.0.1", 0))
        await s.sendto(q.to_wire(), (server.host, server.port))
        data, _ = await s.recvfrom(4096)
    return dnslib.DNSRecord.parse(data)


ops = st.lists(
    st.one_of(
        # whole milliseconds: a sub-ulp jump (hypothesis found 2.4e-269 s) vanishes in the
        # cache's float arithmetic but not in the model's, a disagreement no clock can cause
        st.tuples(st.just("jump"), st.integers(0, 5000).map(lambda ms: ms / 1000)),
        st.tuples(st.just("ask"), st.sampled_from(QUESTIONS)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=ops)
def test_resolver_matches_the_rfc2308_model(authd: Server, script: list) -> None:
    clock = trio.testing.MockClock(rate=0)

    async def scenario() -> None:
        config = ResolverConfig(listen=Server("127.0.0.1", 0), upstreams=[authd])
        fetched: dict[tuple[str, str], float] = {}
        upstream = 0
        async with trio.open_nursery() as nursery:
            h = await nursery.start(serve_resolver, config)
            for op, arg in script:
                if op == "jump":
                    clock.jump(arg)
                    continue
                name, rdtype = arg
                rcode, ttl = EXPECTED[arg]
                now = trio.current_time()
                key = model_key(name, rdtype)
                if key not in fetched or now >= fetched[key] + ttl:
                    fetched[key] = now
                    upstream += 1
                reply = await ask(h.udp, name, rdtype)
                assert dnslib.RCODE[reply.header.rcode] == rcode
                age = now - fetched[key]
                want = ttl - math.ceil(age) if age > 0 else ttl
                got = [rr.ttl for rr in reply.rr if rr.rtype != dnslib.QTYPE.CNAME] or [
                    rr.ttl for rr in reply.auth
                ]
                assert got and min(got) == want, (arg, age, got, want)
                assert h.resolver.counters["upstream-answers"] == upstream
            nursery.cancel_scope.cancel()

    trio.run(scenario, clock=clock)
