"""The answer pipeline: one query in wire format and the zone data in, one response out.

Pure core: no sockets, no clock, no module-level randomness (the weighted pick comes from an
injected `rng` or `Picker`), no trio. Modelled on Knot's staged pipeline
(`src/knot/nameserver/process_query.c`, `internet.c`):

1. **classify** the packet: drop what is not a query, FORMERR what is malformed, NOTIMP unknown
   opcodes, BADVERS EDNS versions above 0, REFUSED zone transfers and foreign classes;
2. **prepare**: find the served zone that is the closest enclosing one (for DS at a zone's
   apex, its parent's when served, RFC 4035 §3.1.4.1), else REFUSED with EDE 20 (this is
   not an open resolver);
3. **answer** (`solve`): the RFC 1034 §4.3.2 lookup, section by section, returning an `Outcome`,
   with DNAME substitution (RFC 6672 §3.2) met on the way down as a zone cut is.
   Following Route 53 aliases and choosing a member of a routing policy's set (weighted,
   failover, multivalue, latency, geolocation, IP-based, each with health) are steps of this
   stage, so they compose with CNAME chains, wildcards and delegations instead of being
   special cases. Where the client is comes from EDNS Client Subnet (RFC 7871) or the source
   address, through the operator's table (`authd.dns.geo`); health from the serving index's map
   of health-check statuses (`ZoneTable.health`), healthy when unknown;
4. **finish**: flags, EDNS(0) OPT, negative-answer SOA, and rendering to wire with truncation
   to the client's limit (`Reply.to_wire`).

A failure inside the answer stage that has no rcode of its own becomes SERVFAIL (as in Knot),
with the reason in `Reply.problem` so the shell can log it.
"""

from __future__ import annotations

import bisect
import enum
import functools
import ipaddress
import math
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import dns.edns
import dns.exception
import dns.flags
import dns.ipv6
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset
import dns.set

from authd import gcpause
from authd.dns import rdatawire
from authd.dns.geo import UNKNOWN, GeoMap, Location, region_continent, region_distance
from authd.dns.wire import COMPRESSIBLE, Renderer, parse_fast
from authd.model.records import RecordKey, RecordSet

# --------------------------------------------------------------------------------------------
# Limits and constants

MAX_CHAIN = 16  # CNAME and alias steps followed for one query before we call it a loop
MAX_MULTIVALUE = 8  # Route 53 multivalue answer: "up to eight healthy records"
MAX_PATHS = 4096  # weighted outcomes enumerated for one question (precompute / resolve_all)
OUR_PAYLOAD = 1232  # EDNS(0) UDP payload we advertise and cap at (DNS flag day 2020, as NSD)
MIN_UDP = 512  # RFC 1035 §4.2.1, and the floor for EDNS payloads (RFC 6891 §6.2.3)
TCP_LIMIT = 65535  # RFC 1035 §4.2.2 two-byte length prefix

IN = dns.rdataclass.IN
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
CNAME = dns.rdatatype.CNAME
DS = dns.rdatatype.DS
DNAME = dns.rdatatype.DNAME
A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
ANY = dns.rdatatype.ANY
XFR_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
WILDCARD = b"*"
# Header and EDNS flag bits as plain ints (enum arithmetic is slow on the per-query path)
QR, AA, TC, RD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0010
DO = 0x8000  # in the OPT TTL's flags
MAX_NAME = 255  # octets in wire form (RFC 1035 §2.3.4)
# Extended DNS Errors (RFC 8914 §4), the ones Knot and NSD attach (tests/test_dns_differential.py)
EDE_OTHER, EDE_PROHIBITED, EDE_NOT_AUTHORITATIVE = 0, 18, 20
EDE_OPTION = 15  # the EDNS option code of an EDE (RFC 8914 §2)


class Outcome(enum.Enum):
    """What the answer stage found, as Knot's solvers report it (`internet.c`)."""

    HIT = "hit"  # the asked data (possibly after CNAMEs/aliases)
    MISS = "miss"  # NXDOMAIN
    NODATA = "nodata"  # the name exists, the type does not (includes a dangling alias)
    DELEG = "deleg"  # a referral to a child zone
    FOLLOW = "follow"  # a CNAME chain that leaves the zone: the answer is the chain so far
    REFUSED = "refused"  # not ours to answer
    FORMERR = "formerr"
    NOTIMP = "notimp"
    BADVERS = "badvers"
    SERVFAIL = "servfail"  # alias loop or too deep a tree
    YXDOMAIN = "yxdomain"  # a DNAME substitution longer than 255 octets (RFC 6672 §2.2)


# --------------------------------------------------------------------------------------------
# Weighted picking: the one source of randomness, injected


class Picker(Protocol):
    def pick(self, cumulative: Sequence[int]) -> int:
        """Index of the chosen member, given cumulative weights (all-zero handled by caller)."""
        ...


class RandomPicker:
    """Route 53 weighted routing: member i with probability weight_i / sum (O(log n) bisect)."""

    __slots__ = ("_random",)

    def __init__(self, rng: random.Random | Callable[[], float]):
        self._random: Callable[[], float] = rng.random if isinstance(rng, random.Random) else rng

    def pick(self, cumulative: Sequence[int]) -> int:
        return bisect.bisect_right(cumulative, self._random() * cumulative[-1])


Rng = random.Random | Callable[[], float] | Picker


def as_picker(rng: Rng) -> Picker:
    if hasattr(rng, "pick"):
        return rng  # type: ignore[return-value]
    return RandomPicker(rng)  # type: ignore[arg-type]


class _Explorer:
    """A picker that replays a script of choices and records every choice point it meets.

    Used to enumerate all weighted outcomes with their probabilities (`enumerate_outcomes`),
    so precomputed answers and the checker's `resolve_all` go through the same answer logic.
    """

    def __init__(self, script: tuple[int, ...]):
        self.script = script
        self.trace: list[tuple[int, int]] = []  # (chosen option, number of options)
        self.probability = 1.0

    def pick(self, cumulative: Sequence[int]) -> int:
        options = [i for i in range(len(cumulative)) if _weight_at(cumulative, i) > 0]
        depth = len(self.trace)
        k = self.script[depth] if depth < len(self.script) else 0
        self.trace.append((k, len(options)))
        chosen = options[k]
        self.probability *= _weight_at(cumulative, chosen) / cumulative[-1]
        return chosen


def _weight_at(cumulative: Sequence[int], i: int) -> int:
    return cumulative[i] - (cumulative[i - 1] if i else 0)


# --------------------------------------------------------------------------------------------
# Zone data as the answer stage reads it
#
# Names are keyed by their lower-cased label tuples (`Key`), which hash and compare in C; a
# dnspython Name hashes and compares label by label in Python, which dominated the full path.

Key = tuple[bytes, ...]


def key_of(name: dns.name.Name) -> Key:
    """Lower-cased labels, root label included (RFC 4343: names compare case-insensitively)."""
    return tuple(map(bytes.lower, name.labels))


class WireRRset(dns.rrset.RRset):
    """An RRset from zone data, with each rdata's wire form rendered once at load."""

    __slots__ = ["wires", "texts", "tails"]

    def __init__(self, name: dns.name.Name, rdclass: int, rdtype: int):
        super().__init__(name, rdclass, rdtype)
        self.wires: tuple[bytes, ...] = ()
        self.texts: tuple[str, ...] = ()
        self.tails: tuple[bytes, ...] = ()  # type..rdata per RR, when no name is compressible

    def seal(self) -> WireRRset:
        """Render once what every answer reuses (call after the TTL is final)."""
        self.wires = tuple(rd.to_wire() for rd in self)
        self.texts = tuple(rd.to_text() for rd in self)
        if self.rdtype not in COMPRESSIBLE:
            head = (self.rdtype.to_bytes(2, "big") + self.rdclass.to_bytes(2, "big")
                    + self.ttl.to_bytes(4, "big"))
            self.tails = tuple(head + len(w).to_bytes(2, "big") + w for w in self.wires)
        return self


_ITEMS = dns.set.Set.__dict__["items"]  # the slot every dnspython set operation goes through
_WIRES = WireRRset.__dict__["wires"]


class PackedRRset(WireRRset):
    """An RRset of zone data built from its texts and wire forms (`authd.rdatawire`, or the
    hand parser of addresses `_addresses`), without dnspython's constructors: answers render
    from `wires` and `tails`, so loading a zone or applying a change batch builds no rdata
    object. The dnspython rdata are made from the texts only when something reads them (a
    CNAME's target, an NS for glue, AXFR, `Reply.message`, tests), and then kept.

    Every dnspython set operation reads the `items` slot, which this property fills from the
    texts on first use (the same rdata objects `dns.rdata.from_text` would give).
    """

    __slots__ = ["_pending"]

    @classmethod
    def of(cls, name: dns.name.Name, rdtype: int, ttl: int, texts: tuple[str, ...],
           wires: tuple[bytes, ...]) -> PackedRRset:
        """Sealed at once; the `items` slot stays empty until the rdata are asked for."""
        self = _new_rrset(cls)
        self._pending = True
        self.name = name
        self.rdclass = IN
        self.rdtype = _RDTYPES[rdtype]
        self.covers = _NONE
        self.deleting = None
        self.ttl = ttl
        self.texts = texts
        if rdtype in COMPRESSIBLE:
            self.tails = ()
            self.wires = wires
        else:
            # the wires are the tails' ends: kept once (`wires` cuts them out when asked)
            head = rdtype.to_bytes(2, "big") + b"\x00\x01" + ttl.to_bytes(4, "big")
            self.tails = tuple([head + len(w).to_bytes(2, "big") + w for w in wires])
        return self

    @property  # type: ignore[override]
    def wires(self) -> tuple[bytes, ...]:
        try:
            return _WIRES.__get__(self)
        except AttributeError:  # never set: the rdata are the tails' ends (after 10 octets)
            return tuple([t[10:] for t in self.tails])

    @wires.setter
    def wires(self, value: tuple[bytes, ...]) -> None:
        _WIRES.__set__(self, value)

    @property  # type: ignore[override]
    def items(self) -> dict[dns.rdata.Rdata, None]:
        if self._pending:
            self._pending = False
            rdtype = self.rdtype
            if rdtype in (A, AAAA):
                cls = dns.rdtypes.IN.A.A if rdtype == A else dns.rdtypes.IN.AAAA.AAAA
                made = {cls(IN, rdtype, t): None for t in self.texts}
            else:
                made = {dns.rdata.from_text(IN, rdtype, t, origin=dns.name.root,
                                            relativize=False): None for t in self.texts}
            _ITEMS.__set__(self, made)
        return _ITEMS.__get__(self)

    @items.setter
    def items(self, value: dict[dns.rdata.Rdata, None]) -> None:
        self._pending = False
        _ITEMS.__set__(self, value)

    def __len__(self) -> int:
        return len(self.texts) if self._pending else len(_ITEMS.__get__(self))

    def seal(self) -> WireRRset:
        if self._pending:
            return self  # sealed at construction, and nothing has touched the rdata since
        return super().seal()


_new_rrset = object.__new__
_RDTYPES = {int(t): t for t in dns.rdatatype.RdataType}
_NONE = dns.rdatatype.NONE


class AddressRRset(PackedRRset):
    """A packed A or AAAA RRset (`_addresses` parses its values by hand)."""

    __slots__: list[str] = []

    def __init__(self, name: dns.name.Name, rdtype: int, ttl: int, texts: tuple[str, ...],
                 wires: tuple[bytes, ...]):
        super().__init__(name, IN, rdtype)  # sets items = {} through the setter below
        self._pending = True
        self.ttl = ttl
        self.texts = texts
        self.wires = wires
        head = rdtype.to_bytes(2, "big") + b"\x00\x01" + ttl.to_bytes(4, "big")
        size = b"\x00\x04" if rdtype == A else b"\x00\x10"
        self.tails = tuple([head + size + w for w in wires])


@dataclass(frozen=True, slots=True)
class Plain:
    rrset: WireRRset
    key: Key  # the owner's key


@dataclass(frozen=True, slots=True)
class AliasTo:
    target: Key


@dataclass(frozen=True, slots=True)
class Member:
    set_identifier: str
    weight: int
    data: Plain | AliasTo
    health: str | None = None  # the HealthCheckId whose status decides this member's health
    evaluate: bool = False  # alias EvaluateTargetHealth: healthy only if its target is
    # what the policy routes on: "PRIMARY"/"SECONDARY", a Region, a geolocation
    # (continent, country, subdivision), a CIDR location name; None for weighted/multivalue
    where: object = None

    @property
    def checked(self) -> bool:
        return self.health is not None or self.evaluate


@dataclass(frozen=True, slots=True)
class Weighted:
    """Members sorted by set identifier; `cumulative` has the weights summed, or 1 each when
    every weight is 0 (Route 53: all-zero weights are picked with equal probability)."""

    members: tuple[Member, ...]
    cumulative: tuple[int, ...]
    checked: bool = False  # some member has a health check or evaluates its target's health


@dataclass(frozen=True, slots=True)
class Routed:
    """A set of members under one of the other routing policies (Route 53 developer guide,
    "Choosing a routing policy"): "failover", "multivalue", "latency", "geolocation" or
    "cidr" (with `collection`, the CIDR collection id every member names)."""

    policy: str
    members: tuple[Member, ...]
    collection: str | None = None


Entry = Plain | AliasTo | Weighted | Routed


GroupKey = tuple[str, str]  # (owner text, type text): the record sets answering one name and type


@dataclass
class Zone:
    """One served zone: record data by owner key and type, plus what the lookup needs.

    Built whole from a snapshot (`build`) and then updated in place, one change batch at a
    time (`update`), touching only the names and types the batch names: a change costs the
    size of the batch (and of any weighted set it edits), not the size of the zone.
    """

    origin: dns.name.Name
    okey: Key  # the origin's key
    nodes: dict[Key, dict[int, Entry]]
    existing: set[Key]  # every owner name and every empty non-terminal
    cuts: set[Key]  # delegation points (names below the apex that have NS)
    soa: WireRRset
    negative_soa: WireRRset  # TTL = min(SOA TTL, MINIMUM), RFC 2308 §3
    records: dict[RecordKey, RecordSet] = field(default_factory=dict)
    # For `update`: how many existing names sit directly below each existing name (so an
    # empty non-terminal disappears with its last descendant), and the set identifiers of
    # every weighted group (a plain group is the one record set keyed with identifier None).
    kids: dict[Key, int] = field(default_factory=dict)
    weighted: dict[GroupKey, set[str | None]] = field(default_factory=dict)
    dnames: set[Key] = field(default_factory=set)  # owners of a DNAME (RFC 6672)

    @property
    def record_sets(self) -> tuple[RecordSet, ...]:
        return tuple(self.records.values())

    @classmethod
    def build(cls, origin: str, record_sets: Iterable[RecordSet]) -> Zone:
        """Compile record sets into the lookup structure. Raises ValueError without an SOA."""
        records = {rs.key: rs for rs in record_sets}
        with gcpause.paused(len(records)):
            return cls._build(origin, records)

    @classmethod
    def _build(cls, origin: str, records: dict[RecordKey, RecordSet]) -> Zone:
        org = dns.name.from_text(origin)
        okey = key_of(org)
        # only the (name, type) pairs where a set has an identifier are grouped: the rest
        # (the bulk of a zone) are one plain set each, compiled as they come
        multi = {key[:2] for key in records if key[2] is not None}
        grouped: dict[GroupKey, list[RecordSet]] = {}
        # a big zone compiles each set once: the shared cache would only churn
        one = _compiled if len(records) <= _CACHED_BUILD else _compiled.__wrapped__
        nodes: dict[Key, dict[int, Entry]] = {}
        for key, rs in records.items():
            if multi and key[:2] in multi:
                grouped.setdefault(key[:2], []).append(rs)
                continue
            entry = one(rs)
            k = entry.key if type(entry) is Plain else _owner(key[0])[1]
            node = nodes.get(k)
            if node is None:
                nodes[k] = {_rdtype(key[1]): entry}
            else:
                node[_rdtype(key[1])] = entry
        weighted: dict[GroupKey, set[str | None]] = {}
        for gk, group in grouped.items():
            nodes.setdefault(_owner(gk[0])[1], {})[_rdtype(gk[1])] = _compile(group)
            weighted[gk] = {rs.set_identifier for rs in group}
        soa_entry = nodes.get(okey, {}).get(SOA)
        soa, neg = _soas(origin, org, soa_entry)
        zone = cls(org, okey, nodes, set(), set(), soa, neg, records, {}, weighted)
        existing, kids, n = zone.existing, zone.kids, len(okey)
        for k, node in nodes.items():
            parent = k[1:]
            if len(k) > n and parent in existing and k not in existing:
                # the usual case, inline: a name whose parent exists already (`_add_name`)
                existing.add(k)
                kids[parent] = kids.get(parent, 0) + 1
            else:
                zone._add_name(k)
            if NS in node and k != okey:
                zone.cuts.add(k)
            if DNAME in node:
                zone.dnames.add(k)
        return zone

    def update(self, puts: Iterable[RecordSet], deletes: Iterable[RecordKey],
               prepared: Prepared | None = None) -> None:
        """Apply one change batch in place: deletes, then puts (a put replaces its key).

        Everything that can fail (compiling rdata, the zone keeping a usable SOA) happens
        before the first mutation, so a ValueError (or a dnspython error) changes nothing.
        `prepared` (from `prepare`): plain sets compiled ahead of time, used for the very
        objects they were compiled from (compiling is a function of the set alone).
        """
        records, weighted, okey = self.records, self.weighted, self.okey
        # The batch's effect on the record sets, not yet applied, and which set identifiers
        # it touches per (name, type): the key itself when it is the only one (None is the
        # plain set), else a set of identifiers. Plain tuples serve as keys: a RecordKey is a
        # tuple, so both hash and compare alike, and building a NamedTuple costs a call.
        view: dict[RecordKey, RecordSet | None] = {}
        touched: dict[GroupKey, RecordKey | set[str | None]] = {}
        for key in deletes:
            if key not in records:
                continue  # deleting what is not there changes nothing
            size = len(view)
            view[key] = None
            if len(view) == size:
                continue  # the same key twice: done already
            gk = key[:2]
            was = touched.setdefault(gk, key)
            if was is not key:
                _touch(touched, gk, was, key)
        for rs in puts:
            key = rs.key
            view[key] = rs
            gk = key[:2]
            was = touched.setdefault(gk, key)
            if was is not key and was != key:
                _touch(touched, gk, was, key)
        # Compile every touched (name, type) as it will be. `ids` is what the group holds
        # afterwards, or None for a plain set with no weighted set around (the bulk of a
        # batch: nothing to track). A plain set simply going away (not an SOA, which the
        # zone must keep) cannot fail: it waits in `gone` for the mutation.
        compiled: list[tuple[Key, int, GroupKey, set[str | None] | None, Entry | None]] = []
        gone: list[GroupKey] = []
        soa, neg = self.soa, self.negative_soa
        # a big batch compiles each of its sets once: the shared cache would only churn (and
        # hashing a RecordSet to look it up is a fifth of compiling it), as in `_build`
        one = _compiled if len(touched) <= _CACHED_BATCH else _compile_set
        ready = prepared.get if prepared else _NO_PREPARED.get
        for gk, what in touched.items():
            old = weighted.get(gk)
            entry: Entry | None
            if old is None and type(what) is not set and what[2] is None:  # type: ignore[index]
                rs = view[what]  # type: ignore[index]
                if rs is None and gk[1] != "SOA":
                    gone.append(gk)
                    continue
                if rs is None:
                    entry = None
                else:
                    pair = ready(what)
                    entry = pair[1] if pair is not None and pair[0] is rs else one(rs)
                ids = None
                if type(entry) is Plain:  # the bulk of a batch: its owner's key is at hand
                    t = _rdtype(gk[1])
                    if t == SOA and entry.key == okey:
                        soa, neg = _soas(self.origin.to_text(), self.origin, entry)
                    compiled.append((entry.key, t, gk, None, entry))
                    continue
            else:
                name, rtype = gk
                candidates = set(old) if old is not None else set()
                candidates.add(None)
                if type(what) is set:
                    candidates |= what
                else:
                    candidates.add(what[2])  # type: ignore[index]
                group = []
                ids = set()
                for ident in candidates:
                    key = (name, rtype, ident)
                    rs = view[key] if key in view else records.get(key)  # type: ignore[call-overload]
                    if rs is not None:
                        group.append(rs)
                        ids.add(ident)
                entry = _compile(group) if group else None
            k, t = _owner(gk[0])[1], _rdtype(gk[1])
            if t == SOA and k == okey:
                soa, neg = _soas(self.origin.to_text(), self.origin, entry)
            compiled.append((k, t, gk, ids, entry))
        # --- nothing below can fail: mutate ---
        for key, rs in view.items():
            if rs is None:
                records.pop(key, None)
            else:
                records[key] = rs
        nodes, cuts = self.nodes, self.cuts
        for k, t, gk, ids, entry in compiled:
            if ids is not None:
                if len(ids) > 1 or (ids and None not in ids):
                    weighted[gk] = ids
                elif gk in weighted:
                    del weighted[gk]
            node = nodes.get(k)
            if entry is not None:
                if node is None:
                    node = nodes[k] = {}
                    self._add_name(k)
                node[t] = entry
            elif node is not None:
                node.pop(t, None)
                if not node:
                    del nodes[k]
                    self._drop_name(k)
            if t == NS and k != okey:
                if entry is not None:
                    cuts.add(k)
                else:
                    cuts.discard(k)
            elif t == DNAME:
                if entry is not None:
                    self.dnames.add(k)
                else:
                    self.dnames.discard(k)
        # (the order of additions and removals does not matter: `existing` and `kids` follow
        # from the set of owner names alone)
        for name, rtype in gone:
            k, t = _owner(name)[1], _rdtype(rtype)
            node = nodes.get(k)
            if node is not None:
                node.pop(t, None)
                if not node:
                    del nodes[k]
                    self._drop_name(k)
            if t == NS:
                cuts.discard(k)
            elif t == DNAME:
                self.dnames.discard(k)
        self.soa, self.negative_soa = soa, neg

    def _add_name(self, k: Key) -> None:
        """A new owner: it and its missing ancestors (empty non-terminals) now exist."""
        existing, kids = self.existing, self.kids
        n = len(self.okey)
        while k not in existing and len(k) >= n and k[len(k) - n:] == self.okey:
            existing.add(k)
            if len(k) == n:
                break
            k = k[1:]
            kids[k] = kids.get(k, 0) + 1

    def _drop_name(self, k: Key) -> None:
        """An owner lost its last record set (its node is gone): it, and each ancestor left with
        no records and nothing below, stop existing (RFC 4592 §2.2.2: an ENT exists only
        through its descendants).

        The questions are ordered so that the usual case stops early: hashing a name's key is
        most of the cost here, and a name's parent usually has other names below it.
        """
        existing, kids, nodes = self.existing, self.kids, self.nodes
        n = len(self.okey)
        if len(k) <= n or k in kids:
            return  # the apex stays; a name with names below it stays, as an ENT
        while True:
            try:
                existing.remove(k)  # (a name without a count in `kids` has nothing below it)
            except KeyError:
                return  # not a name of this zone: it never counted in `kids` either
            k = k[1:]
            left = kids.get(k, 0) - 1
            if left > 0:
                kids[k] = left
                return
            kids.pop(k, None)
            if len(k) <= n or k in nodes:
                return

    def contains(self, k: Key) -> bool:
        n = len(self.okey)
        return len(k) >= n and k[len(k) - n:] == self.okey


# a plain set's key -> (that very set, its compiled entry): `prepare`'s result
Prepared = dict[RecordKey, tuple[RecordSet, "Plain | AliasTo"]]
_NO_PREPARED: Prepared = {}


def prepare(puts: Iterable[RecordSet], over: Callable[[], bool] | None = None) -> Prepared:
    """Compile a change batch's plain sets (no set identifier) ahead of `Zone.update`, as it
    would compile them, so that the work can overlap the store's commit (issue 12). What does
    not compile is left out (`update` compiles it again and raises there, where a failure
    is handled); nothing here raises or changes any zone. `over()`: asked every 32 sets,
    True stops the work and leaves the rest to `update` (the shell's time budget)."""
    puts = list(puts)
    one = _compiled if len(puts) <= _CACHED_BATCH else _compile_set
    out: Prepared = {}
    for i, rs in enumerate(puts):
        if over is not None and not i & 31 and over():
            break
        if rs.set_identifier is None:
            try:
                out[rs.key] = (rs, one(rs))
            except Exception:  # noqa: BLE001, S112 - update compiles it again and says why
                continue
    return out


def _touch(touched: dict[GroupKey, RecordKey | set[str | None]], gk: GroupKey,
           was: RecordKey | set[str | None], key: RecordKey) -> None:
    """A second key for one (name, type) in a batch: track its set identifiers as a set."""
    if type(was) is set:
        was.add(key[2])
    else:
        touched[gk] = {was[2], key[2]}  # type: ignore[index]


def _soas(origin: str, org: dns.name.Name, entry: Entry | None) -> tuple[WireRRset, WireRRset]:
    """The apex SOA and its negative-answer copy, or ValueError if there is no usable SOA."""
    if not isinstance(entry, Plain) or not len(entry.rrset):
        raise ValueError(f"zone {origin} has no SOA at its apex")
    soa = entry.rrset
    if type(soa) is PackedRRset and soa._pending and len(soa.texts) == 1:
        # packed (`rdatawire`) and never parsed: MINIMUM is the rdata's last 32 bits (RFC
        # 1035 §3.3.13), so the negative copy reuses its text and wire. Parsing the SOA with
        # dnspython to read it was ~0.5 ms of every change batch (each has a new serial).
        minimum = int.from_bytes(soa.wires[0][-4:], "big")
        return soa, PackedRRset.of(org, SOA, min(soa.ttl, minimum), soa.texts, soa.wires)
    neg = WireRRset(org, IN, SOA)
    neg.update(soa)
    neg.ttl = min(soa.ttl, soa[0].minimum)  # RFC 2308 §3
    return soa, neg.seal()


_CACHED_BUILD = 1 << 12  # record sets in a zone build that still go through `_compiled`'s cache
_CACHED_BATCH = 64  # (name, type)s in a change batch that still go through it (the checker's)

# Compiling a record set (parsing names and rdata with dnspython) costs far more than the rest
# of a zone build. Record sets are immutable values, so each is compiled once and shared by
# every zone version that holds it: a change rebuilds its zone from mostly cached parts, which
# the enactor's checker (one index per explored state) depends on.


# 1,024 owners (about 380 B each, 0.4 MB full): a batch's names repeat within the batch and
# the next few (a zone build asks twice per name, one after the other; the checker uses a few
# dozen), while a churning zone names new owners all day (bench soak: about 10 a second)
@functools.lru_cache(maxsize=1 << 10)
def _owner(text: str) -> tuple[dns.name.Name, Key]:
    """A name in presentation form as a dnspython Name, and its lookup key (`key_of`).

    A plain absolute name (no escapes, no IDNA) of at most 254 characters is valid as it
    stands: labels of 1 to 63 octets, only the last one empty, 255 octets in wire form
    (RFC 1035 §2.3.4). Such a Name is made as dnspython unpickles one (`Name.__setstate__`
    sets the labels slot directly), which skips its per-label checks, the bulk of a new name's
    cost, and when it is in lower case already (as record names are stored) its labels are its
    key. Everything else goes through `dns.name.from_text`, which raises on a bad name.
    `tests/test_index_fastpaths.py` checks both against dnspython.
    """
    if len(text) <= 254 and _PLAIN_NAME.fullmatch(text):
        first, _, rest = text.partition(".")
        labels = (first.encode(), *_suffix_labels(rest))  # a zone's names share their suffixes
        name = _new_name(dns.name.Name)
        _set(name, "labels", labels)
        low = text.lower()  # ASCII only here, so the same as lowering each label's bytes
        return name, labels if low == text else tuple(low.encode().split(b"."))
    name = dns.name.from_text(text)
    return name, key_of(name)


@functools.lru_cache(maxsize=1 << 12)
def _suffix_labels(text: str) -> tuple[bytes, ...]:
    return tuple(text.encode().split(b"."))


_new_name = object.__new__
_set = object.__setattr__  # past dnspython's immutability guard, as its own __setstate__ does


_PLAIN_NAME = re.compile(r"(?:[A-Za-z0-9_*-]{1,63}\.)+")  # absolute, LDH labels (and `*`, `_`)


@functools.lru_cache(maxsize=256)
def _rdtype(text: str) -> int:
    return dns.rdatatype.from_text(text)


# Small on purpose: a zone load or a change batch compiles each record set once, so only the
# checker's few, often repeated sets gain from it (76 distinct sets and 10 SOAs at 2 enactors
# and 3 plans); 65,536 entries kept every SOA a batch replaced and every deleted set, growing
# authd's memory by tens of MB (bench soak). An entry holds 1-2 KB (an A set 0.9 KB, a TXT
# 1.5 KB, an SOA 1.8 KB, by tracemalloc), so the 1,024 are under 2 MB full. An SOA has a new
# serial with every batch, so SOAs get their own few entries and never push out the sets that
# do repeat.
def _compiled(rs: RecordSet) -> Plain | AliasTo:
    return _compiled_soa(rs) if rs.rtype == "SOA" else _compiled_set(rs)


def _compile_set(rs: RecordSet) -> Plain | AliasTo:
    if rs.alias is not None:
        return AliasTo(_owner(rs.alias.dns_name)[1])
    (name, key), rdtype = _owner(rs.name), _rdtype(rs.rtype)
    if rdtype in (A, AAAA):
        parsed = _addresses(rdtype, rs.values)
        if parsed is not None:
            texts = rs.values if parsed[0] == rs.values else parsed[0]  # shared, not copied
            return Plain(AddressRRset.of(name, rdtype, rs.ttl or 0, texts, parsed[1]), key)
    elif rdtype in rdatawire.FAST_TYPES:
        parsed = rdatawire.encode(rdtype, rs.values)
        if parsed is not None:
            texts = rs.values if parsed[0] == rs.values else parsed[0]
            return Plain(PackedRRset.of(name, rdtype, rs.ttl or 0, texts, parsed[1]), key)
    rrset = WireRRset(name, IN, rdtype)
    for value in rs.values:
        rrset.add(_rdata(rdtype, value), rs.ttl)
    rrset.ttl = rs.ttl or 0
    return Plain(rrset.seal(), key)


_compiled_set = functools.lru_cache(maxsize=1 << 10)(_compile_set)
_compiled_soa = functools.lru_cache(maxsize=64)(_compile_set)
_compiled.__wrapped__ = _compile_set  # type: ignore[attr-defined]  # uncached, as for an lru_cache


_ADDRESS = re.compile(r"[0-9A-Fa-f.:]+")  # one bare token: nothing for the tokenizer to do


# RFC 1035 §3.4.1 dotted quad as dnspython's `inet_aton` takes it: four decimal octets without
# leading zeros, so exactly these spellings (which are also the only ones it prints)
_OCTETS = {str(i): i for i in range(256)}


def _addresses(rdtype: int, values: Iterable[str]) -> tuple[tuple[str, ...], tuple[bytes, ...]] | None:
    """Texts and wire forms of address values, as dnspython's A/AAAA rdata would give them
    (duplicates dropped, first kept, as the RRset's set semantics do), or None for anything
    the hand parser does not take: the caller then goes through dnspython, which raises on a
    malformed value. A hand-written fast path; `tests/test_index_fastpaths.py` checks it
    against dnspython."""
    texts: dict[bytes, str] = {}
    if rdtype == A:
        octet = _OCTETS
        for v in values:
            try:
                a, b, c, d = v.split(".")
                w = bytes((octet[a], octet[b], octet[c], octet[d]))
            except (ValueError, KeyError):
                return None
            if w not in texts:
                texts[w] = v  # canonical already: dnspython prints a valid quad as given
    else:
        for v in values:
            w = rdatawire.aaaa_canonical(v)  # canonical already (as stored): parsed by hand
            if w is not None:
                if w not in texts:
                    texts[w] = v
                continue
            if not _ADDRESS.fullmatch(v):
                return None
            try:
                w = dns.ipv6.inet_aton(v)
            except dns.exception.SyntaxError:
                return None
            if w not in texts:
                texts[w] = dns.ipv6.inet_ntoa(w)  # what AAAA's own constructor stores
    if not texts:
        return None
    return tuple(texts.values()), tuple(texts)


def _rdata(rdtype: int, value: str) -> dns.rdata.Rdata:
    """One value parsed. An address (the bulk of a change batch) is built directly, which is
    what `from_text` ends up doing after its tokenizer (same validation, a third of the cost)."""
    if rdtype in (A, AAAA) and _ADDRESS.fullmatch(value):
        return (dns.rdtypes.IN.A.A if rdtype == A else dns.rdtypes.IN.AAAA.AAAA)(IN, rdtype, value)
    return dns.rdata.from_text(IN, rdtype, value, origin=dns.name.root, relativize=False)


def _member(rs: RecordSet) -> Member:
    r = rs.routing
    evaluate = rs.alias is not None and rs.alias.evaluate_target_health
    if r is None:
        return Member(rs.set_identifier or "", rs.weight or 0, _compiled(rs), None, evaluate)
    where: object = None
    if r.failover is not None:
        where = r.failover
    elif r.region is not None:
        where = r.region
    elif r.geo is not None:
        where = (r.geo.continent, r.geo.country, r.geo.subdivision)
    elif r.cidr is not None:
        where = r.cidr[1]
    return Member(rs.set_identifier or "", rs.weight or 0, _compiled(rs), r.health_check_id,
                  evaluate, where)


def _compile(group: list[RecordSet]) -> Entry:
    if len(group) == 1 and group[0].set_identifier is None:
        # a simple set (a HealthCheckId alone does not route it: Route 53 answers it anyway),
        # compiled as `Zone.update` compiles one
        return _compiled(group[0])
    group = sorted(group, key=lambda rs: rs.set_identifier or "")
    members = tuple(_member(rs) for rs in group)
    # every set at a name and type has one policy (`authd.model.changes`); the first decides
    policy = group[0].policy
    if policy not in (None, "weighted"):
        cidr = group[0].routing.cidr if group[0].routing is not None else None
        return Routed(policy, members, cidr[0] if cidr else None)  # type: ignore[arg-type]
    all_zero = all(m.weight == 0 for m in members)
    cumulative: list[int] = []
    total = 0
    for m in members:
        total += 1 if all_zero else m.weight
        cumulative.append(total)
    return Weighted(members, tuple(cumulative), any(m.checked for m in members))


class ZoneTable:
    """The served zones, found by closest enclosing origin."""

    def __init__(self, zones: Iterable[Zone] = ()):
        self.zones: dict[Key, Zone] = {z.okey: z for z in zones}
        # what routing reads besides zone data, fed by the serving index from the journal:
        # health-check id -> healthy (unknown ids are healthy), the operator's location
        # table, and CIDR collections: id -> [(network, location name)], longest first
        self.health: dict[str, bool] = {}
        self.geomap: GeoMap | None = None
        self.cidr: dict[str, list[tuple[Any, str]]] = {}

    def add(self, zone: Zone) -> None:
        self.zones[zone.okey] = zone

    def remove(self, origin: dns.name.Name) -> None:
        self.zones.pop(key_of(origin), None)

    def find(self, qname: dns.name.Name | Key) -> Zone | None:
        k = qname if isinstance(qname, tuple) else key_of(qname)
        zones = self.zones
        for i in range(len(k)):
            zone = zones.get(k[i:])
            if zone is not None:
                return zone
        return None


# --------------------------------------------------------------------------------------------
# The answer stage


@dataclass
class Solution:
    outcome: Outcome
    rcode: int = dns.rcode.NOERROR
    aa: bool = True
    answer: list[AnswerRRset] = field(default_factory=list)
    authority: list[WireRRset] = field(default_factory=list)
    additional: list[WireRRset] = field(default_factory=list)
    glue_required: bool = False  # RFC 9471: in-domain glue that must fit, else TC=1
    problem: str | None = None  # why SERVFAIL, for the log
    ede: tuple[int, str] | None = None  # an Extended DNS Error (RFC 8914), sent under EDNS


def _refused(ede: int) -> Solution:
    """REFUSED, not authoritative, with the EDE Knot and NSD attach (RFC 8914 §4.21: 20 for
    a name in no zone we serve; §4.19: 18 for a transfer we do not allow, as NSD)."""
    return Solution(Outcome.REFUSED, rcode=dns.rcode.REFUSED, aa=False, ede=(ede, ""))


class _Servfail(Exception):
    pass


class Renamed:
    """Zone data answered under another owner (wildcard synthesis, alias answers).

    A view, not a copy: building a new dnspython RRset hashes every rdata, which cost more
    than the rest of the answer. `to_rrset()` gives a real RRset when one is needed.
    """

    __slots__ = ("name", "src")

    def __init__(self, name: dns.name.Name, src: WireRRset):
        self.name = name
        self.src = src

    rdtype = property(lambda self: self.src.rdtype)
    rdclass = property(lambda self: self.src.rdclass)
    ttl = property(lambda self: self.src.ttl)
    wires = property(lambda self: self.src.wires)
    texts = property(lambda self: self.src.texts)
    tails = property(lambda self: self.src.tails)

    def __iter__(self) -> Iterator[dns.rdata.Rdata]:
        return iter(self.src)

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> dns.rdata.Rdata:
        return self.src[i]

    def to_rrset(self) -> dns.rrset.RRset:
        out = dns.rrset.RRset(self.name, self.src.rdclass, self.src.rdtype)
        out.update(self.src)
        out.ttl = self.src.ttl
        return out


AnswerRRset = WireRRset | Renamed


def _owned(plain: Plain, owner: dns.name.Name, okey: Key) -> AnswerRRset:
    if plain.key == okey:
        return plain.rrset
    return Renamed(owner, plain.rrset)


class Client:
    """What routing knows of one query's client, and what it used of it.

    `location()` and `address()` mark the answer as depending on the client (`located`), so
    the serving index does not reuse it for other clients; `scope` is the prefix length the
    answer holds for, echoed as the ECS SCOPE PREFIX-LENGTH (RFC 7871 §7.2.1).
    """

    __slots__ = ("health", "geomap", "cidr", "_address", "_prefix", "_loc", "located", "scope")

    def __init__(self, zones: ZoneTable | None = None, address: str | None = None,
                 prefix: int | None = None):
        self.health: dict[str, bool] = zones.health if zones is not None else {}
        self.geomap = zones.geomap if zones is not None else None
        self.cidr: dict[str, list[tuple[Any, str]]] = zones.cidr if zones is not None else {}
        self._address, self._prefix = address, prefix
        self._loc: Location | None = None
        self.located = False
        self.scope = 0

    def _narrow(self, n: int | None) -> None:
        n = self._prefix if n is None else n
        if n is not None and n > self.scope:
            self.scope = n

    def address(self) -> tuple[str | None, int | None]:
        self.located = True
        return self._address, self._prefix

    def location(self) -> Location:
        self.located = True
        if self._loc is None:
            hit = (self.geomap.lookup(self._address, self._prefix)
                   if self.geomap is not None and self._address else None)
            if hit is None:
                self._loc = UNKNOWN
                self._narrow(None)
            else:
                self._loc = hit[0]
                self._narrow(hit[1])
        return self._loc

    def cidr_location(self, collection: str) -> str | None:
        """The location of the longest block of `collection` holding the client, if any."""
        address, prefix = self.address()
        blocks = self.cidr.get(collection)
        if not blocks or not address:
            self._narrow(None)
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if ip.version == 6 and ip.ipv4_mapped is not None:  # an IPv4 client of a dual-stack socket
            ip = ip.ipv4_mapped
        for net, loc in blocks:  # longest prefix first
            if net.version == ip.version and ip in net and (prefix is None or net.prefixlen <= prefix):
                self._narrow(net.prefixlen)
                return loc
        self._narrow(None)
        return None


_NO_CLIENT = Client()


def _healthy(zone: Zone, m: Member, qtype: int, client: Client, depth: int = 0) -> bool:
    """Route 53: a member is unhealthy when its health check is (unknown checks count as
    healthy), or when it is an alias with EvaluateTargetHealth whose target has no healthy
    record (developer guide, "How health checks work in complex configurations")."""
    if m.health is not None and not client.health.get(m.health, True):
        return False
    if m.evaluate and type(m.data) is AliasTo:
        node = zone.nodes.get(m.data.target)
        target = node.get(qtype) if node is not None else None
        return target is not None and _entry_healthy(zone, target, qtype, client, depth + 1)
    return True


def _entry_healthy(zone: Zone, entry: Entry, qtype: int, client: Client, depth: int) -> bool:
    if depth > MAX_CHAIN:
        return False
    if type(entry) is Plain:
        return True
    if type(entry) is AliasTo:
        node = zone.nodes.get(entry.target)
        target = node.get(qtype) if node is not None else None
        return target is not None and _entry_healthy(zone, target, qtype, client, depth + 1)
    return any(_healthy(zone, m, qtype, client, depth) for m in entry.members)  # type: ignore[union-attr]


def _uniform(n: int) -> tuple[int, ...]:
    return tuple(range(1, n + 1))


def _pick_weighted(zone: Zone, entry: Weighted, qtype: int, picker: Picker, client: Client) -> Member:
    """Weighted routing with health: unhealthy members are left out, and when every member
    is unhealthy all are considered (Route 53 developer guide, "Weighted routing")."""
    members = entry.members
    if entry.checked:
        ok = [m for m in members if _healthy(zone, m, qtype, client)]
        if ok and len(ok) < len(members):
            weights = [m.weight for m in ok]
            if not any(weights):
                return ok[picker.pick(_uniform(len(ok)))]
            cumulative, total = [], 0
            for w in weights:
                total += w
                cumulative.append(total)
            return ok[picker.pick(cumulative)]
    return members[picker.pick(entry.cumulative)]


def _route(zone: Zone, entry: Routed, qtype: int, picker: Picker,
           client: Client) -> Member | list[Member] | None:
    """The member (multivalue: the members) answering, or None: no member applies (NODATA)."""
    members = entry.members
    policy = entry.policy
    if policy == "failover":
        # PRIMARY while healthy, else SECONDARY; when both are unhealthy Route 53 answers with
        # the primary (developer guide, "Failover routing")
        primary = next((m for m in members if m.where == "PRIMARY"), None)
        secondary = next((m for m in members if m.where == "SECONDARY"), None)
        if primary is not None and (secondary is None or _healthy(zone, primary, qtype, client)):
            return primary
        if secondary is not None and (primary is None or _healthy(zone, secondary, qtype, client)):
            return secondary
        return primary
    ok = [m for m in members if _healthy(zone, m, qtype, client)]
    if policy == "multivalue":
        # up to eight healthy records, chosen at random; with none healthy, up to eight of
        # the unhealthy ones (developer guide, "Multivalue answer routing")
        pool = ok or list(members)
        if len(pool) <= MAX_MULTIVALUE:
            return pool
        # one uniform choice among the C(n, 8) subsets (a single choice point, so the serving
        # index can render every subset when there are few enough), unranked in order
        count = math.comb(len(pool), MAX_MULTIVALUE)
        if count <= MAX_PATHS:
            return _unrank(pool, MAX_MULTIVALUE, picker.pick(_uniform(count)))
        chosen = []
        for _ in range(MAX_MULTIVALUE):
            chosen.append(pool.pop(picker.pick(_uniform(len(pool)))))
        return sorted(chosen, key=lambda m: m.set_identifier)
    if policy == "latency":
        pool = ok or list(members)
        loc = client.location()
        if loc.region is None:
            # no region for the client: a region on its continent, else the first member
            near = [m for m in pool if loc.continent is not None
                    and region_continent(m.where) == loc.continent]  # type: ignore[arg-type]
            return (near or pool)[0]
        return min(pool, key=lambda m: region_distance(m.where, loc.region))  # type: ignore[arg-type]
    if policy == "geolocation":
        # the most specific location that matches: subdivision, country, continent, then the
        # default `*`; a matching record that is unhealthy gives way to the next broader one
        # (developer guide, "Geolocation routing"); no match and no default: NODATA
        loc = client.location()
        by_where = {m.where: m for m in members}
        order = []
        if loc.country is not None:
            if loc.subdivision is not None:
                order.append((None, loc.country, loc.subdivision))
            order.append((None, loc.country, None))
        if loc.continent is not None:
            order.append((loc.continent, None, None))
        order.append((None, "*", None))
        found = [by_where[w] for w in order if w in by_where]
        for m in found:
            if _healthy(zone, m, qtype, client):
                return m
        return found[0] if found else None
    if policy == "cidr":
        # IP-based routing: the location of the longest matching block of the collection,
        # else the `*` default record (developer guide, "IP-based routing")
        by_where = {m.where: m for m in members}
        where = client.cidr_location(entry.collection) if entry.collection else None
        matched = by_where.get(where) if where is not None else None
        default = by_where.get("*")
        if matched is not None and (default is None or _healthy(zone, matched, qtype, client)):
            return matched
        return default if default is not None else matched
    return members[0]


def _unrank(pool: list[Member], k: int, rank: int) -> list[Member]:
    """The `rank`-th k-subset of `pool` in lexicographic order (0 <= rank < C(len, k))."""
    out, start = [], 0
    for left in range(k, 0, -1):
        for i in range(start, len(pool)):
            below = math.comb(len(pool) - i - 1, left - 1)  # subsets that take pool[i] next
            if rank < below:
                out.append(pool[i])
                start = i + 1
                break
            rank -= below
    return out


def _merged(owner: dns.name.Name, members: list[Member]) -> WireRRset | None:
    """One RRset of every chosen multivalue member's records, at the lowest of their TTLs
    (RFC 2181 §5.2: the TTLs of an RRset are equal)."""
    plains = [m.data for m in members if type(m.data) is Plain]
    if not plains:
        return None
    out = WireRRset(owner, IN, plains[0].rrset.rdtype)
    for p in plains:
        out.update(p.rrset)
    out.ttl = min(p.rrset.ttl for p in plains)
    return out.seal()


def _resolve_entry(
    zone: Zone,
    entry: Entry,
    qtype: int,
    owner: dns.name.Name,
    okey: Key,
    picker: Picker,
    seen: set[tuple[Key, int]],
    client: Client = _NO_CLIENT,
) -> AnswerRRset | None:
    """Follow aliases and weighted picks down to a plain RRset, or None if the tree dangles.

    Route 53 alias semantics: the owner is the query name, the TTL the target's, no CNAME is
    shown. A target with no records of the type (or no records at all) dangles: None, which
    the caller turns into NOERROR with an empty answer and the SOA (the October 2025 outage).
    """
    while True:
        if type(entry) is Plain:
            return _owned(entry, owner, okey)
        if type(entry) is Weighted:
            if entry.checked:
                entry = _pick_weighted(zone, entry, qtype, picker, client).data
            else:
                entry = entry.members[picker.pick(entry.cumulative)].data
            continue
        if type(entry) is Routed:
            chosen = _route(zone, entry, qtype, picker, client)
            if chosen is None:
                return None
            if type(chosen) is list:
                return _merged(owner, chosen)
            entry = chosen.data  # type: ignore[union-attr]
            continue
        # AliasTo: a symlink inside the zone, to the same type at the target name
        target = entry.target  # type: ignore[union-attr]
        mark = (target, qtype)
        if mark in seen:
            raise _Servfail(f"alias loop at {_text(target)} {dns.rdatatype.to_text(qtype)}")
        if len(seen) >= MAX_CHAIN:
            raise _Servfail(f"alias tree deeper than {MAX_CHAIN} at {_text(target)}")
        seen.add(mark)
        target_node = zone.nodes.get(target)
        if target_node is None or qtype not in target_node:
            return None
        entry = target_node[qtype]


def _text(k: Key) -> str:
    return dns.name.Name(k).to_text()


def _find_cut(zone: Zone, k: Key, qtype: int) -> Key | None:
    """The highest delegation point at or above the name (RFC 1034 §4.3.2 step 3b).

    A DS question at the cut itself is answered by the parent side (RFC 4035 §3.1.4.1).
    """
    cuts = zone.cuts
    if not cuts:
        return None
    for i in range(len(k) - len(zone.okey) - 1, -1, -1):
        name = k[i:]
        if name in cuts:
            if i == 0 and qtype == DS:
                return None
            return name
    return None


def _find_dname(zone: Zone, k: Key, cut: Key | None) -> Key | None:
    """The highest DNAME owner strictly above the name, unless a delegation comes first
    (RFC 6672 §3.2: the DNAME is met while matching labels downwards, as a cut is; a DNAME
    never applies at its own owner, RFC 6672 §2.3)."""
    dnames = zone.dnames
    if not dnames:
        return None
    stop = len(k) - len(cut) + 1 if cut is not None else 1  # at or below the cut: occluded
    for i in range(len(k) - len(zone.okey), stop - 1, -1):
        if k[i:] in dnames:
            return k[i:]
    return None


def _dname(zone: Zone, owner: Key, k: Key, qname: dns.name.Name,
           sol: Solution) -> dns.name.Name | None:
    """RFC 6672 §3.2: answer the DNAME and a CNAME synthesised from it (owner the name
    asked, TTL the DNAME's, §3.1, as Knot and NSD give it), and return the new name to chase
    (in the zone or not, as a CNAME's target is, §3.2 step 3c). None: the new name would be
    longer than 255 octets, which is YXDOMAIN with the DNAME alone (§2.2, as NSD answers).

    The new name is the lower-cased labels of the name asked before the DNAME's target, so
    the answer does not depend on the question's spelling (the serving index reuses it)."""
    entry = zone.nodes[owner][DNAME]
    if type(entry) is not Plain:
        raise _Servfail(f"DNAME at {_text(owner)} is not plain data")
    rrset = entry.rrset
    sol.answer.append(rrset)
    labels = k[:len(k) - len(owner)] + rrset[0].target.labels
    if sum(len(label) + 1 for label in labels) > MAX_NAME:
        sol.outcome, sol.rcode = Outcome.YXDOMAIN, dns.rcode.YXDOMAIN
        sol.ede = (EDE_OTHER, "DNAME expansion became too large")  # NSD's text
        return None
    target = dns.name.Name(labels)
    cname = WireRRset(qname, IN, CNAME)
    cname.add(dns.rdtypes.ANY.CNAME.CNAME(IN, CNAME, target), rrset.ttl)
    sol.answer.append(cname.seal())
    return target


def _closest_encloser(zone: Zone, k: Key) -> Key:
    n = len(zone.okey)
    while k not in zone.existing and len(k) > n:
        k = k[1:]
    return k


def _referral(zone: Zone, cut: Key, sol: Solution) -> Solution:
    """RFC 1034 §4.3.2 step 3b: NS of the child in authority, addresses we hold as glue."""
    entry = zone.nodes[cut][NS]
    assert isinstance(entry, Plain)
    sol.outcome = Outcome.DELEG
    sol.aa = bool(sol.answer)  # AA only for the authoritative part of a chain before the cut
    sol.authority.append(entry.rrset)
    for rd in entry.rrset:
        target = key_of(rd.target)
        node = zone.nodes.get(target)
        if node is None:
            continue
        for t in (A, AAAA):
            glue = node.get(t)
            if type(glue) is Plain:
                sol.additional.append(glue.rrset)
                if target[len(target) - len(cut):] == cut:
                    sol.glue_required = True  # RFC 9471 §3: in-domain glue is not optional
    return sol


def solve(zone: Zone, qname: dns.name.Name, qtype: int, picker: Picker,
          qkey: Key | None = None, client: Client = _NO_CLIENT) -> Solution:
    """RFC 1034 §4.3.2 lookup in one zone, with CNAME chains, wildcards (RFC 4592),
    delegations, Route 53 aliases and weighted sets."""
    sol = Solution(Outcome.HIT)
    seen: set[tuple[Key, int]] = set()
    k = qkey or key_of(qname)
    nodes = zone.nodes
    try:
        for _step in range(MAX_CHAIN):
            if not zone.contains(k):
                # A CNAME left the zone: we answer with the chain so far (RFC 1034 §4.3.2
                # step 3a; we do not chase into other zones, as NSD and Knot do not).
                sol.outcome = Outcome.FOLLOW
                return sol
            cut = _find_cut(zone, k, qtype)
            dname = _find_dname(zone, k, cut) if zone.dnames else None
            if dname is not None:
                seen.add((k, CNAME))
                target = _dname(zone, dname, k, qname, sol)
                if target is None:
                    return sol  # YXDOMAIN
                if qtype == CNAME:
                    return sol  # the synthesised CNAME is the answer (RFC 1034 §3.6.2)
                qname, k = target, target.labels  # (lower case already)
                if (k, CNAME) in seen:
                    sol.outcome = Outcome.FOLLOW  # a loop through DNAMEs: answered once
                    return sol
                continue
            if cut is not None:
                return _referral(zone, cut, sol)
            node = nodes.get(k)
            if node is None:
                if k in zone.existing:
                    return _nodata(zone, sol)  # empty non-terminal (RFC 4592 §2.2.2)
                source = (WILDCARD,) + _closest_encloser(zone, k)
                node = nodes.get(source)
                if node is None:
                    if source in zone.existing:
                        # RFC 4592 §4.9: a wildcard that is an empty non-terminal still
                        # exists, and synthesises its (empty) node: NODATA, not NXDOMAIN
                        return _nodata(zone, sol)
                    sol.outcome, sol.rcode = Outcome.MISS, dns.rcode.NXDOMAIN
                    sol.authority.append(zone.negative_soa)
                    return sol
                # RFC 4592 §3.3.1: synthesize from the source of synthesis, owner = qname
            if qtype == ANY:
                return _any(zone, node, qname, k, picker, seen, sol, client)
            entry = node.get(qtype)
            if entry is not None:
                rrset = _resolve_entry(zone, entry, qtype, qname, k, picker, seen, client)
                if rrset is None:
                    return _nodata(zone, sol)  # the dangling alias: NOERROR, ANSWER 0, SOA
                sol.answer.append(rrset)
                sol.outcome = Outcome.HIT
                if qtype == NS:
                    _ns_addresses(zone, rrset, sol)
                return sol
            cname = node.get(CNAME)
            if cname is None:
                return _nodata(zone, sol)
            rrset = _resolve_entry(zone, cname, CNAME, qname, k, picker, seen, client)
            if rrset is None:
                return _nodata(zone, sol)
            sol.answer.append(rrset)
            seen.add((k, CNAME))
            qname = rrset[0].target  # RFC 1034 §3.6.2: restart the lookup at the target
            k = key_of(qname)
            if (k, CNAME) in seen:
                sol.outcome = Outcome.FOLLOW  # a CNAME loop: answer the chain once, as NSD
                return sol
        sol.outcome = Outcome.FOLLOW
        return sol
    except _Servfail as exc:
        return Solution(Outcome.SERVFAIL, rcode=dns.rcode.SERVFAIL, aa=False, problem=str(exc))


def _ns_addresses(zone: Zone, ns: AnswerRRset, sol: Solution) -> None:
    """RFC 1035 §3.3.11 additional section processing for NS answers: the addresses of the
    name servers that we hold. Optional data: dropped first when the response is too big
    (minimal responses otherwise, as NSD with `minimal-responses: yes`)."""
    for rd in ns:
        node = zone.nodes.get(key_of(rd.target))
        if node is None:
            continue
        for t in (A, AAAA):
            entry = node.get(t)
            if type(entry) is Plain:
                sol.additional.append(entry.rrset)


def _nodata(zone: Zone, sol: Solution) -> Solution:
    sol.outcome = Outcome.NODATA
    sol.authority.append(zone.negative_soa)  # RFC 2308 §2.2
    return sol


def _any(
    zone: Zone,
    node: dict[int, Entry],
    owner: dns.name.Name,
    okey: Key,
    picker: Picker,
    seen: set[tuple[Key, int]],
    sol: Solution,
    client: Client = _NO_CLIENT,
) -> Solution:
    """RFC 8482 §4.1: answer ANY with one RRset, never the lot: the SOA at the apex, else the
    lowest type present (the RRset NSD picks)."""
    for rdtype in sorted(node, key=lambda t: (t != SOA, t)):
        rrset = _resolve_entry(zone, node[rdtype], rdtype, owner, okey, picker, seen, client)
        if rrset is not None:
            sol.answer.append(rrset)
            sol.outcome = Outcome.HIT
            return sol
    return _nodata(zone, sol)


# --------------------------------------------------------------------------------------------
# Classify, finish, render


@dataclass
class Reply:
    """A response ready to render; `to_wire(limit)` applies truncation (RFC 2181 §9).

    Rendering uses `authd.dns.wire.Renderer`; `message` gives the same response as a dnspython
    Message for tools and tests.
    """

    outcome: Outcome
    id: int
    flags: int  # header flags and opcode, without the RCODE bits
    rcode: int  # the full RCODE (values above 15 travel in the OPT record, RFC 6891 §6.1.3)
    qname: dns.name.Name | None = None
    qtype: int = 0
    qclass: int = IN
    answer: list[AnswerRRset] = field(default_factory=list)
    authority: list[WireRRset] = field(default_factory=list)
    additional: list[WireRRset] = field(default_factory=list)
    edns: int = -1  # -1: no OPT in the response; else its version (0)
    ednsflags: int = 0
    glue_required: bool = False
    problem: str | None = None
    udp_limit: int = MIN_UDP  # the client's limit over UDP (from its EDNS payload size)
    qwire: bytes | None = None  # the question exactly as the client sent it, when we have it
    located: bool = False  # the answer depends on where the client is (not reusable for others)
    options: bytes = b""  # EDNS options of the response's OPT (the ECS echo, RFC 7871 §7.2)
    _full: bytes | None = None

    def render(self, *, answer: bool = True, authority: bool = True, additional: bool = True,
               tc: bool = False) -> bytes:
        flags = self.flags | (TC if tc else 0) | (self.rcode & 0xF)
        if self.qname is not None:
            question = self.qwire or (self.qname.to_wire() + self.qtype.to_bytes(2, "big")
                                      + self.qclass.to_bytes(2, "big"))
            labels = self.qname.labels[:-1]
        else:
            question, labels = b"", ()
        r = Renderer(self.id.to_bytes(2, "big") + flags.to_bytes(2, "big") + bytes(8),
                     question, labels)
        an = sum(r.rrset(x) for x in self.answer) if answer else 0
        ns = sum(r.rrset(x) for x in self.authority) if authority else 0
        ar = sum(r.rrset(x) for x in self.additional) if additional else 0
        if self.edns >= 0:
            # RFC 6891 §6.1.1: OPT in the response; RFC 3225 §3: the DO bit is echoed
            r.opt(OUR_PAYLOAD, self.rcode >> 4, self.ednsflags, self.options)
            ar += 1
        r.out[4:12] = b"".join(n.to_bytes(2, "big") for n in (1 if question else 0, an, ns, ar))
        return bytes(r.out)

    def to_wire(self, limit: int) -> bytes:
        if self._full is None:
            self._full = self.render()
        if len(self._full) <= limit:
            return self._full
        return self.truncated(limit)

    def truncated(self, limit: int) -> bytes:
        """Over the limit: drop optional additional data first; if required data still does not
        fit, send TC=1 with empty sections so the client retries over TCP (RFC 2181 §9,
        RFC 9471 §3)."""
        if self.additional and not self.glue_required:
            wire = self.render(additional=False)
            if len(wire) <= limit:
                return wire
        return self.render(answer=False, authority=False, additional=False, tc=True)

    @property
    def message(self) -> dns.message.Message:
        """The full response as a dnspython Message (not truncated)."""
        m = dns.message.Message(id=self.id)
        m.flags = self.flags
        if self.qname is not None:
            m.question = [dns.rrset.RRset(self.qname, self.qclass, self.qtype)]
        m.answer = [r.to_rrset() if isinstance(r, Renamed) else r for r in self.answer]
        m.authority = list(self.authority)
        m.additional = list(self.additional)
        if self.edns >= 0:
            options, i, raw = [], 0, self.options
            while i + 4 <= len(raw):
                code, size = int.from_bytes(raw[i:i + 2], "big"), int.from_bytes(raw[i + 2:i + 4], "big")
                options.append(dns.edns.option_from_wire(code, raw, i + 4, size))
                i += 4 + size
            m.use_edns(0, self.ednsflags, OUR_PAYLOAD, options=options or None)
        m.set_rcode(self.rcode)
        return m


@dataclass(frozen=True, slots=True)
class Query:
    """A classified query: what the answer stage needs, with the client's limits."""

    id: int
    flags: int
    qname: dns.name.Name
    qtype: int
    qclass: int
    edns: int  # -1 without OPT, else the version
    ednsflags: int
    payload: int
    qwire: bytes | None = None  # the question section as received (fast parser only)
    qkey: Key | None = None  # key_of(qname), when the parser had the labels at hand
    ecs: tuple[int, str, int] | None = None  # EDNS Client Subnet: (family, address, source prefix)

    def limit(self, tcp: bool) -> int:
        """The largest response the client accepts (RFC 6891 §6.2.5, RFC 1035 §4.2.1)."""
        if tcp:
            return TCP_LIMIT
        if self.edns < 0:
            return MIN_UDP
        return max(MIN_UDP, min(self.payload, OUR_PAYLOAD))


def _header_reply(wire: bytes, rcode: int, outcome: Outcome) -> Reply:
    """A reply to a packet we could not parse: ID, opcode and RD copied, no sections."""
    qid = int.from_bytes(wire[0:2], "big")
    flags = int.from_bytes(wire[2:4], "big")
    return Reply(outcome, qid, QR | (flags & (RD | 0x7800)), rcode)


def _fast_query(wire: bytes) -> Query | None:
    """The common query shape, read by the hand-written parser (no dnspython Message)."""
    fq = parse_fast(wire, allow_ecs=True)
    if fq is None:
        return None
    labels = []
    i = 12
    while wire[i]:
        end = i + 1 + wire[i]
        labels.append(wire[i + 1:end])
        i = end
    labels.append(b"")
    variant = fq.key[2]
    qend = fq.qend
    return Query(
        id=wire[0] << 8 | wire[1],
        flags=wire[2] << 8 | wire[3],
        qname=dns.name.Name(labels),
        qtype=wire[qend - 4] << 8 | wire[qend - 3],
        qclass=IN,
        edns=-1 if variant == 0 else 0,
        ednsflags=DO if variant == 2 else 0,
        payload=fq.payload,
        qwire=wire[12:qend],
        qkey=tuple(map(bytes.lower, labels)),
        ecs=fq.ecs,
    )


def classify(wire: bytes, *, tcp: bool, allow_axfr: bool = False) -> Query | Reply | None:
    """Stage 1: a Query to answer, an error Reply, or None to drop the packet.

    Drops: shorter than a header (nothing to answer to) and responses (QR=1), which must never
    be answered or two servers could ping-pong forever.
    """
    if len(wire) < 12 or wire[2] & 0x80:
        return None
    opcode = (wire[2] >> 3) & 0xF
    if opcode != dns.opcode.QUERY:
        return _header_reply(wire, dns.rcode.NOTIMP, Outcome.NOTIMP)  # RFC 1035 §4.1.1
    fast = _fast_query(wire)
    if fast is not None:
        return fast  # class IN, no zone transfer, EDNS version 0 or none: nothing to refuse
    try:
        msg = dns.message.from_wire(wire, one_rr_per_rrset=True, ignore_trailing=False)
    except dns.message.BadEDNS:
        return _header_reply(wire, dns.rcode.FORMERR, Outcome.FORMERR)
    except (dns.exception.DNSException, ValueError, KeyError, IndexError, TypeError):
        return _header_reply(wire, dns.rcode.FORMERR, Outcome.FORMERR)
    if len(msg.question) != 1 or msg.answer or msg.authority:
        return _header_reply(wire, dns.rcode.FORMERR, Outcome.FORMERR)  # RFC 1035 §4.1.2
    q = msg.question[0]
    ecs = None
    for opt in msg.options:
        if opt.otype == dns.edns.ECS:  # RFC 7871 §6
            if opt.scopelen != 0 or opt.family not in (1, 2):  # type: ignore[attr-defined]
                # §6: SCOPE PREFIX-LENGTH MUST be 0 in queries; §7.2.1: a malformed option
                # is answered with FORMERR
                return _header_reply(wire, dns.rcode.FORMERR, Outcome.FORMERR)
            ecs = (opt.family, opt.address, opt.srclen)  # type: ignore[attr-defined]
    query = Query(
        id=msg.id,
        flags=msg.flags,
        qname=q.name,
        qtype=q.rdtype,
        qclass=q.rdclass,
        edns=msg.edns,
        ednsflags=msg.ednsflags,
        payload=int(msg.payload),
        ecs=ecs,
    )
    if msg.edns > 0:
        # RFC 6891 §6.1.3: BADVERS, with OPT at the highest version we implement (0)
        return _finish(query, Solution(Outcome.BADVERS, rcode=dns.rcode.BADVERS, aa=False))
    if q.rdtype == dns.rdatatype.AXFR and not tcp:
        # RFC 5936 §4.2: AXFR is a TCP affair (NSD and Knot say NOTIMP too)
        return _finish(query, Solution(Outcome.NOTIMP, rcode=dns.rcode.NOTIMP, aa=False))
    if q.rdclass not in (IN, dns.rdataclass.ANY):
        # Only class IN is served
        return _finish(query, Solution(Outcome.REFUSED, rcode=dns.rcode.REFUSED, aa=False))
    if q.rdtype in XFR_TYPES and not allow_axfr:
        return _finish(query, _refused(EDE_PROHIBITED))  # transfers only when allowed
    return query


def _ecs_echo(ecs: tuple[int, str, int], scope: int) -> bytes:
    """RFC 7871 §7.2.1: the option as received (FAMILY, SOURCE PREFIX-LENGTH, ADDRESS
    truncated to the source prefix) with our SCOPE PREFIX-LENGTH."""
    family, address, source = ecs
    raw = ipaddress.ip_address(address).packed[:(source + 7) // 8]
    body = family.to_bytes(2, "big") + bytes((source, scope)) + raw
    return b"\x00\x08" + len(body).to_bytes(2, "big") + body


def _ede_option(code: int, text: str) -> bytes:
    """RFC 8914 §2: INFO-CODE then EXTRA-TEXT (UTF-8, no terminator)."""
    body = code.to_bytes(2, "big") + text.encode()
    return EDE_OPTION.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def _finish(query: Query, sol: Solution, client: Client | None = None) -> Reply:
    """Stage 4: header flags, EDNS, sections.

    RD is copied (RFC 1035 §4.1.1). CD is not: RFC 4035 §3.1.6 says to copy it, but Knot
    and NSD, serving zones without DNSSEC as authd does, clear it in every response, and
    authd answers as they do (checked by tests/test_dns_differential.py).
    """
    flags = QR | (query.flags & RD)
    # RFC 6895 §3.2: an answer to QCLASS=ANY cannot claim to be authoritative (as NSD)
    if sol.aa and query.qclass == IN:
        flags |= AA
    return Reply(
        sol.outcome, query.id, flags, sol.rcode, query.qname, query.qtype, query.qclass,
        sol.answer, sol.authority, sol.additional,
        edns=0 if query.edns >= 0 else -1,
        ednsflags=query.ednsflags & DO,
        glue_required=sol.glue_required, problem=sol.problem, udp_limit=query.limit(tcp=False),
        qwire=query.qwire,
        located=client is not None and client.located,
        # RFC 7871 §7.2.1: SCOPE 0 when the answer does not depend on the client's subnet
        options=(_ecs_echo(query.ecs, client.scope if client is not None and client.located else 0)
                 if query.ecs is not None and query.edns >= 0 else b"")
        + (_ede_option(*sol.ede) if sol.ede is not None and query.edns >= 0 else b""),
    )


def _axfr(zone: Zone, query: Query) -> Reply:
    """RFC 5936 AXFR of the plain data in one message (aliases and weighted sets have no
    RFC 1035 form, so they are left out)."""
    sol = Solution(Outcome.HIT)
    sol.answer.append(zone.soa)
    for k in sorted(zone.nodes, key=lambda k: tuple(reversed(k))):
        for rdtype, entry in sorted(zone.nodes[k].items()):
            if type(entry) is Plain and not (k == zone.okey and rdtype == SOA):
                sol.answer.append(entry.rrset)
    sol.answer.append(zone.soa)
    return _finish(query, sol)


def answer(
    wire: bytes, zones: ZoneTable, *, rng: Rng, tcp: bool = False, allow_axfr: bool = False,
    source: str | None = None,
) -> Reply | None:
    """The whole pipeline for one packet. None means drop it. Never raises on bad input.
    `source` is the client's address, for routing when the query carries no client subnet."""
    c = classify(wire, tcp=tcp, allow_axfr=allow_axfr)
    if not isinstance(c, Query):
        return c
    return answer_query(c, zones, rng=rng, source=source)


def client_of(c: Query, zones: ZoneTable, source: str | None) -> Client:
    """Where routing places the client: the EDNS Client Subnet's address and source prefix
    (RFC 7871 §7.1.1; a SOURCE PREFIX-LENGTH of 0 asks us not to use it, so the source
    address stands in), else the packet's source address."""
    if c.ecs is not None and c.ecs[2] > 0:
        return Client(zones, c.ecs[1], c.ecs[2])
    return Client(zones, source, None)


def answering_zone(zones: ZoneTable, qkey: Key, qtype: int) -> Zone | None:
    """The served zone that answers: the closest enclosing one (RFC 1034 §4.3.2 step 2),
    except that DS at a zone's apex is the parent's data (RFC 4034 §5.1, RFC 4035 §3.1.4.1:
    a server authoritative for both sides answers DS from the parent), when we serve the
    parent too, as Knot and NSD do. The serving index files the answer under this zone."""
    zone = zones.find(qkey)
    if qtype == DS and zone is not None and qkey == zone.okey and len(qkey) > 1:
        return zones.find(qkey[1:]) or zone
    return zone


def answer_query(c: Query, zones: ZoneTable, *, rng: Rng, source: str | None = None) -> Reply:
    """Stages 2 to 4 for a classified query (lets callers classify once, answer many times)."""
    picker = as_picker(rng)
    qkey = c.qkey or key_of(c.qname)
    zone = answering_zone(zones, qkey, c.qtype)  # stage 2: prepare
    if zone is None:
        return _finish(c, _refused(EDE_NOT_AUTHORITATIVE))
    if c.qtype == dns.rdatatype.AXFR and qkey == zone.okey:
        return _axfr(zone, c)
    if c.qtype in XFR_TYPES:
        return _finish(c, _refused(EDE_PROHIBITED))
    client = client_of(c, zones, source)
    try:
        sol = solve(zone, c.qname, c.qtype, picker, qkey, client)  # stage 3
    except Exception as exc:  # Knot: a failure with no rcode of its own becomes SERVFAIL
        sol = Solution(Outcome.SERVFAIL, rcode=dns.rcode.SERVFAIL, aa=False, problem=repr(exc))
    return _finish(c, sol, client)


def answer_wire(
    wire: bytes, zones: ZoneTable, *, rng: Rng, tcp: bool = False, allow_axfr: bool = False,
    source: str | None = None,
) -> bytes | None:
    """`answer` rendered to wire at the client's limit (the uncached path end to end)."""
    reply = answer(wire, zones, rng=rng, tcp=tcp, allow_axfr=allow_axfr, source=source)
    if reply is None:
        return None
    return reply.to_wire(TCP_LIMIT if tcp else reply.udp_limit)


def enumerate_outcomes(
    run: Callable[[Picker], Reply | None], max_paths: int = MAX_PATHS
) -> Iterator[tuple[float, Reply | None]]:
    """Every reply `run` can give over all weighted choices, with its probability.

    Depth-first over the choice points the explorer records; members of weight 0 are never
    explored unless every weight in their set is 0 (then all are, uniformly). Raises
    OverflowError past `max_paths` outcomes.
    """
    stack: list[tuple[int, ...]] = [()]
    count = 0
    while stack:
        script = stack.pop()
        explorer = _Explorer(script)
        reply = run(explorer)
        count += 1
        if count > max_paths:
            raise OverflowError(f"more than {max_paths} weighted outcomes")
        for depth in range(len(script), len(explorer.trace)):
            _, n = explorer.trace[depth]
            prefix = tuple(k for k, _ in explorer.trace[:depth])
            stack.extend(prefix + (alt,) for alt in range(n - 1, 0, -1))
        yield explorer.probability, reply


@functools.lru_cache(maxsize=4096)
def make_query_wire(qname: str, qtype: str | int, *, edns: bool = False) -> bytes:
    """A plain query in wire form (ID 0, RD clear), for resolve_all and tests."""
    q = dns.message.make_query(qname, qtype, use_edns=0 if edns else None)
    q.id = 0
    q.flags = 0
    return q.to_wire()
