"""A hand-written parser for the common query shape, for the serving index's fast path.

Pure core. `parse_fast` accepts only the plain, unambiguous shape most resolvers send: a
query header (QR=0, opcode QUERY), exactly one question with an uncompressed name, no answer
or authority records, and either nothing or one well-formed OPT record (EDNS version 0) after
it. Anything else returns None and goes to the full dnspython parse in `authd.dns.answer`, so the
fast parser may be strict but must never accept a packet the full path would treat
differently. `tests/test_fuzz*.py` checks it against dnspython on random and mutated packets.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

_QD1_AR0 = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_QD1_AR1 = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_OPT_TYPE = b"\x00\x29"
RD_CD = 0x0110  # the query flags a response copies (RFC 1035 §4.1.1; RFC 4035 §3.1.6 for CD)
_UNCACHED_TYPES = frozenset({0, 41, 249, 250, 251, 252})  # OPT, TKEY, TSIG, IXFR, AXFR
# EDNS options whose content dnspython validates (and may reject as FORMERR) go to the full
# path; COOKIE (RFC 7873 §4: client 8 bytes, server 8..32) is checked here since dig sends it.
_COOKIE = 10
_ECS = 8
_VALIDATED_OPTIONS = frozenset({8, 15, 18, 22, 23, 24, 25})


class FastQuery(NamedTuple):
    """The cache key of a query plus what the responder patches and limits on.

    key: (RD|CD bits, lowercased question bytes, EDNS variant: 0 none, 1 DO=0, 2 DO=1)
    qend: offset just past the question (the bytes copied from the query into the response,
          so the question's case is preserved)
    payload: the client's EDNS UDP payload size, 0 without EDNS
    """

    key: tuple[int, bytes, int]
    qend: int
    payload: int
    # EDNS Client Subnet (family, address, source prefix), only with `allow_ecs`: such a query
    # is answered by the full pipeline (its answer may depend on the subnet, and echoes it)
    ecs: tuple[int, str, int] | None = None


def _ecs(data: bytes) -> tuple[int, str, int] | None:
    """RFC 7871 §6 in its strict form: family 1 or 2, a source prefix within the family,
    SCOPE 0, exactly ceil(source/8) address bytes with the bits past the prefix zero.
    Anything else (None) is left to dnspython, which may call it FORMERR."""
    if len(data) < 4:
        return None
    family, source, scope = data[0] << 8 | data[1], data[2], data[3]
    size = 4 if family == 1 else 16 if family == 2 else 0
    raw = data[4:]
    if not size or source > size * 8 or scope or len(raw) != (source + 7) // 8:
        return None
    if raw and source % 8 and raw[-1] & (0xFF >> (source % 8)):
        return None
    padded = raw + bytes(size - len(raw))
    address = ipaddress.IPv4Address(padded) if family == 1 else ipaddress.IPv6Address(padded)
    return family, str(address), source


# What `read_query` gives: (the name's key: lowered labels with the root's b"", the lowered
# packet, qend, QTYPE, EDNS variant: 0 none, 1 DO=0, 2 DO=1, UDP payload (0 without EDNS),
# the ECS option or None). A plain tuple: the compiled answers read it per packet.
Read = tuple[tuple[bytes, ...], bytes, int, int, int, int, "tuple[int, str, int] | None"]


def read_query(wire: bytes, allow_ecs: bool = False) -> Read | None:
    """Read the common query shape once, for every fast path (`parse_fast`, the compiled
    answers): the one place its rules are written. None when the packet is not that shape
    (then the full parser decides). QTYPE is left to the caller (each declines its own).

    The C UDP loop repeats these rules for a query without EDNS (`read_question` in
    `authd/dns/_fastudp.c`): the same reader, so a change here is a change there, and
    tests/test_fastudp.py checks the two against each other on generated wires."""
    n = len(wire)
    if n < 17 or wire[2] & 0xF8:  # QR=1 or opcode != QUERY: not ours to shortcut
        return None
    counts = wire[4:12]
    if counts == _QD1_AR0:
        has_opt = False
    elif counts == _QD1_AR1:
        has_opt = True
    else:
        return None
    low = wire.lower()  # label lengths are < 64, so only the names' letters change
    labels = []
    i = 12
    while True:
        length = wire[i]
        if not length:
            break
        if length > 63:  # a compression pointer or reserved label type
            return None
        labels.append(low[i + 1:i + 1 + length])
        i += length + 1
        if i >= n:
            return None
    if i > 266:  # RFC 1035 §2.3.4: names are at most 255 octets (i - 12 + 1 with the root)
        return None
    qend = i + 5
    if qend > n or wire[i + 3:qend] != b"\x00\x01":  # class IN only
        return None
    labels.append(b"")
    qtype = wire[i + 1] << 8 | wire[i + 2]
    if not has_opt:
        if qend != n:
            return None
        return tuple(labels), low, qend, qtype, 0, 0, None
    # RFC 6891 §6.1.2: OPT owner is the root, type 41, class = payload, TTL = ext-rcode,
    # version, flags; then RDLEN and options
    o = qend
    if n < o + 11 or wire[o] != 0 or wire[o + 1:o + 3] != _OPT_TYPE:
        return None
    if wire[o + 6] != 0:  # EDNS version > 0 gets BADVERS from the full path
        return None
    rdlen = wire[o + 9] << 8 | wire[o + 10]
    end = o + 11 + rdlen
    if end != n:
        return None
    j = o + 11
    ecs = None
    while j < end:  # options must tile RDATA exactly, else the full path says FORMERR
        if j + 4 > end:
            return None
        code = wire[j] << 8 | wire[j + 1]
        olen = wire[j + 2] << 8 | wire[j + 3]
        if code == _ECS and allow_ecs and ecs is None and j + 4 + olen <= end:
            ecs = _ecs(wire[j + 4:j + 4 + olen])
            if ecs is None:
                return None
        elif code in _VALIDATED_OPTIONS or (code == _COOKIE and olen != 8 and not 16 <= olen <= 40):
            return None
        j += 4 + olen
    if j != end:
        return None
    return (tuple(labels), low, qend, qtype, 2 if wire[o + 7] & 0x80 else 1,
            wire[o + 3] << 8 | wire[o + 4], ecs)


def parse_fast(wire: bytes, allow_ecs: bool = False) -> FastQuery | None:
    """Parse the common query shape (`read_query`), or return None (then the full parser
    decides). `allow_ecs` also takes one well-formed EDNS Client Subnet option (the answer
    stage's parser; the rendered-answer tables never see such a query)."""
    q = read_query(wire, allow_ecs)
    if q is None or q[3] in _UNCACHED_TYPES:
        return None
    qend = q[2]
    return FastQuery(((wire[2] << 8 | wire[3]) & RD_CD, q[1][12:qend], q[4]), qend, q[5], q[6])


# --- rendering ------------------------------------------------------------------------------
#
# A small renderer for responses, much cheaper than building a dnspython Message. Names are
# compressed (RFC 1035 §4.1.4) against every name already written, the question's included,
# so answer owners show the question's case exactly as NSD and dnspython do. Names inside
# rdata are compressed only for the RFC 1035 types whose rdata may be compressed
# (RFC 3597 §4: NS, CNAME, PTR, MX, SOA); other rdata is written as dnspython renders it.

_NS, _CNAME, _SOA, _PTR, _MX = 2, 5, 6, 12, 15
COMPRESSIBLE = frozenset({_NS, _CNAME, _SOA, _PTR, _MX})
_OPT_HEAD = b"\x00\x00\x29"


class Renderer:
    """Accumulates one message. `rrset(...)` appends a dnspython RRset, returning its RR count."""

    __slots__ = ("out", "comp")

    def __init__(self, header12: bytes, question: bytes, qname_labels: tuple[bytes, ...]):
        self.out = bytearray(header12)
        self.comp: dict[tuple[bytes, ...], int] = {}
        if question:
            offset = 12
            lowered = tuple(map(bytes.lower, qname_labels))
            for i in range(len(lowered)):
                self.comp[lowered[i:]] = offset
                offset += len(qname_labels[i]) + 1
            self.out += question

    def name(self, labels: tuple[bytes, ...], lowered: tuple[bytes, ...] | None = None) -> None:
        """Write a name given its labels without the root label, compressing its suffixes."""
        out = self.out
        comp = self.comp
        if lowered is None:
            lowered = tuple(map(bytes.lower, labels))
        for i in range(len(labels)):
            ptr = comp.get(lowered[i:])
            if ptr is not None:
                out += (0xC000 | ptr).to_bytes(2, "big")
                return
            pos = len(out)
            if pos < 0x3FFF:
                comp[lowered[i:]] = pos
            label = labels[i]
            out.append(len(label))
            out += label
        out.append(0)

    def rrset(self, rrset: object) -> int:
        out = self.out
        owner = rrset.name.labels[:-1]  # type: ignore[attr-defined]
        tails = getattr(rrset, "tails", None)
        if tails:
            # rdata without compressible names, pre-rendered with its RR header: only the
            # owner is written here, then a pointer back to it for each further RR
            lowered = tuple(map(bytes.lower, owner))
            self.name(owner, lowered)
            out += tails[0]
            if len(tails) > 1:
                ptr = self.comp.get(lowered)
                if ptr is None:  # beyond the reach of a pointer: spell it out each time
                    for tail in tails[1:]:
                        self.name(owner, lowered)
                        out += tail
                else:
                    ptrb = (0xC000 | ptr).to_bytes(2, "big")
                    out += b"".join([ptrb + tail for tail in tails[1:]])
            return len(tails)
        rdtype = rrset.rdtype  # type: ignore[attr-defined]
        head = (rdtype.to_bytes(2, "big") + rrset.rdclass.to_bytes(2, "big")  # type: ignore[attr-defined]
                + rrset.ttl.to_bytes(4, "big"))  # type: ignore[attr-defined]
        n = 0
        wires = getattr(rrset, "wires", None)  # zone data carries its rdata pre-rendered
        for rd in rrset:  # type: ignore[attr-defined]
            self.name(owner)
            out += head
            at = len(out)
            out += b"\x00\x00"
            if rdtype in (_CNAME, _NS, _PTR):
                self.name(rd.target.labels[:-1])
            elif rdtype == _MX:
                out += rd.preference.to_bytes(2, "big")
                self.name(rd.exchange.labels[:-1])
            elif rdtype == _SOA:
                self.name(rd.mname.labels[:-1])
                self.name(rd.rname.labels[:-1])
                out += b"".join(v.to_bytes(4, "big") for v in
                                (rd.serial, rd.refresh, rd.retry, rd.expire, rd.minimum))
            elif wires:
                out += wires[n]
            else:
                out += rd.to_wire()
            out[at:at + 2] = (len(out) - at - 2).to_bytes(2, "big")
            n += 1
        return n

    def opt(self, payload: int, ext_rcode: int, flags: int, options: bytes = b"") -> None:
        """RFC 6891 §6.1.2 OPT pseudo-RR: root owner, CLASS = payload, TTL = ext-rcode,
        version 0 and flags, then the options (already in code, length, data form)."""
        self.out += (_OPT_HEAD + payload.to_bytes(2, "big") + bytes([ext_rcode, 0])
                     + flags.to_bytes(2, "big") + len(options).to_bytes(2, "big") + options)
