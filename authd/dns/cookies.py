"""DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018): make, check, and the wire.

Pure core: no sockets, no clock (the caller passes the wall-clock second), no randomness (the
caller passes the secret). The responder in `authd.dns.guard` uses it to take the COOKIE option out
of a query before the serving index sees it, and to put one into the response.

A server cookie (RFC 9018 §4) is 16 bytes: version 1, three reserved bytes, a 32-bit timestamp
(seconds, serial-number arithmetic), and an 8-byte SipHash-2-4 (keyed with the 16-byte server
secret) over client cookie | version | reserved | timestamp | client IP (4 or 16 bytes). It is
valid (RFC 9018 §4.3) if the hash matches and the timestamp is at most one hour old and at most
five minutes in the future; one older than half an hour is replaced by a fresh one.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from typing import NamedTuple

COOKIE = 10  # the EDNS option code, RFC 7873 §4
CLIENT_LEN = 8
SERVER_MIN, SERVER_MAX = 8, 32  # RFC 7873 §4: a server cookie is 8 to 32 bytes
VERSION = 1  # RFC 9018 §4.2
LIFETIME_PAST = 3600  # RFC 9018 §4.3: older is invalid
LIFETIME_FUTURE = 300  # RFC 9018 §4.3: more than 5 minutes ahead is invalid
REFRESH_AFTER = 1800  # RFC 9018 §4.3: older gets a fresh one (NSD reuses younger ones too)

_MASK = (1 << 64) - 1


def siphash24(key: bytes, data: bytes) -> bytes:
    """SipHash-2-4 (Aumasson and Bernstein, 2012) of data under a 16-byte key: 8 bytes, LE.

    The rounds are written out with local variables: in pure Python a call per round or per
    rotation costs more than the arithmetic.
    """
    if len(key) != 16:
        raise ValueError("SipHash needs a 16-byte key")
    k0, k1 = struct.unpack("<QQ", key)
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    n = len(data)
    whole = n - n % 8
    words = [m for (m,) in struct.iter_unpack("<Q", data[:whole])]
    words.append(int.from_bytes(data[whole:], "little") | ((n & 0xFF) << 56))
    mask = _MASK
    for m in words:
        v3 ^= m
        for _ in range(2):  # SipRound, twice per word (the "2" of 2-4)
            v0 = (v0 + v1) & mask
            v1 = ((v1 << 13) | (v1 >> 51)) & mask ^ v0
            v0 = ((v0 << 32) | (v0 >> 32)) & mask
            v2 = (v2 + v3) & mask
            v3 = ((v3 << 16) | (v3 >> 48)) & mask ^ v2
            v0 = (v0 + v3) & mask
            v3 = ((v3 << 21) | (v3 >> 43)) & mask ^ v0
            v2 = (v2 + v1) & mask
            v1 = ((v1 << 17) | (v1 >> 47)) & mask ^ v2
            v2 = ((v2 << 32) | (v2 >> 32)) & mask
        v0 ^= m
    v2 ^= 0xFF
    for _ in range(4):  # four finalisation rounds (the "4")
        v0 = (v0 + v1) & mask
        v1 = ((v1 << 13) | (v1 >> 51)) & mask ^ v0
        v0 = ((v0 << 32) | (v0 >> 32)) & mask
        v2 = (v2 + v3) & mask
        v3 = ((v3 << 16) | (v3 >> 48)) & mask ^ v2
        v0 = (v0 + v3) & mask
        v3 = ((v3 << 21) | (v3 >> 43)) & mask ^ v0
        v2 = (v2 + v1) & mask
        v1 = ((v1 << 17) | (v1 >> 47)) & mask ^ v2
        v2 = ((v2 << 32) | (v2 >> 32)) & mask
    return (v0 ^ v1 ^ v2 ^ v3).to_bytes(8, "little")


def _ip_bytes(ip: str) -> bytes:
    return ipaddress.ip_address(ip.split("%", 1)[0]).packed


def make_server_cookie(secret: bytes, client: bytes, ip: str, wall: int,
                       reserved: bytes = b"\x00\x00\x00") -> bytes:
    """The RFC 9018 §4.2 server cookie for this client cookie, client address and second."""
    head = bytes([VERSION]) + reserved + (wall & 0xFFFFFFFF).to_bytes(4, "big")
    return head + siphash24(secret, client + head + _ip_bytes(ip))


def _age(server: bytes, wall: int) -> int:
    """Seconds since a server cookie's timestamp (RFC 1982 serial-number arithmetic)."""
    age = (wall - int.from_bytes(server[4:8], "big")) & 0xFFFFFFFF
    return age - (1 << 32) if age >= 1 << 31 else age


def server_cookie_age(secret: bytes, client: bytes, server: bytes, ip: str,
                      wall: int) -> int | None:
    """The age in seconds of a valid server cookie (negative: from the future), else None."""
    if len(server) != 16 or server[0] != VERSION:
        return None
    age = _age(server, wall)
    if not -LIFETIME_FUTURE <= age <= LIFETIME_PAST:
        return None
    if siphash24(secret, client + server[:8] + _ip_bytes(ip)) != server[8:]:
        return None
    return age


# --- the wire ---------------------------------------------------------------------------------


class Status(enum.Enum):
    """What the query's COOKIE option says (RFC 7873 §5.2)."""

    NONE = "none"  # §5.2.1: no COOKIE option
    MALFORMED = "malformed"  # §5.2.2: wrong length, or more than one COOKIE option
    CLIENT_ONLY = "client only"  # §5.2.3
    BAD_SERVER = "bad server cookie"  # §5.2.4: not ours, expired, or from another address
    VALID = "valid"  # §5.2.5


class Opt(NamedTuple):
    """Where a message's single OPT record lies: its RR start, rdata start and end."""

    start: int
    rdata: int
    end: int


def _skip_name(wire: bytes, i: int) -> int:
    """The offset just past the (possibly compressed) name at i; IndexError when truncated."""
    while True:
        b = wire[i]
        if b == 0:
            return i + 1
        if b & 0xC0 == 0xC0:
            wire[i + 1]  # noqa: B018 (the second pointer byte must be there)
            return i + 2
        if b & 0xC0:
            raise IndexError("reserved label type")
        i += b + 1


def question_end(wire: bytes) -> int:
    """The offset just past the question section (12 when QDCOUNT is 0); IndexError if short."""
    i = 12
    for _ in range(wire[4] << 8 | wire[5]):
        i = _skip_name(wire, i) + 4
    if i > len(wire):
        raise IndexError("question runs past the end")
    return i


def find_opt(wire: bytes) -> Opt | None:
    """The message's one OPT record, or None: no OPT, two OPTs, or a message we cannot walk
    (those are left to the full parser, which answers FORMERR)."""
    try:
        i = question_end(wire)
        rrs = (wire[6] << 8 | wire[7]) + (wire[8] << 8 | wire[9])
        extra = wire[10] << 8 | wire[11]
        found: Opt | None = None
        for n in range(rrs + extra):
            start = i
            i = _skip_name(wire, i)
            rtype = wire[i] << 8 | wire[i + 1]
            rdlen = wire[i + 8] << 8 | wire[i + 9]
            rdata = i + 10
            i = rdata + rdlen
            if i > len(wire):
                return None
            if rtype == 41:
                if n < rrs or found is not None:  # RFC 6891 §6.1.1: one, in additional
                    return None
                found = Opt(start, rdata, i)
        return found if i == len(wire) else None
    except IndexError:
        return None


class QueryCookie(NamedTuple):
    """A query's COOKIE option and the query without it (what the serving index is given)."""

    status: Status
    client: bytes
    server: bytes
    stripped: bytes  # the query with the COOKIE option removed (and the OPT kept)
    age: int | None = None  # a valid server cookie's age in seconds
    payload: int = 512  # the client's EDNS UDP payload size, as it sent it
    renew: bool = False  # valid, but made with a retired secret: answer with a new one


MEMO = 10_000  # server cookies remembered as valid; past it the memo starts over


def read_query(wire: bytes, secret: bytes, ip: str, wall: int,
               memo: dict[tuple[str, bytes], bool] | None = None,
               previous: tuple[bytes, ...] = ()) -> QueryCookie | None:
    """The query's cookie status, or None when it carries no COOKIE option (or no usable OPT).

    `memo` (kept by the caller for one secret) remembers cookies whose hash matched, so a
    client that repeats its cookie costs a timestamp check, not a SipHash. `previous` are
    retired secrets still accepted while clients move on (RFC 9018 §4.4 rollover): a cookie
    made with one is valid, and the response carries a fresh one made with `secret`.

    When a COOKIE option is there, `stripped` is the query without it, its EDNS payload
    lowered by the room the response's COOKIE option will take, so the index's truncation
    leaves space for it (never below 512, RFC 6891 §6.2.5).
    """
    opt = find_opt(wire)
    if opt is None or opt.end == opt.rdata:
        return None
    cookies: list[bytes] = []
    kept = bytearray()
    j = opt.rdata
    while j < opt.end:
        if j + 4 > opt.end:
            return None  # options that do not tile the rdata: the full parser says FORMERR
        code = wire[j] << 8 | wire[j + 1]
        olen = wire[j + 2] << 8 | wire[j + 3]
        if j + 4 + olen > opt.end:
            return None
        if code == COOKIE:
            cookies.append(wire[j + 4:j + 4 + olen])
        else:
            kept += wire[j:j + 4 + olen]
        j += 4 + olen
    if not cookies or wire[opt.start] != 0:  # RFC 6891 §6.1.2: the OPT owner is the root
        return None
    sent = wire[opt.start + 3] << 8 | wire[opt.start + 4]
    payload = max(512, sent - (4 + CLIENT_LEN + 16))
    head = wire[:opt.start] + wire[opt.start:opt.start + 3] + payload.to_bytes(2, "big")
    stripped = (head + wire[opt.start + 5:opt.rdata - 2] + len(kept).to_bytes(2, "big")
                + bytes(kept) + wire[opt.end:])
    value = cookies[0]
    if len(cookies) > 1 or not (len(value) == CLIENT_LEN
                                or CLIENT_LEN + SERVER_MIN <= len(value) <= CLIENT_LEN + SERVER_MAX):
        # RFC 7873 §5.2.2: a COOKIE option of any other length is malformed
        return QueryCookie(Status.MALFORMED, b"", b"", stripped, None, sent)
    client, server = value[:CLIENT_LEN], value[CLIENT_LEN:]
    if not server:
        return QueryCookie(Status.CLIENT_ONLY, client, b"", stripped, None, sent)
    if memo is not None and (ip, value) in memo:
        age = _age(server, wall)  # the hash matched before; only time can have changed
        if not -LIFETIME_FUTURE <= age <= LIFETIME_PAST:
            age = None
    else:
        age = server_cookie_age(secret, client, server, ip, wall)
        for old in previous:
            if age is not None:
                break
            age = server_cookie_age(old, client, server, ip, wall)
            if age is not None:  # not remembered: the next query should bring the new one
                return QueryCookie(Status.VALID, client, server, stripped, age, sent, True)
        if age is not None and memo is not None:
            if len(memo) >= MEMO:
                memo.clear()
            memo[(ip, value)] = True
    if age is None:
        return QueryCookie(Status.BAD_SERVER, client, server, stripped, None, sent)
    return QueryCookie(Status.VALID, client, server, stripped, age, sent)


def response_cookie(secret: bytes, q: QueryCookie, ip: str, wall: int) -> bytes:
    """The COOKIE option value for the response: the client cookie and a server cookie
    (the query's own while valid and under half an hour old, else a fresh one)."""
    if (q.status is Status.VALID and not q.renew and q.age is not None
            and q.age < REFRESH_AFTER):
        return q.client + q.server
    return q.client + make_server_cookie(secret, q.client, ip, wall)


def add_option(reply: bytes, code: int, value: bytes) -> bytes | None:
    """The reply with one EDNS option appended to its OPT record, or None if it has no OPT."""
    opt = find_opt(reply)
    if opt is None:
        return None
    rdata = reply[opt.rdata:opt.end] + code.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value
    return (reply[:opt.rdata - 2] + len(rdata).to_bytes(2, "big") + rdata + reply[opt.end:])
