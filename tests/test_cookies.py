"""DNS cookies, pure: SipHash-2-4 and RFC 9018's vectors, validity, and the COOKIE option on
the wire (RFC 7873 §5.2), checked against dnspython's parse."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authd.dns import cookies, rrl
from authd.dns.cookies import Status, make_server_cookie, read_query, server_cookie_age, siphash24
from authd.dns.guard import Guard

# SipHash-2-4 reference vectors (the paper's appendix, and vectors.h of the reference code):
# key 00..0f, message 00..(n-1)
SIPHASH_VECTORS = {
    0: "310e0edd47db6f72",
    1: "fd67dc93c539f874",
    8: "6224939a79f5f593",
    15: "e545be4961ca29a1",
    63: "724506eb4c328a95",
}


@pytest.mark.parametrize("n", sorted(SIPHASH_VECTORS))
def test_siphash24_reference_vectors(n):
    assert siphash24(bytes(range(16)), bytes(range(n))).hex() == SIPHASH_VECTORS[n]


# RFC 9018 Appendix A
SECRET_1 = bytes.fromhex("e5e973e5a6b2a43f48e7dc849e37bfcf")


def test_rfc9018_a1_learning_a_new_server_cookie():
    client = bytes.fromhex("2464c4abcf10c957")
    server = make_server_cookie(SECRET_1, client, "198.51.100.100", 1559731985)
    assert server.hex() == "010000005cf79f111f8130c3eee29480"
    assert server_cookie_age(SECRET_1, client, server, "198.51.100.100", 1559731985) == 0


def test_rfc9018_a2_a_renewed_server_cookie():
    client = bytes.fromhex("2464c4abcf10c957")
    server = make_server_cookie(SECRET_1, client, "198.51.100.100", 1559734385)
    assert server.hex() == "010000005cf7a871d4a564a1442aca77"


def test_rfc9018_a3_another_client_with_reserved_bits_set():
    client = bytes.fromhex("fc93fc62807ddb86")
    server = bytes.fromhex("01abcdef5cf78f71a314227b6679ebf5")
    assert server_cookie_age(SECRET_1, client, server, "203.0.113.203", 1559727985) == 0
    assert server_cookie_age(SECRET_1, client, bytes([10]) + server[1:], "203.0.113.203",
                             1559727985) is None  # version 10 is not ours


def test_rfc9018_a4_ipv6_with_a_rolled_over_secret():
    client = bytes.fromhex("22681ab97d52c298")
    ip = "2001:db8:220:1:59de:d0f4:8769:82b8"
    old = bytes.fromhex("dd3bdf9344b678b185a6f5cb60fca715")
    new = bytes.fromhex("445536bcd2513298075a5d379663c962")
    first = make_server_cookie(old, client, ip, 1559741817)
    assert first.hex() == "010000005cf7c57926556bd0934c72f8"
    assert server_cookie_age(old, client, first, ip, 1559741961) == 144
    assert make_server_cookie(new, client, ip, 1559741961).hex() == \
        "010000005cf7c609a6bb79d16625507a"
    assert server_cookie_age(new, client, first, ip, 1559741961) is None


def test_a_server_cookie_lives_one_hour_back_and_five_minutes_ahead():
    client = b"\x01" * 8
    sc = make_server_cookie(SECRET_1, client, "192.0.2.1", 1_000_000)
    assert server_cookie_age(SECRET_1, client, sc, "192.0.2.1", 1_000_000 + 3600) == 3600
    assert server_cookie_age(SECRET_1, client, sc, "192.0.2.1", 1_000_000 + 3601) is None
    assert server_cookie_age(SECRET_1, client, sc, "192.0.2.1", 1_000_000 - 300) == -300
    assert server_cookie_age(SECRET_1, client, sc, "192.0.2.1", 1_000_000 - 301) is None
    assert server_cookie_age(SECRET_1, client, sc, "192.0.2.2", 1_000_000) is None  # other IP
    # the timestamp wraps (RFC 1982 arithmetic): a cookie from just before 2^32 is fresh after
    wrapped = make_server_cookie(SECRET_1, client, "192.0.2.1", 2**32 - 10)
    assert server_cookie_age(SECRET_1, client, wrapped, "192.0.2.1", 2**32 + 5) == 15


def _query(cookie: bytes | None, *, qname: str = "host.example.test.", payload: int = 1232,
           extra: list | None = None) -> bytes:
    opts = list(extra or [])
    if cookie is not None:
        opts.append(dns.edns.GenericOption(cookies.COOKIE, cookie))
    q = dns.message.make_query(qname, "A", use_edns=0, payload=payload, options=opts)
    q.id = 777
    return q.to_wire()


WALL = 1_700_000_000
IP = "192.0.2.7"


def test_read_query_statuses_and_the_query_the_index_is_given():
    assert read_query(_query(None), SECRET_1, IP, WALL) is None
    client = bytes(range(8))
    q = read_query(_query(client, extra=[dns.edns.GenericOption(65001, b"xy")]),
                   SECRET_1, IP, WALL)
    assert q is not None and q.status is Status.CLIENT_ONLY and q.client == client
    stripped = dns.message.from_wire(q.stripped)
    assert [o.otype for o in stripped.options] == [65001]  # only the cookie went
    assert stripped.payload == 1232 - 28  # room for the response's cookie
    assert stripped.id == 777 and str(stripped.question[0].name) == "host.example.test."
    good = make_server_cookie(SECRET_1, client, IP, WALL - 10)
    assert read_query(_query(client + good), SECRET_1, IP, WALL).status is Status.VALID
    assert read_query(_query(client + good), SECRET_1, "192.0.2.8", WALL).status \
        is Status.BAD_SERVER
    assert read_query(_query(client + b"\x00" * 8), SECRET_1, IP, WALL).status \
        is Status.BAD_SERVER
    for bad in (b"", b"1234567", b"123456789", client + b"\x00" * 7, client + b"\x00" * 33):
        assert read_query(_query(bad), SECRET_1, IP, WALL).status is Status.MALFORMED, bad
    small = read_query(_query(client, payload=512), SECRET_1, IP, WALL)
    assert dns.message.from_wire(small.stripped).payload == 512  # never below 512


class _Index:
    """A stand-in responder: a fixed NOERROR answer with an OPT, as the real index renders."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def respond(self, wire: bytes, *, tcp: bool) -> bytes:
        self.seen.append(wire)
        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q)
        r.use_edns(0, 0, 1232)
        return r.to_wire()


def _cookie_of(reply: bytes) -> bytes:
    msg = dns.message.from_wire(reply)
    [opt] = [o for o in msg.options if o.otype == cookies.COOKIE]
    return opt.to_wire() if hasattr(opt, "to_wire") else opt.data  # type: ignore[attr-defined]


def test_guard_gives_a_fresh_server_cookie_and_keeps_a_valid_one():
    index = _Index()
    guard = Guard(index.respond, SECRET_1)
    client = bytes(range(8))
    reply = guard.answer(_query(client), IP, 0.0, WALL, tcp=False)
    cookie = _cookie_of(reply)
    assert cookie[:8] == client and len(cookie) == 24
    assert server_cookie_age(SECRET_1, client, cookie[8:], IP, WALL) == 0
    assert all(b"\x00\x0a\x00" not in w[-40:] for w in index.seen)  # the index saw no cookie
    # a valid cookie under half an hour old comes back as it is; an older one is renewed
    again = _cookie_of(guard.answer(_query(cookie), IP, 0.0, WALL + 60, tcp=False))
    assert again == cookie
    renewed = _cookie_of(guard.answer(_query(cookie), IP, 0.0, WALL + 1801, tcp=False))
    assert renewed[:8] == client and renewed != cookie
    assert guard.stats["cookie_valid"] == 2


def test_guard_answers_a_malformed_cookie_formerr_with_an_opt():
    guard = Guard(_Index().respond, SECRET_1)
    reply = dns.message.from_wire(guard.answer(_query(b"1234567"), IP, 0.0, WALL, tcp=False))
    assert reply.rcode() == dns.rcode.FORMERR and reply.edns == 0  # RFC 7873 §5.2.2
    assert reply.id == 777 and str(reply.question[0].name) == "host.example.test."


def test_guard_answers_a_cookie_only_query_noerror_or_badcookie():
    guard = Guard(_Index().respond, SECRET_1)
    client = bytes(range(8))

    def ask(value: bytes) -> dns.message.Message:
        q = dns.message.Message(id=99)
        q.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(cookies.COOKIE, value)])
        return dns.message.from_wire(guard.answer(q.to_wire(), IP, 0.0, WALL, tcp=False))

    first = ask(client)  # RFC 7873 §5.4: NOERROR with our cookie, nothing else
    assert first.rcode() == dns.rcode.NOERROR and not first.question and not first.answer
    cookie = _cookie_of(first.to_wire())
    assert ask(cookie).rcode() == dns.rcode.NOERROR
    bad = ask(client + b"\x01" * 16)
    assert bad.rcode() == dns.rcode.BADCOOKIE
    assert server_cookie_age(SECRET_1, client, _cookie_of(bad.to_wire())[8:], IP, WALL) == 0


def test_a_reply_that_no_longer_fits_with_its_cookie_is_truncated_with_the_cookie():
    class Big(_Index):
        def respond(self, wire: bytes, *, tcp: bool) -> bytes:
            return super().respond(wire, tcp=tcp)[:-11] + _padded_opt()

    def _padded_opt() -> bytes:  # an OPT whose padding (RFC 7830) fills 512 bytes nearly
        return b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00" + (4 + 440).to_bytes(2, "big") + \
            b"\x00\x0c" + (440).to_bytes(2, "big") + b"\x00" * 440

    guard = Guard(Big().respond, SECRET_1)
    client = bytes(range(8))
    reply = guard.answer(_query(client, payload=512), IP, 0.0, WALL, tcp=False)
    assert len(reply) <= 512
    msg = dns.message.from_wire(reply)
    assert msg.flags & dns.flags.TC and _cookie_of(reply)[:8] == client


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cookie=st.binary(max_size=48), flips=st.lists(st.tuples(st.integers(0, 200),
                                                                 st.integers(0, 255)),
                                                       max_size=4),
       cut=st.integers(0, 120))
def test_guard_never_raises_and_replies_parse(index, cookie, flips, cut):
    """Cookie queries of any length, with bytes flipped and cut short: the guard answers or
    drops, never raises, and what it sends is a DNS message dnspython can read."""
    guard = Guard(index.respond, SECRET_1, rrl.RateLimiter(rate=1000))
    wire = bytearray(_query(cookie))
    for at, value in flips:
        if at < len(wire):
            wire[at] = value
    wire = wire[:len(wire) - cut] if cut < len(wire) else wire
    for tcp in (False, True):
        reply = guard.answer(bytes(wire), IP, 0.0, WALL, tcp=tcp)
        if reply is not None:
            dns.message.from_wire(_as_query_opcode(reply), ignore_trailing=True)  # raises if not DNS


def _as_query_opcode(reply: bytes) -> bytes:
    """dnspython reads an UPDATE message (RFC 2136) as zone/prerequisite/update sections and
    refuses one whose zone section is not of type SOA, though the wire is well formed. A reply
    echoes the query's opcode, so a flipped opcode byte can make it UPDATE: read those with the
    opcode set to QUERY, which checks the same wire structure."""
    if len(reply) > 2 and (reply[2] >> 3) & 0xF == dns.opcode.UPDATE:
        return reply[:2] + bytes([reply[2] & 0x87]) + reply[3:]
    return reply


def test_guard_passes_the_client_address_to_an_index_that_routes_by_it():
    seen: list[str | None] = []

    def respond(wire: bytes, *, tcp: bool, source: str | None = None) -> bytes:
        seen.append(source)
        return _Index().respond(wire, tcp=tcp)

    guard = Guard(respond, SECRET_1)
    guard.answer(_query(None), IP, 0.0, WALL, tcp=False)
    guard.answer(_query(bytes(8)), IP, 0.0, WALL, tcp=True)
    assert seen == [IP, IP]


def test_a_remembered_cookie_still_expires_and_is_bound_to_its_address():
    memo: dict = {}
    client = bytes(range(8))
    sc = make_server_cookie(SECRET_1, client, IP, WALL)
    assert read_query(_query(client + sc), SECRET_1, IP, WALL, memo).status is Status.VALID
    assert memo  # remembered: the next one skips the hash
    assert read_query(_query(client + sc), SECRET_1, IP, WALL + 10, memo).age == 10
    assert read_query(_query(client + sc), SECRET_1, IP, WALL + 3601, memo).status \
        is Status.BAD_SERVER
    assert read_query(_query(client + sc), SECRET_1, "192.0.2.99", WALL, memo).status \
        is Status.BAD_SERVER


def test_a_response_with_a_cookie_is_never_answered(index):
    guard = Guard(index.respond, SECRET_1)
    for cookie in (bytes(8), b"123", bytes(24)):
        q = dns.message.make_query("host.example.test.", "A", use_edns=0,
                                   options=[dns.edns.GenericOption(cookies.COOKIE, cookie)])
        q.flags |= dns.flags.QR
        assert guard.answer(q.to_wire(), IP, 0.0, WALL, tcp=False) is None
        empty = dns.message.Message(id=5)
        empty.flags |= dns.flags.QR
        empty.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(cookies.COOKIE, cookie)])
        assert guard.answer(empty.to_wire(), IP, 0.0, WALL, tcp=False) is None


def test_rfc9018_a4_rollover_accepts_the_old_secret_and_renews_with_the_new():
    client = bytes.fromhex("22681ab97d52c298")
    ip = "2001:db8:220:1:59de:d0f4:8769:82b8"
    old = bytes.fromhex("dd3bdf9344b678b185a6f5cb60fca715")
    new = bytes.fromhex("445536bcd2513298075a5d379663c962")
    first = bytes.fromhex("010000005cf7c57926556bd0934c72f8")  # made with the old secret
    wire = _query(client + first)
    assert read_query(wire, new, ip, 1559741961).status is Status.BAD_SERVER
    q = read_query(wire, new, ip, 1559741961, previous=(old,))
    assert q.status is Status.VALID and q.renew
    guard = Guard(_Index().respond, new, previous=(old,))
    reply = guard.answer(wire, ip, 0.0, 1559741961, tcp=False)
    assert _cookie_of(reply).hex() == client.hex() + "010000005cf7c609a6bb79d16625507a"
