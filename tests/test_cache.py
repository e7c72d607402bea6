"""Cache policy: RFC 2308 negative caching, TTL countdown, bounds, serve-stale, RFC 9520."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import dns.edns
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.cache import (
    Cache,
    CachePolicy,
    Freshness,
    Kind,
    NotCacheable,
    cache_key,
    negative_ttl,
    prepare,
    render,
)
from resolver.wire import view_query

ZONE = dns.name.from_text("api.aws.")
NAME = dns.name.from_text("dynamodb.us-east-1.api.aws.")


def query(name: str | dns.name.Name = NAME, rdtype: str = "A", edns: bool = True) -> bytes:
    q = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    q.id = 4242
    return q.to_wire()


def answer(rdtype: str = "A", ttl: int = 60, addrs: tuple[str, ...] = ("192.0.2.1",)):
    q = dns.message.make_query(NAME, rdtype)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text_list(NAME, ttl, "IN", rdtype, list(addrs)))
    return r


def negative(
    rcode: int = dns.rcode.NOERROR,
    soa_ttl: int = 900,
    minimum: int = 60,
    rdtype: str = "A",
    name: dns.name.Name = NAME,
    with_soa: bool = True,
):
    q = dns.message.make_query(name, rdtype)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if with_soa:
        r.authority.append(
            dns.rrset.from_text(
                ZONE, soa_ttl, "IN", "SOA", f"ns1.api.aws. hostmaster.api.aws. 1 7200 900 1209600 {minimum}"
            )
        )
    return r


def served(cache: Cache, wire: bytes, now: float, **kw) -> dns.message.Message | None:
    view = view_query(wire)
    hit = cache.get(view.key, now)
    if hit is None or hit.freshness is not Freshness.FRESH:
        return None
    return dns.message.from_wire(render(hit.entry, view, now, **kw))


def test_positive_ttl_counts_down_and_expires() -> None:
    cache = Cache(CachePolicy())
    key = view_query(query()).key
    cache.put(key, answer(ttl=60), now=100.0)
    assert served(cache, query(), 100.0).answer[0].ttl == 60
    assert served(cache, query(), 125.5).answer[0].ttl == 34
    assert served(cache, query(), 159.9).answer[0].ttl == 0
    assert served(cache, query(), 160.0) is None


@pytest.mark.parametrize(("soa_ttl", "minimum", "expected"), [(900, 60, 60), (5, 60, 5), (7, 7, 7)])
def test_nodata_ttl_is_min_of_soa_ttl_and_minimum(soa_ttl: int, minimum: int, expected: int) -> None:
    cache = Cache(CachePolicy())
    key = view_query(query()).key
    entry = cache.put(key, negative(soa_ttl=soa_ttl, minimum=minimum), now=0.0)
    assert not isinstance(entry, NotCacheable)
    assert entry.kind is Kind.NODATA and entry.ttl == expected
    msg = served(cache, query(), 0.0)
    assert msg.rcode() == dns.rcode.NOERROR and msg.answer == []
    assert msg.authority[0].ttl == expected  # RFC 2308 §5: SOA carries the negative TTL
    assert served(cache, query(), expected - 0.001) is not None
    assert served(cache, query(), float(expected)) is None


def test_nodata_is_per_type_nxdomain_per_name() -> None:
    cache = Cache(CachePolicy())
    cache.put(view_query(query(rdtype="A")).key, negative(rdtype="A"), now=0.0)
    assert served(cache, query(rdtype="AAAA"), 1.0) is None  # NODATA for A says nothing of AAAA
    other = dns.name.from_text("nope.api.aws.")
    cache.put(view_query(query(other, "A")).key, negative(dns.rcode.NXDOMAIN, name=other), now=0.0)
    msg = served(cache, query(other, "TXT"), 1.0)
    assert msg is not None and msg.rcode() == dns.rcode.NXDOMAIN
    assert msg.question[0].rdtype == dns.rdatatype.TXT  # answer echoes the asked question


def test_negative_without_soa_is_not_cached() -> None:
    cache = Cache(CachePolicy())
    result = cache.put(view_query(query()).key, negative(with_soa=False), now=0.0)
    assert isinstance(result, NotCacheable) and "SOA" in result.reason
    assert len(cache) == 0


def test_max_negative_ttl_caps() -> None:
    cache = Cache(CachePolicy(max_negative_ttl=10))
    entry = cache.put(view_query(query()).key, negative(soa_ttl=900, minimum=300), now=0.0)
    assert entry.ttl == 10


def test_min_and_max_ttl_clamp_positive() -> None:
    policy = CachePolicy(min_ttl=30, max_ttl=100)
    assert prepare(answer(ttl=5), policy, 0.0).ttl == 30
    assert prepare(answer(ttl=5000), policy, 0.0).ttl == 100
    # The served TTL never promises more than the entry lives.
    cache = Cache(policy)
    cache.put(view_query(query()).key, answer(ttl=5000), now=0.0)
    assert served(cache, query(), 0.0).answer[0].ttl == 100


def test_servfail_and_truncated_are_not_cached() -> None:
    r = answer()
    r.set_rcode(dns.rcode.SERVFAIL)
    assert isinstance(prepare(r, CachePolicy(), 0.0), NotCacheable)
    r = answer()
    r.flags |= dns.flags.TC
    assert isinstance(prepare(r, CachePolicy(), 0.0), NotCacheable)


def test_query_id_case_and_rd_are_patched() -> None:
    cache = Cache(CachePolicy())
    cache.put(view_query(query()).key, answer(), now=0.0)
    q = dns.message.make_query("DynamoDB.US-east-1.api.AWS.", "A")
    q.id = 777
    msg = served(cache, q.to_wire(), 1.0)
    assert msg.id == 777
    assert str(msg.question[0].name) == "DynamoDB.US-east-1.api.AWS."
    assert msg.flags & dns.flags.RD and msg.flags & dns.flags.RA and msg.flags & dns.flags.QR
    assert not msg.flags & dns.flags.AA  # a cache is never authoritative


def test_no_edns_query_gets_no_opt_and_truncation_when_too_big() -> None:
    cache = Cache(CachePolicy())
    big = answer(addrs=tuple(f"192.0.2.{i}" for i in range(1, 60)))
    cache.put(view_query(query()).key, big, now=0.0)
    view = view_query(query(edns=False))
    hit = cache.get(view.key, 0.0)
    out = dns.message.from_wire(render(hit.entry, view, 0.0, max_size=512))
    assert out.flags & dns.flags.TC and out.answer == [] and out.edns < 0
    full = dns.message.from_wire(render(hit.entry, view, 0.0))
    assert len(full.answer[0]) == 59


def test_serve_stale_only_when_enabled_and_within_max_stale() -> None:
    off = Cache(CachePolicy())
    on = Cache(CachePolicy(serve_stale=True, max_stale=100))
    key = view_query(query()).key
    for c in (off, on):
        c.put(key, answer(ttl=10), now=0.0)
    assert off.get(key, 11.0) is None
    hit = on.get(key, 11.0)
    assert hit is not None and hit.freshness is Freshness.STALE
    msg = dns.message.from_wire(render(hit.entry, view_query(query()), 11.0, stale_ttl=30))
    assert msg.answer[0].ttl == 30
    ede = [o for o in msg.options if o.otype == dns.edns.EDE]
    assert ede and ede[0].code == 3  # RFC 8914 §4.4 Stale Answer
    assert on.get(key, 110.0) is None  # past max stale: gone


def test_failure_memory_backs_off_and_is_bounded() -> None:
    cache = Cache(CachePolicy(failure_ttl=1.0, max_failure_ttl=4.0, max_failures=3))
    key = view_query(query()).key
    assert cache.note_failure(key, 0.0) == 1.0
    assert cache.get_failure(key, 0.5) is not None
    assert cache.get_failure(key, 1.0) is None
    assert cache.note_failure(key, 1.0) == 2.0
    assert cache.note_failure(key, 3.0) == 4.0
    assert cache.note_failure(key, 7.0) == 4.0  # capped (RFC 9520 §3.2: at most 5 minutes)
    cache.put(key, answer(), now=8.0)
    assert cache.get_failure(key, 8.0) is None  # success clears it
    for i in range(10):
        cache.note_failure(cache_key(dns.name.from_text(f"x{i}.test."), 1), 0.0)
    assert len(cache.failures) == 3


def test_random_name_flood_stays_bounded() -> None:
    cache = Cache(CachePolicy(max_entries=50, max_bytes=20_000))
    for i in range(2000):
        name = dns.name.from_text(f"r{i}.api.aws.")
        cache.put(cache_key(name, 1), negative(dns.rcode.NXDOMAIN, name=name), now=float(i))
        assert len(cache.entries) <= 50 and cache.bytes_used <= 20_000
    assert cache.stats.evictions > 0
    # LRU: the newest name survived, the oldest did not.
    assert cache.get(cache_key(dns.name.from_text("r1999.api.aws."), 1), 1999.0) is not None
    assert cache.get(cache_key(dns.name.from_text("r0.api.aws."), 1), 1999.0) is None


def test_cname_chain_ttl_is_min_over_chain() -> None:
    q = dns.message.make_query("www.example.test.", "A")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("www.example.test.", 20, "IN", "CNAME", "host.example.test."))
    r.answer.append(dns.rrset.from_text("host.example.test.", 300, "IN", "A", "192.0.2.80"))
    r.answer.append(dns.rrset.from_text("evil.test.", 300, "IN", "A", "6.6.6.6"))  # off-chain
    entry = prepare(r, CachePolicy(), 0.0)
    assert entry.ttl == 20
    out = dns.message.from_wire(entry.wire)
    assert [str(x.name) for x in out.answer] == ["www.example.test.", "host.example.test."]


def test_cache_module_is_pure() -> None:
    for mod in ("cache.py", "wire.py", "resolution.py"):
        path = Path(__file__).parent.parent / "resolver" / mod
        if not path.exists():
            continue
        tree = ast.parse(path.read_text())
        names = {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])
        }
        assert not names & {"trio", "socket", "time", "asyncio"}, (mod, names)


# ---- properties -------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(
    soa_ttl=st.integers(0, 2**32 - 1),
    minimum=st.integers(0, 2**32 - 1),
    cap=st.integers(0, 100_000),
    now=st.floats(0, 1e9, allow_nan=False),
)
def test_negative_ttl_property(soa_ttl: int, minimum: int, cap: int, now: float) -> None:
    policy = CachePolicy(max_negative_ttl=cap)
    r = negative(soa_ttl=soa_ttl, minimum=minimum)
    result = prepare(r, policy, now)
    expected = min(negative_ttl(r.authority[0]), cap)
    if expected == 0:
        assert isinstance(result, NotCacheable)
    else:
        assert result.ttl == expected <= cap
        assert result.ttl <= min(soa_ttl, minimum)


@settings(max_examples=200, deadline=None)
@given(
    ttl=st.integers(1, 10_000),
    steps=st.lists(st.floats(0, 500, allow_nan=False), min_size=1, max_size=20),
)
def test_served_ttl_never_grows_and_never_outlives_entry(ttl: int, steps: list[float]) -> None:
    cache = Cache(CachePolicy())
    key = view_query(query()).key
    cache.put(key, answer(ttl=ttl), now=0.0)
    now, last = 0.0, ttl
    for dt in steps:
        now += dt
        msg = served(cache, query(), now)
        if now >= ttl:
            assert msg is None
        else:
            got = msg.answer[0].ttl
            assert got <= last and got == int(ttl - now)
            last = got


@settings(max_examples=100, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.integers(0, 200), st.integers(1, 3000), st.integers(1, 40)), max_size=300
    ),
    max_entries=st.integers(1, 40),
    max_bytes=st.integers(400, 20_000),
)
def test_bounds_hold_under_any_sequence(ops, max_entries: int, max_bytes: int) -> None:
    cache = Cache(CachePolicy(max_entries=max_entries, max_bytes=max_bytes))
    now = 0.0
    for name_i, ttl, n_addrs in ops:
        now += 0.5
        name = dns.name.from_text(f"n{name_i}.api.aws.")
        q = dns.message.make_query(name, "A")
        r = dns.message.make_response(q)
        r.answer.append(
            dns.rrset.from_text_list(name, ttl, "IN", "A", [f"10.0.0.{i}" for i in range(n_addrs)])
        )
        cache.put(cache_key(name, 1), r, now)
        assert len(cache.entries) <= max_entries
        assert cache.bytes_used <= max_bytes or len(cache.entries) == 1
    # Byte accounting is exact: every entry is counted once.
    assert cache.bytes_used == sum(e.size for e in cache.entries.values())


def test_ttl_msb_set_is_zero() -> None:
    r = answer(ttl=60)
    r.answer[0].ttl = 2**31 + 5
    assert isinstance(prepare(r, CachePolicy(), 0.0), NotCacheable)  # RFC 2181 §8


def test_wire_offsets_cover_every_ttl() -> None:
    entry = prepare(negative(), CachePolicy(), 0.0)
    (off,) = entry.offsets
    assert struct.unpack_from("!I", entry.wire, off)[0] == entry.ttl
