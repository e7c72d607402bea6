"""Response-rate limiting, pure: classes and bucket names from real index replies, the token
bucket over injected time, slip, networks, and the guard's cookie exemption."""

from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from authd.dns import cookies, rrl
from authd.dns.answer import make_query_wire
from authd.dns.guard import Guard
from authd.dns.rrl import RateLimiter, RClass, RrlConfig, Verdict, classify, network_of, truncated

SECRET = bytes(range(16))


def _reply(index, qname: str, qtype: str = "A") -> bytes:
    return index.respond(make_query_wire(qname, qtype), tcp=False)


def test_classify_answer_nxdomain_nodata_referral_error(index):
    cls, name = classify(_reply(index, "Host.Example.Test."))
    assert cls is RClass.ANSWER and name == b"\x04host\x07example\x04test\x00\x00\x01"
    cls, nx1 = classify(_reply(index, "nope-1.example.test."))
    _, nx2 = classify(_reply(index, "nope-2.example.test."))
    # a random-subdomain flood is one bucket: NXDOMAIN is keyed by the zone (the SOA owner)
    assert cls is RClass.NXDOMAIN and nx1 == nx2 == b"\x07example\x04test\x00"
    assert classify(_reply(index, "mail.example.test.", "AAAA")) == \
        (RClass.NODATA, b"\x07example\x04test\x00")
    # a referral is keyed by the delegation point (the NS owner in authority, AA=0)
    assert classify(_reply(index, "www.sub.example.test.")) == \
        (RClass.REFERRAL, b"\x03sub\x07example\x04test\x00")
    assert classify(_reply(index, "example.invalid.")) == (RClass.ERROR, b"")  # REFUSED


def test_token_bucket_limits_past_the_rate_and_forgives_after_the_window(index):
    limiter = RateLimiter(rate=5, slip=2, window=2)
    reply = _reply(index, "host.example.test.")
    verdicts = [limiter.check(reply, "192.0.2.1", 0.0).verdict for _ in range(11)]
    # one second's burst (5) goes out; then every 2nd limited response slips
    assert verdicts[:5] == [Verdict.SEND] * 5
    assert verdicts[5:] == [Verdict.DROP, Verdict.SLIP] * 3
    # one second later five more credits arrive, but the debt (6) comes first
    assert limiter.check(reply, "192.0.2.1", 1.0).verdict is not Verdict.SEND
    # a source that stops is forgiven: the debt is at most rate * window (10), paid in 2 s,
    # and the bucket refills to one second's burst
    assert limiter.check(reply, "192.0.2.1", 4.0).verdict is Verdict.SEND


def test_one_bucket_per_network_and_class(index):
    limiter = RateLimiter(rate=1, slip=0, window=1)
    answer = _reply(index, "host.example.test.")
    nx = _reply(index, "nope.example.test.")
    assert limiter.check(answer, "192.0.2.1", 0.0).verdict is Verdict.SEND
    assert limiter.check(answer, "192.0.2.200", 0.0).verdict is Verdict.DROP  # same /24
    assert limiter.check(answer, "192.0.3.1", 0.0).verdict is Verdict.SEND  # another /24
    assert limiter.check(nx, "192.0.2.1", 0.0).verdict is Verdict.SEND  # another class
    assert network_of("2001:db8:1:ff00::1") == network_of("2001:db8:1:ff12::9")  # /56
    assert network_of("2001:db8:1:ff00::1") != network_of("2001:db8:1:fe00::1")
    assert network_of("192.0.2.1", v4_prefix=32) != network_of("192.0.2.2", v4_prefix=32)
    # a dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d: still one /24 each
    assert network_of("::ffff:192.0.2.1") == network_of("192.0.2.77")
    assert network_of("::ffff:192.0.2.1") != network_of("::ffff:198.51.100.1")


def test_slip_1_slips_every_limited_response_and_0_drops_them(index):
    reply = _reply(index, "host.example.test.")
    one = RateLimiter(rate=1, slip=1, window=1)
    zero = RateLimiter(rate=1, slip=0, window=1)
    assert [one.check(reply, "10.0.0.1", 0.0).verdict for _ in range(3)][1:] == [Verdict.SLIP] * 2
    assert [zero.check(reply, "10.0.0.1", 0.0).verdict for _ in range(3)][1:] == [Verdict.DROP] * 2


def test_the_table_is_bounded(index):
    limiter = RateLimiter(rate=1, slip=0, window=1, table_limit=10)
    reply = _reply(index, "host.example.test.")
    for i in range(50):
        limiter.check(reply, f"10.{i}.0.1", 0.0)
    assert len(limiter.buckets) == 10


def test_the_truncated_slip_is_the_header_and_question_only(index):
    reply = _reply(index, "host.example.test.")
    tc = dns.message.from_wire(truncated(reply))
    assert tc.flags & dns.flags.TC and tc.flags & dns.flags.QR
    assert not tc.answer and not tc.authority and not tc.additional and tc.edns < 0
    assert str(tc.question[0].name) == "host.example.test."
    assert len(truncated(reply)) < len(make_query_wire("host.example.test.", "A", edns=True))


def test_rrl_modes_and_bad_settings():
    assert not RrlConfig().enabled_for("127.0.0.1") and not RrlConfig().enabled_for("::1")
    assert RrlConfig().enabled_for("0.0.0.0") and RrlConfig().enabled_for("192.0.2.1")
    assert RrlConfig("on").enabled_for("127.0.0.1")
    assert not RrlConfig("off").enabled_for("192.0.2.1")
    for bad in ({"mode": "maybe"}, {"rate": 0}, {"slip": -1}, {"window": 0.5},
                {"v4_prefix": 33}):
        with pytest.raises(ValueError):
            RrlConfig(**bad)


def _cookie_query(value: bytes | None) -> bytes:
    opts = [dns.edns.GenericOption(cookies.COOKIE, value)] if value is not None else []
    return dns.message.make_query("host.example.test.", "A", use_edns=0, options=opts).to_wire()


def test_a_valid_server_cookie_exempts_a_client_and_a_cookie_client_slips_badcookie(index):
    guard = Guard(index.respond, SECRET, RateLimiter(rate=2, slip=2, window=5))
    ip, wall = "198.51.100.9", 1_700_000_000
    client = b"c" * 8
    # learn a server cookie, then flood with it: every answer is a full one
    first = dns.message.from_wire(guard.answer(_cookie_query(client), ip, 0.0, wall, tcp=False))
    cookie = next(o for o in first.options if o.otype == cookies.COOKIE).to_wire()
    for _ in range(50):
        reply = dns.message.from_wire(guard.answer(_cookie_query(cookie), ip, 0.0, wall,
                                                   tcp=False))
        assert reply.answer and not reply.flags & dns.flags.TC
    # the same network without a cookie is limited (TC=1 slips), and with a client cookie only
    # its slips are BADCOOKIE carrying a fresh server cookie (RFC 7873 §5.2.3)
    plain = [guard.answer(_cookie_query(None), ip, 0.0, wall, tcp=False) for _ in range(10)]
    assert plain.count(None) >= 4
    slips = [dns.message.from_wire(p) for p in plain if p is not None]
    assert any(m.flags & dns.flags.TC and not m.answer for m in slips)
    only = [guard.answer(_cookie_query(client), ip, 0.0, wall, tcp=False) for _ in range(10)]
    bad = [dns.message.from_wire(p) for p in only if p is not None]
    assert any(m.rcode() == dns.rcode.BADCOOKIE for m in bad)
    # over TCP nothing is limited
    assert all(guard.answer(_cookie_query(None), ip, 0.0, wall, tcp=True) for _ in range(10))


def test_pure_modules_import_no_clock_socket_or_trio():
    import authd.dns.cookies
    import authd.dns.guard
    import authd.errlog

    for mod in (rrl, authd.dns.cookies, authd.dns.guard, authd.errlog):
        text = Path(mod.__file__).read_text()
        for banned in ("import trio", "import socket", "import time", "from time"):
            assert banned not in text, (mod.__name__, banned)


def test_counts_of_sent_slipped_and_dropped(index):
    limiter = RateLimiter(rate=2, slip=2, window=1)
    reply = _reply(index, "host.example.test.")
    for _ in range(8):
        limiter.check(reply, "10.1.1.1", 0.0)
    assert limiter.sent == 2 and limiter.counts == {Verdict.SLIP: 3, Verdict.DROP: 3}


def test_formerr_for_a_malformed_cookie_is_rate_limited_over_udp(index):
    guard = Guard(index.respond, SECRET, RateLimiter(rate=2, slip=0, window=1))
    bad = _cookie_query(b"123")
    replies = [guard.answer(bad, "203.0.113.5", 0.0, 1_700_000_000, tcp=False) for _ in range(6)]
    assert [r is not None for r in replies] == [True, True] + [False] * 4
    assert dns.message.from_wire(replies[0]).rcode() == dns.rcode.FORMERR
    assert guard.answer(bad, "203.0.113.5", 0.0, 1_700_000_000, tcp=True) is not None
