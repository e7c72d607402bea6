"""Differential test: authd and a real authoritative server answer the same queries the same way.

NSD (and Knot, when installed) is started by the test on loopback with an ephemeral port and a
temporary config directory, serving `zones/example.test.zone` unchanged; authd serves the same
file. A few hundred queries (every interesting name × many types, mixed case, unknown types,
EDNS variants, names just outside the zone, over UDP and TCP) are sent to both, and rcode,
header flags, EDNS and all three sections are compared. Every difference must be listed in
`DELIBERATE` with the reason; anything else fails the test.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests import dns_peers
from tests.conftest import ZONES

pytestmark = [pytest.mark.realtime, pytest.mark.slow]

ZONE_FILE = ZONES / "example.test.zone"
ROOT = Path(__file__).resolve().parent.parent

NAMES = [
    "example.test.", "ns1.example.test.", "ns2.example.test.", "mail.example.test.",
    "www.example.test.", "web.example.test.", "host.example.test.", "outside.example.test.",
    "*.wild.example.test.", "x.wild.example.test.", "a.b.wild.example.test.",
    "wild.example.test.", "ent.example.test.", "b.ent.example.test.", "a.b.ent.example.test.",
    "sub.example.test.", "ns1.sub.example.test.", "deep.down.sub.example.test.",
    "big.example.test.", "nosuch.example.test.", "x.host.example.test.",
    "x.www.example.test.",
    # just outside the zone
    "test.", "xexample.test.", "example.test.org.", "other.invalid.", ".",
]
TYPES = ["A", "AAAA", "MX", "TXT", "NS", "SOA", "CNAME", "DS", "ANY", "SRV", "TYPE65280",
         "HINFO"]


@dataclass(frozen=True)
class Variant:
    name: str
    edns: int | None = None  # None: no OPT
    payload: int = 1232
    do: bool = False
    tcp: bool = False


VARIANTS = [
    Variant("plain"),
    Variant("edns", edns=0),
    Variant("edns-do", edns=0, do=True),
    Variant("edns-512", edns=0, payload=512),
    Variant("edns-4096", edns=0, payload=4096),
    Variant("tcp", tcp=True),
    Variant("tcp-edns", edns=0, tcp=True),
]

# Differences we chose, each with its reason, per peer. NSD (configured as the issue says)
# must agree exactly; Knot has no minimal-responses switch and differs in three known ways.
CASE = ("Knot writes names inside rdata in the zone's case; authd (like NSD) compresses them "
        "against the question, so they show the question's case. Names are case-insensitive "
        "(RFC 4343); the data is identical once lower-cased")
MX_ADDITIONAL = ("Knot adds the MX target's address in ADDITIONAL; authd behaves like NSD with "
                 "minimal-responses: additional data only for referrals and NS answers "
                 "(RFC 1035 §3.3.9 additional processing is optional)")
ANY_CHOICE = ("RFC 8482 §4.1 lets a server answer ANY with any one RRset: Knot picks the apex "
              "NS RRset (with its addresses), authd picks the SOA as NSD does")
ALLOWED = {"nsd": set(), "knot": {CASE, MX_ADDITIONAL, ANY_CHOICE}}


def mixed_case(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


def queries() -> Iterator[tuple[str, str, Variant]]:
    rng = random.Random(4592)
    k = 0
    for name in NAMES:
        for qtype in TYPES:
            yield name, qtype, VARIANTS[k % len(VARIANTS)]
            k += 1
            if rng.random() < 0.6:
                yield mixed_case(name, rng), qtype, VARIANTS[rng.randrange(len(VARIANTS))]
    # EDNS version 1 gets BADVERS from both
    yield "host.example.test.", "A", Variant("edns1", edns=1)
    yield "nosuch.example.test.", "A", Variant("edns1", edns=1)


@pytest.fixture(scope="module")
def authd_port(tmp_path_factory) -> Iterator[int]:
    server = dns_peers.start("authd", tmp_path_factory.mktemp("authd"), [ZONE_FILE],
                             "example.test.")
    try:
        yield server.port
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["nsd", "knot"])
def peer(request, tmp_path_factory) -> Iterator[tuple[str, int]]:
    """NSD and Knot as `tests/dns_peers.py` configures them for the large differential suite."""
    server = dns_peers.start(request.param, tmp_path_factory.mktemp(request.param), [ZONE_FILE],
                             "example.test.")
    try:
        yield request.param, server.port
    finally:
        server.stop()


def ask(port: int, qname: str, qtype: str, v: Variant, qid: int) -> dns.message.Message | None:
    q = dns.message.make_query(qname, qtype, use_edns=v.edns,
                               payload=v.payload if v.edns is not None else None,
                               want_dnssec=v.do)
    q.flags = 0  # +norecurse, as a resolver asks an authority
    q.id = qid
    try:
        if v.tcp:
            return dns.query.tcp(q, "127.0.0.1", port=port, timeout=3)
        return dns.query.udp(q, "127.0.0.1", port=port, timeout=3, ignore_trailing=True,
                             raise_on_truncation=False)
    except dns.exception.Timeout:
        return None


def describe(m: dns.message.Message | None) -> dict[str, object]:
    """What we compare: rcode, flags, EDNS and all three sections (RRs sorted within each)."""
    if m is None:
        return {"dropped": True}

    def section(rrsets: list) -> list[str]:
        return sorted(
            f"{rr.name} {rr.ttl} {dns.rdatatype.to_text(rr.rdtype)} {rd.to_text()}"
            for rr in rrsets for rd in rr
        )

    return {
        "rcode": dns.rcode.to_text(m.rcode()),
        "flags": dns.flags.to_text(m.flags),
        "edns": (m.edns, int(m.payload), bool(m.ednsflags & dns.flags.DO)) if m.edns >= 0
        else None,
        "question": [f"{r.name} {dns.rdatatype.to_text(r.rdtype)}" for r in m.question],
        "answer": section(m.answer),
        "authority": section(m.authority),
        "additional": section([r for r in m.additional if r.rdtype != dns.rdatatype.OPT]),
    }


def lowered(d: dict[str, object]) -> dict[str, object]:
    return {k: (sorted(x.lower() for x in v) if isinstance(v, list) else v)
            for k, v in d.items()}


def deliberate(qname: str, qtype: str, ours: dict, theirs: dict) -> str | None:
    """The documented reason if this difference is one we chose, else None."""
    if lowered(ours) == lowered(theirs):
        return CASE
    a, b = lowered(ours), lowered(theirs)
    if qtype == "ANY" and a["rcode"] == b["rcode"] == "NOERROR" and a["answer"] and b["answer"]:
        return ANY_CHOICE
    if (qtype == "MX" and {k for k in a if a[k] != b[k]} == {"additional"}
            and a["additional"] == [] and all(" A " in x or " AAAA " in x
                                              for x in theirs["additional"])):
        return MX_ADDITIONAL
    return None


def test_authd_agrees_with_real_servers(authd_port, peer):
    peer_name, peer_port = peer
    differences = []
    chosen: dict[str, int] = {}
    count = 0
    for i, (qname, qtype, v) in enumerate(queries()):
        ours = describe(ask(authd_port, qname, qtype, v, i))
        theirs = describe(ask(peer_port, qname, qtype, v, i))
        count += 1
        if ours == theirs:
            continue
        reason = deliberate(qname, qtype, ours, theirs)
        if reason in ALLOWED[peer_name]:
            chosen[reason] = chosen.get(reason, 0) + 1
            continue
        diff = {k: (ours.get(k), theirs.get(k)) for k in set(ours) | set(theirs)
                if ours.get(k) != theirs.get(k)}
        differences.append(f"{qname} {qtype} [{v.name}]: authd vs {peer_name}: {diff}")
    assert count >= 300
    assert not differences, f"{len(differences)} of {count} differ:\n" + "\n".join(
        differences[:40])
    # the deliberate differences are few and each is one we documented
    assert sum(chosen.values()) <= count // 10, chosen


# --- odd packets: rcode, flags and section counts for hand-made malformed or unusual queries --


def _odd_packets() -> dict[str, bytes]:
    base = dns.message.make_query("host.example.test.", "A")
    base.flags, base.id = 0, 7
    w = base.to_wire()

    def opcode(o: int) -> bytes:
        return w[:2] + bytes([(w[2] & 0x87) | (o << 3)]) + w[3:]

    def flag3(bit: int) -> bytes:
        return w[:3] + bytes([w[3] | bit]) + w[4:]

    e = dns.message.make_query("host.example.test.", "A", use_edns=0)
    e.id = 9
    ew = e.to_wire()
    return {
        "opcode STATUS": opcode(2),
        "opcode NOTIFY": opcode(4),
        "opcode UPDATE": opcode(5),
        "opcode 7": opcode(7),
        "qdcount 0, question follows": w[:5] + b"\x00" + w[6:],
        "qdcount 0, header only": w[:5] + b"\x00" + w[6:12],
        "qdcount 2": w[:5] + b"\x02" + w[6:],
        "ancount 1": w[:7] + b"\x01" + w[8:],
        "trailing junk": w + b"junk",
        "truncated question": w[:-2],
        "compression pointer in question": w[:12] + b"\xc0\x0c" + w[-4:],
        "class CH": dns.message.make_query("version.bind.", "TXT", rdclass="CH").to_wire(),
        "class ANY": dns.message.make_query("host.example.test.", "A", rdclass="ANY").to_wire(),
        "AXFR over UDP": dns.message.make_query("example.test.", "AXFR").to_wire(),
        "IXFR over UDP": dns.message.make_query("example.test.", "IXFR").to_wire(),
        "qtype OPT": dns.message.make_query("example.test.", "OPT").to_wire(),
        "qtype MAILB": dns.message.make_query("example.test.", "MAILB").to_wire(),
        "QR set": w[:2] + bytes([w[2] | 0x80]) + w[3:],
        "TC set in query": w[:2] + bytes([w[2] | 0x02]) + w[3:],
        "AD set": flag3(0x20),
        "Z set": flag3(0x40),
        "CD set": flag3(0x10),
        "rcode set in query": flag3(0x03),
        "two OPT records": ew[:11] + b"\x02" + ew[12:] + ew[-11:],
        "EDNS payload 100": dns.message.make_query("host.example.test.", "A", use_edns=0,
                                                   payload=100).to_wire(),
        "big TXT, EDNS payload 100": dns.message.make_query(
            "big.example.test.", "TXT", use_edns=0, payload=100).to_wire(),
        "11 bytes": w[:11],
        "empty": b"",
    }


# (peer, case) -> why authd answers differently, on purpose
ODD_DELIBERATE = {
    ("nsd", "opcode NOTIFY"): "authd is no secondary: NOTIFY is NOTIMP (NSD: NXDOMAIN, Knot: "
                              "NOTAUTH for an unconfigured master)",
    ("knot", "opcode NOTIFY"): "as above",
    ("nsd", "trailing junk"): "authd says FORMERR for bytes after the last record, like Knot "
                              "and dnspython's parser (NSD ignores them)",
    ("nsd", "rcode set in query"): "authd ignores the RCODE of a query, like Knot (NSD says "
                                   "FORMERR)",
    ("knot", "class ANY"): "RFC 6895 §3.2: an answer to QCLASS=ANY is not authoritative; authd "
                           "clears AA like NSD",
    ("knot", "IXFR over UDP"): "authd refuses IXFR like NSD (Knot: NOTAUTH)",
    ("knot", "opcode UPDATE"): "Knot answers UPDATE with a packet dnspython cannot parse; authd "
                               "says NOTIMP like NSD",
}
# Knot writes the question back in error replies where NSD and authd send none; Knot also drops
# some malformed packets that authd and NSD answer with FORMERR. Both are permitted
# (RFC 1035 §4.1.1 leaves the question optional in errors; dropping is allowed for garbage).
KNOT_ERROR_SHAPE = "error reply shape (question echoed, or packet dropped) differs from Knot"


def _signature(port: int, wire: bytes) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(wire, ("127.0.0.1", port))
        try:
            data = s.recv(65535)
        except TimeoutError:
            return "DROP"
    try:
        m = dns.message.from_wire(data, ignore_trailing=True)
    except dns.exception.DNSException:
        return "UNPARSEABLE"
    return (f"{dns.rcode.to_text(m.rcode())} {dns.flags.to_text(m.flags)} q={len(m.question)}"
            f" an={len(m.answer)} ns={len(m.authority)} edns={m.edns}")


def test_odd_packets_match_or_differ_on_purpose(authd_port, peer):
    peer_name, peer_port = peer
    unexplained = []
    for case, wire in _odd_packets().items():
        ours, theirs = _signature(authd_port, wire), _signature(peer_port, wire)
        if ours == theirs or (peer_name, case) in ODD_DELIBERATE:
            continue
        ours_rcode, theirs_rcode = ours.split()[0], theirs.split()[0]
        if peer_name == "knot" and (
            theirs == "DROP" and ours_rcode == "FORMERR"
            or ours_rcode == theirs_rcode and ours.replace("q=0", "q=1") == theirs
        ):
            continue  # KNOT_ERROR_SHAPE
        unexplained.append(f"{case}: authd {ours} / {peer_name} {theirs}")
    assert not unexplained, "\n".join(unexplained)
    # and authd never drops what a peer answers, except a response (QR=1) or a runt
    assert _signature(authd_port, _odd_packets()["QR set"]) == "DROP"
