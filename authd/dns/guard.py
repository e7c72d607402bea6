"""The responder in front of the serving index: DNS cookies on every query, RRL on UDP.

Pure core: the shells in `authd.dns.server` pass the packet, the client address, the monotonic
`now` (for RRL) and the wall-clock second (for cookie timestamps); nothing here reads a clock
or a socket. The serving index never sees a COOKIE option: it is taken out of the query (so the
index's tables of rendered answers stay shared by every client) and the response's COOKIE is
put into the rendered reply here.

Order, per query (RFC 7873 §5.2 for the cookie cases):
1. A malformed COOKIE option (§5.2.2) gets FORMERR with an OPT (over UDP, rate-limited as
   an error), and nothing else happens.
2. A query with no question and a COOKIE (§5.4) gets NOERROR (BADCOOKIE if it sent a server
   cookie that is not valid) with our server cookie and no answer; over UDP it is rate-limited
   like any response (its class is ERROR), unless its server cookie is valid.
3. Otherwise the index answers the query without its COOKIE; the response gets the client
   cookie and a server cookie (§5.2.3 to §5.2.5).
4. Over UDP, unless the client presented a valid server cookie (which proves it receives at its
   address: BIND does the same), RRL decides: send, drop, or slip. A slipped response is
   TC=1 with the question only, or, to a client that sent a cookie, BADCOOKIE with a fresh
   server cookie (as BIND's slip does), so it retries with the cookie and is exempt.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from authd.dns import cookies
from authd.dns.answer import OUR_PAYLOAD
from authd.dns.cookies import Status
from authd.dns.rrl import RateLimiter, RClass, Verdict, truncated

BADCOOKIE = 23  # RFC 7873 §8
FORMERR = 1
_OPT_HEAD = b"\x00\x00\x29"

Respond = Callable[..., "bytes | None"]


def _opt(ext_rcode: int, flags: int, options: bytes = b"") -> bytes:
    """An OPT RR (RFC 6891 §6.1.2): root owner, our payload, extended rcode, version 0."""
    return (_OPT_HEAD + OUR_PAYLOAD.to_bytes(2, "big") + bytes([ext_rcode, 0])
            + flags.to_bytes(2, "big") + len(options).to_bytes(2, "big") + options)


def _bare_reply(query: bytes, rcode: int, options: bytes = b"") -> bytes:
    """A reply made from the query alone: its question (if it can be read), no records, and an
    OPT carrying the upper rcode bits, the DO bit echoed (RFC 3225 §3) and the options."""
    try:
        qend = cookies.question_end(query)
        question, qd = query[12:qend], query[4:6]
    except IndexError:
        question, qd = b"", b"\x00\x00"
    opt = cookies.find_opt(query)
    do = (query[opt.start + 7] & 0x80) << 8 if opt is not None else 0
    # QR=1, opcode and RD copied (RFC 1035 §4.1.1), then the low four rcode bits
    flags = bytes([0x80 | (query[2] & 0x79), rcode & 0x0F])
    return (query[:2] + flags + qd + b"\x00\x00\x00\x00\x00\x01" + question
            + _opt(rcode >> 4, do, options))


@dataclass
class Guard:
    """Answers one query through the index with cookies and (over UDP) rate limiting.

    Args:
        respond: the serving index's `respond(wire, tcp=...)`.
        secret: the 16-byte server secret for cookies.
        previous: retired secrets whose cookies are still accepted (and renewed).
        rrl: the rate limiter, or None for no limiting.
    """

    respond: Respond
    secret: bytes
    rrl: RateLimiter | None = None
    on_limit: Callable[[str, RClass], None] | None = None  # a source starts being limited
    previous: tuple[bytes, ...] = ()  # retired cookie secrets still accepted (RFC 9018 §4.4)
    stats: dict[str, int] = field(default_factory=lambda: {
        "cookie_malformed": 0, "cookie_valid": 0, "cookie_fresh": 0, "badcookie": 0,
    })

    def __post_init__(self) -> None:
        if any(len(k) != 16 for k in (self.secret, *self.previous)):
            raise ValueError("a cookie secret must be 16 bytes (32 hex digits)")
        self._valid: dict[tuple[str, bytes], bool] = {}  # cookies whose hash matched
        self._fresh: dict[tuple[str, bytes, int], bytes] = {}  # cookies made this second
        # an index that routes by client location takes the address as `source=`
        try:
            self._with_source = "source" in inspect.signature(self.respond).parameters
        except (TypeError, ValueError):
            self._with_source = False

    def _respond(self, wire: bytes, tcp: bool, ip: str) -> bytes | None:
        if self._with_source:
            return self.respond(wire, tcp=tcp, source=ip)
        return self.respond(wire, tcp=tcp)

    def answer(self, wire: bytes, ip: str, now: float, wall: int, *, tcp: bool) -> bytes | None:
        """The bytes to send back for one query, or None to send nothing."""
        # a response (QR=1) is never answered (RFC 1035 §4.1.1; the index drops it), so its
        # cookie is never looked at: no FORMERR or BADCOOKIE ping-pong between two servers
        q = (cookies.read_query(wire, self.secret, ip, wall, self._valid, self.previous)
             if len(wire) > 12 and not wire[2] & 0x80 else None)
        if q is None:
            reply = self._respond(wire, tcp, ip)
            if reply is None or tcp or self.rrl is None:
                return reply
            return self.limit_udp(reply, ip, now)
        if q.status is Status.MALFORMED:
            self.stats["cookie_malformed"] += 1
            formerr = _bare_reply(wire, FORMERR)  # RFC 7873 §5.2.2
            if tcp or self.rrl is None:
                return formerr
            return self.limit_udp(formerr, ip, now)  # an error like any other (class ERROR)
        if q.status is Status.VALID:
            self.stats["cookie_valid"] += 1
        else:
            self.stats["cookie_fresh"] += 1
        # RRL before the server cookie is made: a dropped response costs no SipHash
        limited = not tcp and self.rrl is not None and q.status is not Status.VALID
        if wire[4:6] == b"\x00\x00" and not wire[2] & 0x78:
            # RFC 7873 §5.4: a (standard) query for a server cookie only
            rcode = BADCOOKIE if q.status is Status.BAD_SERVER else 0
            if limited and self._limit(_bare_reply(wire, rcode), ip, now) is Verdict.DROP:
                return None
            self.stats["badcookie"] += rcode == BADCOOKIE
            return _bare_reply(wire, rcode, self._cookie_option(self._cookie(q, ip, wall)))
        reply = self._respond(q.stripped, tcp, ip)
        if reply is None:
            return None
        if limited:
            verdict = self._limit(reply, ip, now)
            if verdict is Verdict.DROP:
                return None
            if verdict is Verdict.SLIP:
                self.stats["badcookie"] += 1
                return _bare_reply(wire, BADCOOKIE,
                                   self._cookie_option(self._cookie(q, ip, wall)))
        option = self._cookie(q, ip, wall)
        with_cookie = cookies.add_option(reply, cookies.COOKIE, option)
        if with_cookie is None:
            return reply  # no OPT in the reply (e.g. FORMERR from the full parser)
        # RFC 6891 §6.2.5: the client's payload size, at least 512; we never exceed ours
        if not tcp and len(with_cookie) > min(OUR_PAYLOAD, max(512, q.payload)):
            return _tc_with(reply, option)
        return with_cookie

    def _cookie(self, q: cookies.QueryCookie, ip: str, wall: int) -> bytes:
        """The response's COOKIE value; a fresh one is made once per client, address and
        second (a client repeating itself within the second costs no SipHash)."""
        if (q.status is Status.VALID and not q.renew and q.age is not None
                and q.age < cookies.REFRESH_AFTER):
            return q.client + q.server
        key = (ip, q.client, wall)
        value = self._fresh.get(key)
        if value is None:
            if len(self._fresh) >= cookies.MEMO:
                self._fresh.clear()
            value = self._fresh[key] = cookies.response_cookie(self.secret, q, ip, wall)
        return value

    def limit_udp(self, reply: bytes, ip: str, now: float) -> bytes | None:
        """RRL for a UDP response to a query without a cookie: it, a TC=1 slip, or None."""
        verdict = self._limit(reply, ip, now)
        if verdict is Verdict.SEND:
            return reply
        return truncated(reply) if verdict is Verdict.SLIP else None

    def _limit(self, reply: bytes, ip: str, now: float) -> Verdict:
        decision = self.rrl.check(reply, ip, now)  # type: ignore[union-attr]
        if decision.started and self.on_limit is not None:
            self.on_limit(ip, decision.rclass)
        return decision.verdict

    @staticmethod
    def _cookie_option(value: bytes) -> bytes:
        return cookies.COOKIE.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value


def _tc_with(reply: bytes, option: bytes) -> bytes:
    """A reply that did not fit with its cookie: TC=1, the question, an OPT with the cookie."""
    tc = truncated(reply)
    opt = _opt(0, 0, Guard._cookie_option(option))
    return tc[:10] + b"\x00\x01" + tc[12:] + opt
