"""DNS wire fuzz cases: the issue-10 crashers, structure-aware messages, raw mutation (pure).

Three sources, used by `bench/fuzz.py` (the harness against real processes) and by the tests:

- `ISSUE10`: the packets that killed `resolver serve` (issue 10), kept as regression cases.
- `messages()`: a hypothesis strategy for structure-aware DNS messages, encoded by hand
  (`encode`) so it can say what dnspython would refuse to build: wrong counts, OPT in any
  section or twice, EDNS versions, compression pointers forward, backward and into themselves,
  names up to and past 255 octets, meta query types, odd classes, truncated RDATA.
- `Mutator`: fast seeded byte mutation of a pool (flip, set, cut, insert, delete, duplicate,
  splice), for the million-packet runs where drawing every packet from hypothesis would be the
  bottleneck. `Mutator.next()` also says whether the packet is a well-formed query, which the
  harness expects an answer to.

No I/O, no clock.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence

from hypothesis import strategies as st

# Names the shipped zones serve (so well-formed queries reach real answers), and some they do not.
NAMES = [
    "host.example.test.", "HoSt.ExAmPlE.tEsT.", "dynamodb.us-east-1.api.aws.", "a.b.c.d.e.",
    "nosuch.example.test.", "big.example.test.", "x.wild.example.test.", ".",
    "sub.example.test.", "xn--bcher-kva.example.test.", "a" * 63 + ".example.test.",
    "www.example.test.", "api.aws.", "example.test.",
]
QTYPES = [1, 28, 16, 15, 255, 2, 6, 65280, 43, 5, 12, 33, 252, 251, 41, 250, 249, 128, 0, 65535]
QCLASSES = [1, 1, 1, 1, 3, 4, 254, 255, 0, 2]
OPT = 41


def name_wire(text: str) -> bytes:
    """Uncompressed wire form of a dotted name (no escapes; labels as given)."""
    labels = [lab for lab in text.split(".") if lab]
    return b"".join(bytes([len(lab)]) + lab.encode() for lab in labels) + b"\x00"


def question(name: bytes, qtype: int = 1, qclass: int = 1) -> bytes:
    return name + struct.pack("!HH", qtype, qclass)


def rr(name: bytes, rtype: int, rclass: int, ttl: int, rdata: bytes, rdlen: int | None = None) -> bytes:
    """One resource record; `rdlen` can lie about the RDATA length."""
    length = len(rdata) if rdlen is None else rdlen
    return name + struct.pack("!HHIH", rtype, rclass, ttl & 0xFFFFFFFF, length & 0xFFFF) + rdata


def opt_rr(payload: int = 1232, version: int = 0, do: bool = False, options: bytes = b"",
           owner: bytes = b"\x00") -> bytes:
    """An OPT pseudo-RR (RFC 6891 §6.1.2): CLASS = UDP payload size, TTL = ext-rcode/version/flags."""
    ttl = (version & 0xFF) << 16 | (0x8000 if do else 0)
    return rr(owner, OPT, payload, ttl, options)


def header(qid: int, flags: int, qd: int, an: int, ns: int, ar: int) -> bytes:
    return struct.pack("!HHHHHH", qid & 0xFFFF, flags & 0xFFFF, qd & 0xFFFF, an & 0xFFFF,
                       ns & 0xFFFF, ar & 0xFFFF)


def query(name: str, qtype: int = 1, *, qid: int = 0x1234, rd: bool = True, edns: bool = False,
          qclass: int = 1) -> bytes:
    """A plain well-formed query."""
    add = opt_rr() if edns else b""
    return (header(qid, 0x0100 if rd else 0, 1, 0, 0, 1 if edns else 0)
            + question(name_wire(name), qtype, qclass) + add)


def _issue10() -> dict[str, bytes]:
    q = question(name_wire("www.example.test."))
    long_name = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 octets
    return {
        # An OPT record in the answer section (RFC 6891 §6.1.1: only in additional).
        "opt-in-answer": header(0x0A01, 0x0100, 1, 1, 0, 0) + q + opt_rr(),
        # Two OPT records (RFC 6891 §6.1.1: FORMERR).
        "two-opts": header(0x0A02, 0x0100, 1, 0, 0, 2) + q + opt_rr() + opt_rr(),
        # A response (QR=1) asking ANY: never answered.
        "qr-any": header(0x0A03, 0x8100, 1, 0, 0, 0) + question(name_wire("www.example.test."), 255),
        # A question name over 255 octets (RFC 1035 §2.3.4).
        "long-question": header(0x0A04, 0x0100, 1, 0, 0, 0) + question(long_name),
    }


ISSUE10: dict[str, bytes] = _issue10()
# What a correct server does with each: FORMERR, or no reply at all (None).
ISSUE10_EXPECTED: dict[str, int | None] = {
    "opt-in-answer": 1, "two-opts": 1, "qr-any": None, "long-question": 1,
}


def is_well_formed_query(wire: bytes) -> bool:
    """One question (uncompressed, at most 255 octets, labels <= 63), QR=0, opcode QUERY, no
    answer or authority records, at most one OPT (root owner, version 0) that ends the packet.

    Such a packet must get an answer from a server, whatever it says (RFC 1035 §4.1.1).
    """
    n = len(wire)
    if n < 17:
        return False
    _qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", wire)
    if flags & 0xF800 or qd != 1 or an or ns or ar > 1:
        return False
    pos = 12
    while True:
        if pos >= n:
            return False
        length = wire[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:
            return False
        pos += 1 + length
    if pos - 12 > 255 or pos + 4 > n:
        return False
    pos += 4
    if ar == 0:
        return pos == n
    if pos + 11 > n or wire[pos] != 0:
        return False
    rtype, _cls, ttl, rdlen = struct.unpack_from("!HHIH", wire, pos + 1)
    return rtype == OPT and not (ttl >> 16) & 0xFF and pos + 11 + rdlen == n and _options_ok(
        wire[pos + 11:])


COOKIE, PADDING = 10, 12


def _options_ok(options: bytes) -> bool:
    """Only options whose content cannot make a server refuse the query: a COOKIE of a valid
    length (RFC 7873 §4: 8, or 16 to 40 octets) and PADDING (RFC 7830). Anything else (an
    ECS with a bad family, say) may rightly get a FORMERR without the question (RFC 7871
    §7.1.2), which the harness could not tell from a reply to another packet."""
    pos = 0
    while pos < len(options):
        if pos + 4 > len(options):
            return False
        code, length = struct.unpack_from("!HH", options, pos)
        if code == COOKIE:
            if not (length == 8 or 16 <= length <= 40):
                return False
        elif code != PADDING:
            return False
        pos += 4 + length
    return pos == len(options)


# ---- structure-aware messages (hypothesis) -----------------------------------------------

labels = st.one_of(
    st.sampled_from([b"www", b"host", b"example", b"test", b"api", b"aws", b"WwW", b"*", b"a" * 63]),
    st.binary(min_size=1, max_size=63),
)


@st.composite
def names(draw: st.DrawFn) -> bytes:
    """A wire name: a known one, random labels (sometimes past 255 octets), or a bad pointer."""
    kind = draw(st.sampled_from(["known", "known", "labels", "long", "pointer", "badlabel"]))
    if kind == "known":
        return name_wire(draw(st.sampled_from(NAMES)))
    if kind == "labels":
        return b"".join(bytes([len(lab)]) + lab for lab in draw(st.lists(labels, max_size=6))) + b"\x00"
    if kind == "long":
        n = draw(st.integers(3, 5))
        return b"".join(b"\x3f" + b"x" * 63 for _ in range(n)) + b"\x00"
    if kind == "pointer":
        # RFC 1035 §4.1.4 pointers: into the header, to itself, forward, or past the end.
        target = draw(st.sampled_from([0, 2, 12, 13, 0x3FFF, draw(st.integers(0, 0x3FFF))]))
        prefix = draw(st.sampled_from([b"", b"\x03www"]))
        return prefix + struct.pack("!H", 0xC000 | target)
    return draw(st.sampled_from([b"\x40" + b"x" * 64 + b"\x00", b"\x80abc\x00", b"\x05ab", b""]))


@st.composite
def records(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["opt", "opt", "a", "txt", "junk", "short"]))
    owner = draw(names())
    if kind == "opt":
        options = draw(st.sampled_from([
            b"", struct.pack("!HH", 10, 8) + b"\x01" * 8,            # client cookie
            struct.pack("!HH", 10, 5) + b"\x01" * 5,                  # malformed cookie length
            struct.pack("!HH", 8, 4) + b"\x00\x01\x18\x00",           # ECS /24, no address bytes
            struct.pack("!HH", 8, 2) + b"\x00\x09",                   # ECS with a bad family
            struct.pack("!HH", 12, 3) + b"\x00\x00\x00",              # padding
            struct.pack("!HH", 15, 1) + b"\x00",                      # EDE, too short
            struct.pack("!HH", 65001, 40),                            # option longer than RDATA
        ]))
        return opt_rr(draw(st.sampled_from([0, 512, 1232, 4096, 65535])),
                      draw(st.sampled_from([0, 0, 1, 255])), draw(st.booleans()), options,
                      owner=draw(st.sampled_from([b"\x00", b"\x00", owner])))
    if kind == "a":
        return rr(owner, 1, draw(st.sampled_from(QCLASSES)), 300, b"\xc0\x00\x02\x01")
    if kind == "txt":
        text = draw(st.binary(max_size=40))
        return rr(owner, 16, 1, 60, bytes([len(text)]) + text)
    if kind == "junk":
        return rr(owner, draw(st.integers(0, 65535)), draw(st.integers(0, 65535)),
                  draw(st.integers(0, 2**32 - 1)), draw(st.binary(max_size=30)))
    # RDLENGTH promises more than is there.
    return rr(owner, 1, 1, 300, b"\x01\x02", rdlen=draw(st.integers(3, 65535)))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A DNS message built section by section; counts may lie, sections may be odd."""
    qs = draw(st.lists(st.builds(question, names(), st.sampled_from(QTYPES),
                                 st.sampled_from(QCLASSES)), min_size=0, max_size=3))
    qs = qs or ([] if draw(st.booleans()) else [question(name_wire("host.example.test."))])
    an = draw(st.lists(records(), max_size=2))
    ns = draw(st.lists(records(), max_size=1))
    ar = draw(st.lists(records(), max_size=3))
    flags = draw(st.sampled_from([0x0100, 0x0000, 0x0110, 0x8100, 0x2800, 0x0900, 0x0040,
                                  0x0300, 0x7800, draw(st.integers(0, 0xFFFF))]))
    counts = [len(qs), len(an), len(ns), len(ar)]
    if draw(st.integers(0, 4)) == 0:  # sometimes a count lies
        i = draw(st.integers(0, 3))
        counts[i] = draw(st.sampled_from([0, counts[i] + 1, 0xFFFF]))
    body = b"".join(qs) + b"".join(an) + b"".join(ns) + b"".join(ar)
    wire = header(draw(st.integers(0, 0xFFFF)), flags, *counts) + body
    cut = draw(st.sampled_from([None, None, None, draw(st.integers(0, len(wire)))]))
    return wire if cut is None else wire[:cut]


@st.composite
def well_formed_queries(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(NAMES))
    qtype = draw(st.sampled_from([1, 28, 16, 15, 2, 6, 65280, 43, 5, 33, 255]))
    return query(name, qtype, qid=draw(st.integers(0, 0xFFFF)), rd=draw(st.booleans()),
                 edns=draw(st.booleans()), qclass=draw(st.sampled_from([1, 1, 1, 3])))


def harvest(strategy: st.SearchStrategy[bytes], n: int, seed: int = 0) -> list[bytes]:
    """`n` examples drawn from `strategy` (a pool for `Mutator`), reproducibly from `seed`."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    out: list[bytes] = []

    @hseed(seed)
    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(wire: bytes) -> None:
        out.append(wire)

    collect()
    return out


# ---- fast raw mutation --------------------------------------------------------------------


class Mutator:
    """Seeded packet source: pool members as they are, mutated, or random bytes.

    `next()` returns (wire, well_formed). Mixture: 25% well-formed queries (so the harness
    can check each is answered), 45% mutated pool members, 20% structure-aware messages as
    drawn, 5% random bytes, 5% the issue-10 crashers.
    """

    def __init__(self, pool: Sequence[bytes], good: Sequence[bytes], seed: int = 0) -> None:
        if not pool or not good:
            raise ValueError("Mutator needs a non-empty pool and well-formed queries")
        self.rng = random.Random(seed)
        self.pool = list(pool) + list(good) + list(ISSUE10.values())
        self.good = list(good)
        self.crashers = list(ISSUE10.values())
        self.ops: list[Callable[[bytearray], None]] = [
            self._flip, self._set, self._cut, self._insert, self._delete, self._dup, self._splice,
        ]

    def next(self) -> tuple[bytes, bool]:
        r = self.rng.random()
        if r < 0.25:
            wire = bytearray(self.rng.choice(self.good))
            wire[0:2] = self.rng.getrandbits(16).to_bytes(2, "big")
            return bytes(wire), True
        if r < 0.70:
            wire = bytearray(self.rng.choice(self.pool))
            for _ in range(self.rng.randrange(1, 5)):
                self.rng.choice(self.ops)(wire)
        elif r < 0.90:
            wire = bytearray(self.rng.choice(self.pool))
        elif r < 0.95:
            wire = bytearray(self.rng.randbytes(self.rng.randrange(0, 600)))
        else:
            wire = bytearray(self.rng.choice(self.crashers))
        out = bytes(wire)
        return out, is_well_formed_query(out)

    def _pos(self, wire: bytearray) -> int:
        return self.rng.randrange(len(wire)) if wire else 0

    def _flip(self, w: bytearray) -> None:
        if w:
            w[self._pos(w)] ^= 1 << self.rng.randrange(8)

    def _set(self, w: bytearray) -> None:
        if w:
            w[self._pos(w)] = self.rng.choice((0, 0xFF, 0xC0, 0x3F, 0x29, self.rng.randrange(256)))

    def _cut(self, w: bytearray) -> None:
        del w[self._pos(w):]

    def _insert(self, w: bytearray) -> None:
        i = self._pos(w)
        w[i:i] = self.rng.randbytes(self.rng.randrange(1, 9))

    def _delete(self, w: bytearray) -> None:
        i = self._pos(w)
        del w[i:i + self.rng.randrange(1, 9)]

    def _dup(self, w: bytearray) -> None:
        i = self._pos(w)
        j = min(len(w), i + self.rng.randrange(1, 32))
        w[j:j] = w[i:j]

    def _splice(self, w: bytearray) -> None:
        other = self.rng.choice(self.pool)
        i, j = self._pos(w), self.rng.randrange(len(other)) if other else 0
        w[i:] = other[j:]
