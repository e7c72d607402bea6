"""Glueless delegations in the pure iterative resolution: NS names resolved by sub-resolutions.

No sockets and no clock: a tiny in-memory world of authorities (dnspython zones, one per
loopback address) answers every `Send` the resolution makes, and the test feeds the replies
back, or calls `on_timer` at the resolution's deadline when a server is silent.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone

from resolver.cache import Cache, CachePolicy, cache_key
from resolver.resolution import (
    MAX_DEPENDENCY_DEPTH,
    MAX_QUERIES_PER_QUESTION,
    Answer,
    Delegation,
    DelegationCache,
    Failure,
    IterativeResolution,
    Send,
    Server,
)

PORT = 53
Name = dns.name.Name


def at(host: str) -> Server:
    return Server(host, PORT)


ROOT = at("127.0.2.1")
TEST_TLD = at("127.0.2.2")
NET_TLD = at("127.0.2.3")
PROVIDER = at("127.0.2.4")
LEAF = at("127.0.2.5")
NX = at("127.0.2.6")
SILENT = at("127.0.2.9")
HINTS = Delegation(dns.name.root, (ROOT,), 3600000)


def zone(origin: str, body: str) -> dns.zone.Zone:
    apex = "ns." + origin.lstrip(".") if origin != "." else "a.root-servers.test."
    text = (
        f"$ORIGIN {origin}\n$TTL 3600\n"
        f"@ IN SOA {apex} hostmaster.{apex} 1 7200 900 1209600 300\n"
        f"@ IN NS {apex}\n{body}"
    )
    return dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)


def respond(zones: list[dns.zone.Zone], query: dns.message.Message) -> dns.message.Message:
    """An RFC 1034 §4.3.2 authority: answer, referral, NODATA or NXDOMAIN, from the deepest
    zone it serves that holds the name. A referral carries only the glue it must, for NS names
    below the cut (RFC 9471 §2.1 in-domain glue), as minimal-responses servers do."""
    q = query.question[0]
    r = dns.message.make_response(query)
    r.flags &= ~dns.flags.RD
    mine = [z for z in zones if q.name.is_subdomain(z.origin)]
    if not mine:
        r.set_rcode(dns.rcode.REFUSED)
        return r
    z = max(mine, key=lambda z: len(z.origin))
    soa = z.find_rrset(z.origin, "SOA")
    name = q.name
    cut = None
    while name != z.origin:
        if z.get_rdataset(name, "NS") is not None:
            cut = name
        name = name.parent()
    if cut is not None:
        ns = z.find_rrset(cut, "NS")
        r.authority.append(ns)
        for rd in ns:
            if not rd.target.is_subdomain(cut):
                continue
            for t in ("A", "AAAA"):
                glue = z.get_rrset(rd.target, t)
                if glue is not None:
                    r.additional.append(glue)
        return r
    r.flags |= dns.flags.AA
    found = z.get_rrset(q.name, q.rdtype)
    if found is not None:
        r.answer.append(found)
        return r
    if z.get_node(q.name) is None:
        r.set_rcode(dns.rcode.NXDOMAIN)
    r.authority.append(soa)
    return r


def universe() -> dict[Server, Callable[[dns.message.Message], dns.message.Message | None]]:
    root = zone(".", """
test.  172800 IN NS ns.test.
ns.test. 172800 IN A 127.0.2.2
net.   172800 IN NS ns.net.
ns.net.  172800 IN A 127.0.2.3
""")
    test = zone("test.", """
ns         IN A  127.0.2.2
host       IN A  127.0.2.5
; NS in the parent zone itself, sent without glue (the name is not below the child)
simple     IN NS host.test.
; NS names in another TLD: root -> net. -> provider.net. -> address
glueless   IN NS ns1.provider.net.
; the first NS sits behind a silent server: its lookup times out, the second one works
flaky      IN NS ns.dead.net.
flaky      IN NS ns1.provider.net.
; glue for one NS (a silent server), none for the other: the glueless one is the reserve
half       IN NS ns.half.test.
half       IN NS ns1.provider.net.
ns.half    IN A  127.0.2.9
; loops: a zone named only by a name inside itself, and two zones naming each other
self       IN NS ns.self.test.
a          IN NS ns.b.test.
b          IN NS ns.a.test.
; many glueless NS names that all turn out not to exist
""" + "".join(f"wide IN NS ns{i}.nx.net.\n" for i in range(70))
        # depth: c1 -> ns.c2 -> c2 -> ... -> c5 has glue (4 deep); e1 ... e6 needs 5.
        + "".join(f"c{i} IN NS ns.c{i + 1}.test.\n" for i in range(1, 5))
        + "c5 IN NS ns.c5.test.\nns.c5 IN A 127.0.2.5\n"
        + "".join(f"e{i} IN NS ns.e{i + 1}.test.\n" for i in range(1, 6))
        + "e6 IN NS ns.e6.test.\nns.e6 IN A 127.0.2.5\n")
    net = zone("net.", """
ns       IN A  127.0.2.3
provider IN NS ns.provider.net.
ns.provider IN A 127.0.2.4
nx       IN NS ns.nx.net.
ns.nx    IN A  127.0.2.6
dead     IN NS ns.dead.net.
ns.dead  IN A  127.0.2.9
""")
    provider = zone("provider.net.", """
ns  IN A 127.0.2.4
ns1 300 IN A 127.0.2.5
""")
    nx = zone("nx.net.", "ns IN A 127.0.2.6\n")
    leaves = [
        zone(f"{z}.test.", "www 60 IN A 192.0.2.80\nns IN A 127.0.2.5\n")
        for z in ["simple", "glueless", "flaky", "half", "self", "a", "b"]
        + [f"c{i}" for i in range(1, 6)] + [f"e{i}" for i in range(1, 7)]
    ]

    def serve(*zs: dns.zone.Zone) -> Callable[[dns.message.Message], dns.message.Message]:
        return lambda q: respond(list(zs), q)

    return {
        ROOT: serve(root), TEST_TLD: serve(test), NET_TLD: serve(net),
        PROVIDER: serve(provider), NX: serve(nx), LEAF: serve(*leaves),
        SILENT: lambda q: None,
    }


@dataclass
class Run:
    res: IterativeResolution
    sends: list[Send] = field(default_factory=list)
    now: float = 0.0

    @property
    def asked(self) -> list[tuple[str, str, str]]:
        """(server host, name, type) of every query sent, in order."""
        return [
            (s.server.host, str(s.qname), dns.rdatatype.to_text(s.rdtype)) for s in self.sends
        ]


def resolve(
    name: str, *, cache: Cache | None = None, delegations: DelegationCache | None = None,
    now: float = 0.0, world: dict | None = None,
    tamper: Callable[[Send, bytes], list[tuple[bytes, Server]]] | None = None,
) -> Run:
    """Drive one resolution to its end against the in-memory world."""
    world = world or universe()
    res = IterativeResolution(
        dns.name.from_text(name), dns.rdatatype.A, 1, random.Random(5), hints=HINTS,
        cache=cache, delegations=delegations,
    )
    run = Run(res, now=now)
    start = delegations.closest(res.qname, now) if delegations is not None else None
    queue = list(res.start(now, start))
    for _ in range(1000):
        if res.done is not None:
            return run
        if not queue:
            deadline = res.deadline()
            assert deadline is not None, "resolution waits on nothing but is not done"
            run.now = deadline
            queue += res.on_timer(run.now)
            continue
        send = queue.pop(0)
        run.sends.append(send)
        reply = world[send.server](dns.message.from_wire(send.wire))
        if reply is None:
            continue
        wire = reply.to_wire(max_size=65535, want_shuffle=False)  # as if over TCP
        deliveries = tamper(send, wire) if tamper else [(wire, send.server)]
        for data, source in deliveries:
            run.now += 0.001
            queue += res.on_response(run.now, send, data, source)
    raise AssertionError("resolution did not end within 1000 steps")


def addresses(run: Run) -> list[str]:
    assert isinstance(run.res.done, Answer), run.res.done
    return [rd.address for r in run.res.done.response.answer for rd in r]


def test_glueless_referral_is_resolved_by_a_sub_resolution() -> None:
    """test. refers simple.test. to host.test. with no glue: the resolver looks host.test. up
    itself (from test., the closest known cut) and then asks it."""
    run = resolve("www.simple.test.", delegations=DelegationCache())
    assert addresses(run) == ["192.0.2.80"]
    assert run.asked == [
        ("127.0.2.1", "www.simple.test.", "A"),
        ("127.0.2.2", "www.simple.test.", "A"),
        ("127.0.2.2", "host.test.", "A"),  # the sub-resolution starts at test., learned above
        ("127.0.2.5", "www.simple.test.", "A"),
    ]
    assert any("no glue for simple.test." in line for line in run.res.log)
    assert run.res.budget.spent == 4


def test_ns_name_in_another_zone_follows_its_own_referral_chain() -> None:
    """glueless.test.'s servers are named in provider.net.: root -> net. -> provider.net."""
    delegations = DelegationCache()
    run = resolve("www.glueless.test.", delegations=delegations)
    assert addresses(run) == ["192.0.2.80"]
    assert run.asked == [
        ("127.0.2.1", "www.glueless.test.", "A"),
        ("127.0.2.2", "www.glueless.test.", "A"),
        ("127.0.2.1", "ns1.provider.net.", "A"),
        ("127.0.2.3", "ns1.provider.net.", "A"),
        ("127.0.2.4", "ns1.provider.net.", "A"),
        ("127.0.2.5", "www.glueless.test.", "A"),
    ]
    # Every cut on the way was learned, the glueless one with the address found for its NS.
    for z in ("test.", "net.", "provider.net.", "glueless.test."):
        assert dns.name.from_text(z) in delegations
    learned = delegations.closest(dns.name.from_text("x.glueless.test."), 1.0)
    assert learned is not None and learned.servers == (LEAF,)
    assert learned.ttl == 300  # min(NS TTL 3600, address TTL 300)


def test_out_of_bailiwick_glue_is_ignored_and_the_name_resolved_instead() -> None:
    """test. sends poison glue for ns1.provider.net., a name outside test.: the poison
    address is never asked, the real one is looked up."""
    world = universe()
    real_tld = world[TEST_TLD]

    def poisoning_tld(q: dns.message.Message) -> dns.message.Message | None:
        r = real_tld(q)
        if r is not None and r.authority and r.authority[0].rdtype == dns.rdatatype.NS:
            r.additional.append(dns.rrset.from_text("ns1.provider.net.", 3600, "IN", "A", "6.6.6.6"))
        return r

    world[TEST_TLD] = poisoning_tld
    cache = Cache(CachePolicy())
    run = resolve("www.glueless.test.", world=world, cache=cache)
    assert addresses(run) == ["192.0.2.80"]
    assert all(host != "6.6.6.6" for host, _, _ in run.asked)
    assert ("127.0.2.4", "ns1.provider.net.", "A") in run.asked
    hit = cache.get(cache_key(dns.name.from_text("ns1.provider.net."), dns.rdatatype.A), run.now)
    assert hit is not None and b"\x06\x06\x06\x06" not in hit.entry.wire


def test_silent_ns_name_times_out_and_the_next_one_is_used() -> None:
    run = resolve("www.flaky.test.", delegations=DelegationCache())
    assert addresses(run) == ["192.0.2.80"]
    assert ("127.0.2.9", "ns.dead.net.", "A") in run.asked
    assert run.asked[-1] == ("127.0.2.5", "www.flaky.test.", "A")
    assert any("timeout from 127.0.2.9:53" in line for line in run.res.log)


def test_sub_resolution_applies_the_id_server_and_question_checks() -> None:
    """Forgeries aimed at the sub-resolution's queries are counted and dropped like any other;
    the genuine reply that follows is used."""

    def forge_first(send: Send, wire: bytes) -> list[tuple[bytes, Server]]:
        if send.qname != dns.name.from_text("ns1.provider.net."):
            return [(wire, send.server)]
        wrong_id = bytes([wire[0] ^ 0x55]) + wire[1:]
        other = dns.message.from_wire(wire)
        other.question[0] = dns.rrset.RRset(dns.name.from_text("evil.net."), 1, 1)
        return [(wrong_id, send.server), (wire, at("127.0.2.66")),
                (other.to_wire(), send.server), (wire, send.server)]

    run = resolve("www.glueless.test.", tamper=forge_first)
    assert addresses(run) == ["192.0.2.80"]
    assert run.res.rejected["wrong-id"] == 3
    assert run.res.rejected["wrong-server"] == 3
    assert run.res.rejected["wrong-question"] == 3


def test_zone_named_only_by_a_name_inside_itself_is_a_loop() -> None:
    run = resolve("www.self.test.", delegations=DelegationCache())
    assert isinstance(run.res.done, Failure)
    assert run.res.done.reason == (
        "dependency loop: self.test. -> ns.self.test. -> self.test. (no glue anywhere)"
    )
    assert run.res.done.rcode == dns.rcode.SERVFAIL
    assert len(run.sends) <= 4


def test_two_zones_naming_each_other_without_glue_is_a_loop() -> None:
    run = resolve("www.a.test.", delegations=DelegationCache())
    assert isinstance(run.res.done, Failure)
    assert run.res.done.reason == (
        "dependency loop: a.test. -> ns.b.test. -> b.test. -> ns.a.test. -> a.test. "
        "(no glue anywhere)"
    )
    assert len(run.sends) <= 6
    assert run.res.sub is None  # nothing left running


def test_dependency_depth_is_bounded() -> None:
    """c1 needs ns.c2 needs ns.c3 needs ns.c4 needs ns.c5 (glued): 4 deep, answered. e1 ... e6
    needs 5 deep: SERVFAIL naming the chain, without asking the 5th level."""
    assert MAX_DEPENDENCY_DEPTH == 4
    ok = resolve("www.c1.test.", delegations=DelegationCache())
    assert addresses(ok) == ["192.0.2.80"]
    deep = resolve("www.e1.test.", delegations=DelegationCache())
    assert isinstance(deep.res.done, Failure)
    assert deep.res.done.reason == (
        "dependency depth limit 4: e1.test. -> ... -> e5.test. -> ns.e6.test."
    )
    assert all(name != "ns.e6.test." for _, name, _ in deep.asked)


def test_query_budget_bounds_a_referral_with_many_glueless_names() -> None:
    """70 NS names that do not exist (NXNSAttack's shape): the client question stops after
    MAX_QUERIES_PER_QUESTION queries with SERVFAIL, not 70+ lookups."""
    run = resolve("www.wide.test.", cache=Cache(CachePolicy()), delegations=DelegationCache())
    assert isinstance(run.res.done, Failure)
    assert "query budget exhausted" in run.res.done.reason
    assert len(run.sends) == MAX_QUERIES_PER_QUESTION == 64
    assert all(host == "127.0.2.6" for host, _, _ in run.asked[5:])
    # The first name goes root -> net. -> nx.net.; the next ones start at nx.net. (learned), and
    # each NXDOMAIN answers the name's AAAA too (RFC 2308 §5, from the cache): one query each.
    per_name = Counter(name for _, name, _ in run.asked[2:])
    assert sorted(per_name.values()) == [1] * (len(per_name) - 1) + [3]
    assert all(rdtype == "A" for _, _, rdtype in run.asked)


def test_cache_is_reused_for_ns_addresses_then_expires_with_their_ttl() -> None:
    cache = Cache(CachePolicy())
    first = resolve("www.glueless.test.", cache=cache)
    assert addresses(first) == ["192.0.2.80"]
    assert [a for a in first.asked if a[1] == "ns1.provider.net."]
    key = cache_key(dns.name.from_text("ns1.provider.net."), dns.rdatatype.A)
    hit = cache.get(key, first.now)
    assert hit is not None and hit.entry.ttl == 300  # the TTL of the answer
    # Same cache, no zone-cut memory: the referral comes again, the address from the cache.
    second = resolve("other.glueless.test.", cache=cache, now=first.now + 10)
    assert second.asked == [
        ("127.0.2.1", "other.glueless.test.", "A"),
        ("127.0.2.2", "other.glueless.test.", "A"),
        ("127.0.2.5", "other.glueless.test.", "A"),
    ]
    assert any("(cache, ttl 2" in line for line in second.res.log)
    # After the address's TTL, it is looked up again.
    third = resolve("www.glueless.test.", cache=cache, now=first.now + 301)
    assert ("127.0.2.4", "ns1.provider.net.", "A") in third.asked


def test_delegation_learned_through_a_sub_resolution_skips_it_next_time() -> None:
    cache, delegations = Cache(CachePolicy()), DelegationCache()
    first = resolve("www.glueless.test.", cache=cache, delegations=delegations)
    assert len(first.sends) == 6
    second = resolve("x.glueless.test.", cache=cache, delegations=delegations, now=1.0)
    assert second.asked == [("127.0.2.5", "x.glueless.test.", "A")]


def test_glueless_names_are_the_reserve_when_glued_servers_fail() -> None:
    """half.test. has glue for one NS (silent) and none for the other: the glued server is
    asked first; only when it times out is the other NS name looked up and asked."""
    run = resolve("www.half.test.", delegations=DelegationCache())
    assert addresses(run) == ["192.0.2.80"]
    assert run.asked[2] == ("127.0.2.9", "www.half.test.", "A")
    assert ("127.0.2.4", "ns1.provider.net.", "A") in run.asked[3:]
    assert run.asked[-1] == ("127.0.2.5", "www.half.test.", "A")


def test_delegation_cache_keeps_only_cuts_with_servers_and_is_bounded() -> None:
    cache = DelegationCache(max_entries=2)
    zone_a, zone_b, zone_c = (dns.name.from_text(z) for z in ("a.test.", "b.test.", "c.test."))
    cache.learn(Delegation(zone_a, (), 3600, (dns.name.from_text("ns.x."),)), 0.0)
    assert zone_a not in cache  # nothing to ask there yet: a dead end for the next resolution
    cache.learn(Delegation(zone_a, (LEAF,), 3600), 0.0)
    cache.learn(Delegation(zone_b, (LEAF,), 60), 0.0)
    cache.learn(Delegation(zone_c, (LEAF,), 3600), 0.0)
    assert len(cache) == 2 and zone_a not in cache  # oldest learned out first
    assert cache.closest(dns.name.from_text("www.b.test."), 59.0) is not None
    assert cache.closest(dns.name.from_text("www.b.test."), 60.0) is None  # expired
