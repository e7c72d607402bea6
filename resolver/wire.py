"""Minimal DNS wire-format walking for the resolver's fast path (pure core).

Only what a cache hit needs without a full parse: read the question of a query, find the TTL
field of every resource record in a response so a cached answer can be served with its TTL
counted down, and patch the ID, flags and question into precomputed bytes. Full parsing and
building stays with dnspython; this module never builds a message from scratch. No I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("!HHHHHH")
OPT = 41
MAX_NAME_WIRE = 255  # RFC 1035 §2.3.4: a name is at most 255 octets on the wire


class WireError(ValueError):
    """The bytes are not a DNS message this module can walk (short, bad label, bad pointer)."""


@dataclass(frozen=True, slots=True)
class QueryView:
    """What the fast path needs from a query.

    `key` is the lowercased wire qname plus qtype and qclass: the cache key. Lowercasing the
    wire bytes is safe because label lengths are at most 63, below ASCII 'A' (65).
    `question` is the raw question section (12..end), copied into answers so the client sees
    its own spelling of the name (RFC 1035 §7.3 matching is case-insensitive; some clients
    check the case, the "0x20" hardening).
    """

    qid: int
    flags: int
    key: bytes
    question: bytes
    qtype: int
    edns: bool
    udp_size: int
    do_bit: bool
    end: int


def skip_name(wire: bytes | bytearray, pos: int) -> int:
    """Return the offset just after the (possibly compressed) name starting at `pos`."""
    n = len(wire)
    while True:
        if pos >= n:
            raise WireError("name runs past the end")
        length = wire[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            if pos + 2 > n:
                raise WireError("truncated pointer")
            return pos + 2
        if length & 0xC0:
            raise WireError("bad label type")
        pos += 1 + length


def _check_option(code: int, data: bytes, length: int) -> None:
    """The options whose shape an RFC fixes, checked so a malformed one is FORMERR (RFC 7871
    §7.1.1 for Client Subnet, RFC 7873 §5.2.2 for cookies), as dnspython and Unbound read them."""
    if len(data) != length:
        raise WireError("OPT option runs past the record")
    if code == 8:  # EDNS Client Subnet: family, source and scope prefix, the address bytes
        if length < 4:
            raise WireError("malformed client subnet option")
        family, source, scope = int.from_bytes(data[:2], "big"), data[2], data[3]
        limit = {1: 32, 2: 128}.get(family)
        if limit is None or source > limit or scope > limit or length - 4 != (source + 7) // 8:
            raise WireError("malformed client subnet option")
    elif code == 10 and not (length == 8 or 16 <= length <= 40):  # COOKIE
        raise WireError("malformed cookie option")
    elif code == 15 and length < 2:  # extended DNS error: an info code at least
        raise WireError("malformed extended error option")


def view_query(wire: bytes) -> QueryView:
    """Read header, question and OPT of a query without building a Message.

    Raises WireError for anything that is not exactly one uncompressed question, so the
    caller takes the slow path (which answers FORMERR where RFC 1035 §4.1.1 says so).
    """
    if len(wire) < 12:
        raise WireError("short header")
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(wire, 0)
    if qd != 1 or an or ns or ar > 1:
        raise WireError("not a plain single-question query")
    pos = 12
    n = len(wire)
    while True:
        if pos >= n:
            raise WireError("qname runs past the end")
        length = wire[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0:
            raise WireError("compressed or extended label in question")
        pos += 1 + length
    if pos - 12 > MAX_NAME_WIRE:
        raise WireError("question name longer than 255 octets")
    if pos + 4 > n:
        raise WireError("short question")
    qtype, qclass = struct.unpack_from("!HH", wire, pos)
    key = wire[12:pos].lower() + wire[pos : pos + 4]
    qend = pos + 4
    edns = False
    udp_size = 512
    do_bit = False
    if ar == 1:
        # RFC 6891 §6.1.2: OPT has the root name, type 41; CLASS is the requestor's UDP size.
        if qend + 11 > n or wire[qend] != 0:
            raise WireError("additional record is not a plain OPT")
        rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", wire, qend + 1)
        if rtype != OPT or qend + 11 + rdlen != n:
            raise WireError("additional record is not a plain OPT")
        # RFC 6891 §6.1.2: the RDATA is {code, length, data} options that fill it exactly
        pos = qend + 11
        while pos < n:
            if pos + 4 > n:
                raise WireError("OPT option header cut short")
            code = int.from_bytes(wire[pos:pos + 2], "big")
            length = int.from_bytes(wire[pos + 2:pos + 4], "big")
            _check_option(code, wire[pos + 4:pos + 4 + length], length)
            pos += 4 + length
        if pos != n:
            raise WireError("OPT option runs past the record")
        edns = True
        udp_size = max(512, rclass)
        do_bit = bool(ttl & 0x8000)
        if (ttl >> 16) & 0xFF:  # EDNS version other than 0: slow path answers BADVERS
            raise WireError("EDNS version")
    elif qend != n:
        raise WireError("trailing bytes")
    return QueryView(qid, flags, key, wire[12:qend], qtype, edns, udp_size, do_bit, qend)


def ttl_offsets(wire: bytes) -> tuple[list[int], list[int]]:
    """Offsets and values of the TTL field of every RR except OPT (whose TTL is flags)."""
    if len(wire) < 12:
        raise WireError("short header")
    _qid, _flags, qd, an, ns, ar = HEADER.unpack_from(wire, 0)
    pos = 12
    for _ in range(qd):
        pos = skip_name(wire, pos) + 4
    offsets: list[int] = []
    values: list[int] = []
    for _ in range(an + ns + ar):
        pos = skip_name(wire, pos)
        if pos + 10 > len(wire):
            raise WireError("short RR")
        rtype, _rclass, ttl, rdlen = struct.unpack_from("!HHIH", wire, pos)
        if rtype != OPT:
            offsets.append(pos + 4)
            values.append(ttl)
        pos += 10 + rdlen
    if pos > len(wire):
        raise WireError("RR runs past the end")
    return offsets, values


def opt_record(udp_size: int, options: bytes = b"", rcode_high: int = 0) -> bytes:
    """An OPT pseudo-RR (RFC 6891 §6.1.2) with the given option bytes."""
    return b"\x00" + struct.pack("!HHBBHH", OPT, udp_size, rcode_high, 0, 0, len(options)) + options


def ede_option(code: int, text: str = "") -> bytes:
    """An Extended DNS Error option (RFC 8914 §2): option code 15, INFO-CODE, EXTRA-TEXT."""
    body = struct.pack("!H", code) + text.encode()
    return struct.pack("!HH", 15, len(body)) + body


def error_reply(
    wire: bytes, rcode: int, qend: int = 0, *, ra: bool = False, opt: bytes = b""
) -> bytes:
    """An error reply built from the query's own bytes (Unbound's `query_error`).

    ID echoed, RD kept, QR set, the low four bits of `rcode` in the header; the question is
    copied when `qend` (its end offset, from a successful `view_query`) is given, else the
    reply is header-only (RFC 1035 §4.1.1: FORMERR when the question could not be read).
    `opt` is an OPT record to append (BADVERS needs its upper rcode bits there, RFC 6891
    §6.1.3). Needs at least the 12-byte header.
    """
    flags = 0x8000 | ((wire[2] & 0x01) << 8) | (0x80 if ra else 0) | (rcode & 0xF)
    qd = 1 if qend else 0
    counts = struct.pack("!HHHH", qd, 0, 0, 1 if opt else 0)
    return wire[:2] + struct.pack("!H", flags) + counts + (wire[12:qend] if qend else b"") + opt
