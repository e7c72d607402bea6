"""The differential suite's cases: queries in wire form over `tests/data/diff.test.zone`.

Pure and deterministic (a seeded `random.Random`, no sockets): `cases()` gives the same
list every run, each case with a unique DNS ID (its index) so answers sent concurrently or
pipelined over TCP are matched back by ID. What the cases cover, by group:

- `lookup`: every interesting name of the zone (CNAME chains and loops, wildcards, a
  wildcard that is an empty non-terminal, empty non-terminals, DNAMEs in and out of the zone,
  DNAME chains, a DNAME to itself, into a wildcard, a delegation and the served child, CNAMEs
  into a DNAME and into the child, DNAME rewrites of 255 and 256 octets, delegations with and
  without DS, a served child zone, escaped labels, a 255-octet name, big RRsets) crossed with
  many query types, each in a few of the variants (EDNS sizes 512/1232/4096 or none, DO, RD,
  CD, 0x20 mixed case, TCP);
- `size`: the big RRsets at every client limit, UDP and TCP (truncation at 512, 1232, 4096);
- `opcode`: all sixteen opcodes, with and without EDNS;
- `class`: class ANY, CH (the `version.bind` family, and zone names), HS and NONE;
- `edns`: versions, payload sizes, options (unknown, COOKIE, NSID, padding, client subnet),
  two OPT records;
- `header`: QDCOUNT 0 and 2, QR/TC/AA/AD/Z set, RCODE set in a query, answers in a query;
- `malformed`: truncated and over-long names, bad label types, trailing junk, pointers;
- `transfer`: AXFR and IXFR (not allowed here) over UDP and TCP.

A case with `tcp=True` is sent with the other TCP cases pipelined on a few connections.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rrset

ZONE = "diff.test."
L63 = "l" * 63


@dataclass(frozen=True)
class Case:
    cid: int  # the DNS ID it is sent with
    group: str
    label: str  # what a reader needs to redo it: name, type, variant
    wire: bytes
    tcp: bool = False


@dataclass(frozen=True)
class Variant:
    name: str
    edns: int | None = None
    payload: int = 1232
    do: bool = False
    flags: int = 0
    mixed: bool = False
    tcp: bool = False


VARIANTS = [
    Variant("plain"),
    Variant("edns1232", edns=0),
    Variant("edns512", edns=0, payload=512),
    Variant("edns4096", edns=0, payload=4096),
    Variant("do", edns=0, do=True),
    Variant("rd", flags=dns.flags.RD),
    Variant("cd", edns=0, flags=dns.flags.CD),
    Variant("0x20", mixed=True),
    Variant("0x20-edns", edns=0, mixed=True),
    Variant("tcp", tcp=True),
    Variant("tcp-edns", edns=0, tcp=True),
    Variant("tcp-0x20", edns=0, mixed=True, tcp=True),
]


def _n(relative: str) -> str:
    return f"{relative}.{ZONE}" if relative else ZONE


NAMES = [_n(x) for x in [
    "", "ns1", "ns2", "mail", "www", "alias", "chain1", "chain3", "out", "loop1",
    "srv._tcp", "_tcp", "txtcase", "caa", "hinfo", "nosuch", "x.www", "www.nosuch",
    # wildcards
    "x.wild", "a.b.wild", "wild", "*.wild", "sub.wild", "x.sub.wild", "x.wcn", "x.wdn",
    "foo.w3", "foo.bar.w3", "*.w3", "x.*.w3", "y.x.*.w3", "w3",
    # empty non-terminals
    "ent", "b.ent", "a.b.ent", "c.b.ent",
    # DNAME
    "dn", "x.dn", "a.dn", "b.a.dn", "c.dn", "z.y.dn", "target", "a.target", "c.target",
    "x.ext", "y.x.ext", "ext", "x.dn2", "a.dn2", "dn2", "x.selfdn", "selfdn",
    "long", "x.long", f"{'p' * 44}.long", f"{'p' * 45}.long", "tochild", "www.dnchild",
    "x.dnwild", "sub.dnwild", "x.dndeleg", "ns.dndeleg", "todn",
    # delegations and the served child
    "deleg", "x.deleg", "ns.deleg", "nods", "x.nods", "child", "www.child", "ns1.child",
    "nothing.child",
    # escaped labels and the 255-octet name
    r"esc\.dot", r"sp\032ace", r"\195\169t\195\169", r"ESC\.DOT", r"esc\000nul",
    f"{'a' * 63}.{'b' * 63}.{'c' * 63}.{'d' * 51}",
    f"{'a' * 63}.{'b' * 63}.{'c' * 63}.{'e' * 51}",
    # sizes
    "big", "huge", "fat",
]] + [
    # outside every served zone
    "example.com.", "test.", ".", "xdiff.test.", "diff.test.example.", "invalid.",
]

TYPES = ["A", "AAAA", "TXT", "MX", "NS", "SOA", "CNAME", "DNAME", "DS", "ANY", "SRV", "CAA",
         "HINFO", "PTR", "TYPE65280", "RRSIG", "NSEC", "DNSKEY"]


def mixed_case(name: str, rng: random.Random) -> str:
    """0x20: each letter in a random case (escapes such as `\\195` have no letters)."""
    return "".join(c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in name)


def query(name: str, qtype: str | int, v: Variant, qid: int, rng: random.Random,
          rdclass: str | int = "IN", options: list | None = None) -> bytes:
    qname = mixed_case(name, rng) if v.mixed else name
    m = dns.message.make_query(
        dns.name.from_text(qname), qtype, rdclass=rdclass, use_edns=v.edns,
        payload=v.payload if v.edns is not None else None, want_dnssec=v.do, options=options)
    m.flags = v.flags
    m.id = qid
    return m.to_wire()


def _with_id(wire: bytes, qid: int) -> bytes:
    return struct.pack("!H", qid) + wire[2:]


def _set(wire: bytes, offset: int, value: int) -> bytes:
    return wire[:offset] + struct.pack("!H", value) + wire[offset + 2:]


class _Builder:
    def __init__(self) -> None:
        self.out: list[Case] = []
        self.rng = random.Random(6672)

    @property
    def next_id(self) -> int:
        return len(self.out)

    def add(self, group: str, label: str, wire: bytes, tcp: bool = False) -> None:
        self.out.append(Case(self.next_id, group, label, _with_id(wire, self.next_id), tcp))

    def q(self, group: str, name: str, qtype: str | int, v: Variant, **kw: object) -> None:
        wire = query(name, qtype, v, self.next_id, self.rng, **kw)  # type: ignore[arg-type]
        label = f"{name} {qtype}{' ' + str(kw.get('rdclass')) if 'rdclass' in kw else ''} [{v.name}]"
        self.add(group, label, wire, v.tcp)


def cases() -> list[Case]:
    b = _Builder()
    plain, edns = VARIANTS[0], VARIANTS[1]
    k = 0
    for name in NAMES:  # lookup: each (name, type) in two variants, rotating through all
        for qtype in TYPES:
            for _ in range(2):
                b.q("lookup", name, qtype, VARIANTS[k % len(VARIANTS)])
                k += 1
    for name in ("big", "huge", "fat", "www", "x.dn", "child"):  # size: every client limit
        for qtype in ("TXT", "A", "ANY", "DS"):
            for v in [plain, *(Variant(f"edns{p}", edns=0, payload=p)
                               for p in (0, 100, 511, 512, 513, 1232, 1233, 1400, 4096, 65535)),
                      Variant("tcp", tcp=True), Variant("tcp-edns512", edns=0, payload=512, tcp=True)]:
                b.q("size", _n(name), qtype, v)
    for opcode in range(16):  # every opcode, with and without EDNS
        for v in (plain, edns):
            wire = bytearray(query(_n("www"), "A", v, 0, b.rng))
            wire[2] = (wire[2] & 0x87) | (opcode << 3)
            b.add("opcode", f"opcode {opcode} www A [{v.name}]", bytes(wire))
    for name, qtype, rdclass in [
        ("version.bind.", "TXT", "CH"), ("hostname.bind.", "TXT", "CH"), ("id.server.", "TXT", "CH"),
        ("version.server.", "TXT", "CH"), ("authors.bind.", "TXT", "CH"), (ZONE, "SOA", "CH"),
        (_n("www"), "A", "CH"), (_n("www"), "A", "ANY"), (_n("www"), "ANY", "ANY"),
        (ZONE, "SOA", "ANY"), (_n("nosuch"), "A", "ANY"), (_n("x.dn"), "A", "ANY"),
        (_n("x.deleg"), "A", "ANY"), ("example.com.", "A", "ANY"), (_n("www"), "A", "HS"),
        (_n("www"), "A", "NONE"), (_n("www"), "A", 1234),
    ]:
        for v in (plain, edns, Variant("tcp", tcp=True)):
            b.q("class", name, qtype, v, rdclass=rdclass)
    _edns_cases(b)
    _header_cases(b)
    _malformed_cases(b)
    for qtype in ("AXFR", "IXFR"):
        for v in (plain, edns, Variant("tcp", tcp=True), Variant("tcp-edns", edns=0, tcp=True)):
            for name in (ZONE, _n("www"), "child.diff.test.", "example.com."):
                b.q("transfer", name, qtype, v)
    return b.out


def _edns_cases(b: _Builder) -> None:
    www, nx, out = _n("www"), _n("nosuch"), "example.com."
    for name in (www, nx, out, _n("x.dn")):
        for version in (1, 2, 255):
            wire = bytearray(query(name, "A", VARIANTS[1], 0, b.rng))
            wire[-5] = version  # OPT TTL: ext-rcode, VERSION, flags (RFC 6891 §6.1.3)
            b.add("edns", f"{name} A [EDNS version {version}]", bytes(wire))
        opts = {
            "unknown option 65001": [dns.edns.GenericOption(65001, b"\x01\x02")],
            "client COOKIE": [dns.edns.GenericOption(10, bytes(range(8)))],
            "NSID request": [dns.edns.GenericOption(3, b"")],
            "padding": [dns.edns.GenericOption(12, bytes(16))],
            "client subnet /24": [dns.edns.ECSOption("192.0.2.0", 24)],
            "client subnet /0": [dns.edns.ECSOption("0.0.0.0", 0)],
            "two options": [dns.edns.GenericOption(65001, b""), dns.edns.GenericOption(3, b"")],
        }
        for what, options in opts.items():
            for v in (VARIANTS[1], Variant("do", edns=0, do=True), Variant("tcp", edns=0, tcp=True)):
                wire = query(name, "A", v, 0, b.rng, options=options)
                b.add("edns", f"{name} A [{what}, {v.name}]", wire, v.tcp)
        for flags in (0x4000, 0x0001, 0xFFFF):  # undefined EDNS flag bits (RFC 6891 §6.1.4)
            wire = bytearray(query(name, "A", VARIANTS[1], 0, b.rng))
            wire[-4:-2] = struct.pack("!H", flags)
            b.add("edns", f"{name} A [EDNS flags {flags:#06x}]", bytes(wire))
        base = query(name, "A", VARIANTS[1], 0, b.rng)  # the OPT record is its last 11 octets
        b.add("edns", f"{name} A [two OPT records]", _set(base + base[-11:], 10, 2))
        b.add("edns", f"{name} A [OPT ext-rcode 1 in a query]", base[:-6] + b"\x01" + base[-5:])


def _header_cases(b: _Builder) -> None:
    for name in (_n("www"), _n("nosuch"), "example.com."):
        for v in (VARIANTS[0], VARIANTS[1]):
            w = query(name, "A", v, 0, b.rng)
            b.add("header", f"QDCOUNT 0, question follows: {name} [{v.name}]", _set(w, 4, 0))
            b.add("header", f"QDCOUNT 2, one question: {name} [{v.name}]", _set(w, 4, 2))
            question = query(name, "A", VARIANTS[0], 0, b.rng)[12:]
            twoq = _set(w[:12], 4, 2) + question + question + w[12 + len(question):]
            b.add("header", f"QDCOUNT 2, two questions: {name} [{v.name}]", twoq)
            for bit, what in ((0x0200, "TC"), (0x0400, "AA"), (0x0020, "AD"), (0x0040, "Z"),
                              (0x0080, "RA"), (0x0001, "RCODE 1"), (0x000F, "RCODE 15"),
                              (0x8000, "QR")):
                flags = struct.unpack("!H", w[2:4])[0] | bit
                b.add("header", f"{what} set: {name} A [{v.name}]", _set(w, 2, flags))
        w = query(name, "A", VARIANTS[0], 0, b.rng)
        b.add("header", f"QDCOUNT 0, header only: {name}", _set(w, 4, 0)[:12])
        e = query(name, "A", VARIANTS[1], 0, b.rng)
        qlen = len(w) - 12
        b.add("header", f"QDCOUNT 0, OPT only: {name}", _set(e, 4, 0)[:12] + e[12 + qlen:])
        b.add("header", f"ANCOUNT 1 with no answer: {name}", _set(w, 6, 1))
        rr = dns.message.make_response(dns.message.from_wire(w))
        rr.answer = [dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.9")]
        rw = rr.to_wire()
        b.add("header", f"an answer in a query: {name}", _set(rw, 2, 0))
        for tcp in (False, True):
            b.add("header", f"RD, 0x20 and EDNS together: {name} tcp={tcp}",
                  query(name, "A", Variant("x", edns=0, flags=dns.flags.RD, mixed=True), 0, b.rng),
                  tcp)


def _malformed_cases(b: _Builder) -> None:
    w = query(_n("www"), "A", VARIANTS[0], 0, b.rng)
    e = query(_n("www"), "A", VARIANTS[1], 0, b.rng)
    head = w[:12]
    tail = w[-4:]
    raw = {
        "trailing junk": w + b"junk",
        "trailing junk after OPT": e + b"\x00",
        "question cut short": w[:-2],
        "name cut short": w[:16],
        "compression pointer in question": head + b"\xc0\x0c" + tail,
        "pointer forward": head + b"\xc0\x20" + tail,
        "label type 01": head + b"\x41" + b"a" * 1 + b"\x00" + tail,
        "label type 10": head + b"\x81" + b"\x00" + tail,
        "label of 63": head + b"\x3f" + b"a" * 63 + b"\x04diff\x04test\x00" + tail,
        "name of 256 octets": head + (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"b" * 61
        + b"\x04diff\x04test\x00" + tail,
        "name of 255 octets": head + (b"\x3f" + b"a" * 63) * 3 + b"\x3c" + b"b" * 60
        + b"\x04diff\x04test\x00" + tail,
        "11 octets": w[:11],
        "12 octets, QDCOUNT 1": w[:12],
        "qtype 0": w[:-4] + b"\x00\x00\x00\x01",
        "qtype OPT": w[:-4] + b"\x00\x29\x00\x01",
        "qtype MAILB": w[:-4] + b"\x00\xfd\x00\x01",
        "qtype 65535": w[:-4] + b"\xff\xff\x00\x01",
        "qclass 0": w[:-2] + b"\x00\x00",
        "OPT with a name": e[:-11] + b"\x01a\x00" + e[-10:],
        "OPT truncated": e[:-3],
        "EDNS option overruns its RDATA": e[:-2] + b"\x00\x05" + b"\x00\x0a\x00\x08\x01",
    }
    for what, wire in raw.items():
        b.add("malformed", what, wire)
    for what in ("trailing junk", "compression pointer in question", "name of 256 octets",
                 "qtype OPT", "qclass 0"):
        b.add("malformed", f"{what} over TCP", raw[what], tcp=True)


def describe_cases(cs: list[Case]) -> dict[str, int]:
    """How many cases each group has (for the report)."""
    out: dict[str, int] = {}
    for c in cs:
        out[c.group] = out.get(c.group, 0) + 1
    return out

