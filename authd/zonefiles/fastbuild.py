"""A master file's grouped records straight into a served zone (issue 12: loading).

Pure core: no I/O. The reference path makes a `RecordSet` per (owner, type), checks the zone
(`zonefile.check_zone`), and then `Zone.build` turns the record sets back into owner names,
keys and wire forms: every owner's name is split, lowered and keyed twice, and every address
parsed twice. This module does it once, from what `masterfile.read_wired` already read: the
owner's text (lower case, absolute), each value's canonical text and, for A and AAAA, its wire.

`build(origin, groups, path)` gives the zone's record sets (for the store, AXFR and change
batches, which read `Zone.records`) and the `Zone` the serving index would build from them,
with the same entries, names, wires, empty non-terminals and cuts
(`tests/test_fastbuild.py` checks both, and the answers, against the reference over
generated zones). The zone-level rules are checked on the way by a cheap test that can only
say "clean" or "look closer" (RFC 1034 §3.6.2, RFC 2181 §10.1, RFC 1035 §5.2, RFC 6672): for
"look closer" (a CNAME beside other data, a DNAME, an SOA below the apex, a name outside the
zone, no SOA or NS at the apex, ...) the reference `check_zone` runs on the record sets and
raises its own error with the line, so no message changes. Anything this module does not
build itself (types without a fast wire form, escaped names) is compiled by the reference
`answer._compile_set`, one record set at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import dns.name
import dns.rdataclass
import dns.rdatatype

from authd.dns import rdatawire
from authd.dns.answer import (
    CNAME,
    DNAME,
    NS,
    SOA,
    AddressRRset,
    Entry,
    Key,
    PackedRRset,
    Plain,
    Zone,
    _compile_set,
    _owner,
    _soas,
    key_of,
)
from authd.model.records import RecordKey, RecordSet

A, AAAA = 1, 28
_new = object.__new__
_set = object.__setattr__  # how a frozen dataclass (and dnspython's Name) sets its own fields
# types that may sit beside a CNAME (RFC 2181 §10.1, RFC 4035 §2.5), as `check_zone` has them
_BESIDE_CNAME = frozenset({CNAME, dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.KEY})

_tuple_new = tuple.__new__


def _trusted(name: str, rtype: str, ttl: int, values: tuple[str, ...],
             key: RecordKey | None = None) -> RecordSet:
    """A plain record set from values already canonical, as `RecordSet(...)` would make it."""
    rs = _new(RecordSet)
    _set(rs, "name", name)
    _set(rs, "rtype", rtype)
    _set(rs, "ttl", ttl)
    _set(rs, "values", values)
    _set(rs, "set_identifier", None)
    _set(rs, "weight", None)
    _set(rs, "alias", None)
    _set(rs, "routing", None)
    _set(rs, "key", key if key is not None else _tuple_new(RecordKey, (name, rtype, None)))
    return rs


@dataclass
class Gathered:
    """A master file's records as record sets, one per (owner, type) in file order, with
    what a zone build needs besides: the wire forms the reader made (A, AAAA)."""

    sets: dict[RecordKey, RecordSet]
    # of each set's first value, in the order of `sets`: a list (`gather`), or made one at a
    # time as `build` reaches the set (`from_sets`), which may fill `more` for it just before
    wires: Iterable[bytes | None]
    more: dict[tuple[RecordKey, str], bytes | None]  # of the other values of a set


def gather(rows: Iterable[tuple[int, str, int, str, str, bytes | None]]) -> Gathered:
    """One record set per (owner, type), in file order; duplicates dropped (RFC 2181 §5) and
    differing TTLs merged to the lowest, as dnspython merges them. The owners and values are
    canonical already (`masterfile.read_wired`), so the record sets skip RecordSet's own
    canonicalisation; the dict they are kept in becomes the zone's `records` as it stands."""
    sets: dict[RecordKey, RecordSet] = {}
    wires: list[bytes | None] = []
    more: dict[tuple[RecordKey, str], bytes | None] = {}
    multi: dict[RecordKey, list[str]] = {}  # the values of sets with more than one, so far
    get, add = sets.get, wires.append
    for _, owner, ttl, rtype, value, wire in rows:
        k = (owner, rtype, None)
        rs = get(k)  # type: ignore[call-overload]
        if rs is None:
            rk = _tuple_new(RecordKey, k)
            sets[rk] = _trusted(owner, rtype, ttl, (value,), rk)
            add(wire)
            continue
        rk = rs.key
        if value != rs.values[0] and (rk, value) not in more:
            more[(rk, value)] = wire
            if rk in multi:
                multi[rk].append(value)
            else:
                multi[rk] = [rs.values[0], value]
        if ttl < rs.ttl:  # type: ignore[operator]
            _set(rs, "ttl", ttl)
    for rk, values in multi.items():
        _set(sets[rk], "values", tuple(values))
    return Gathered(sets, wires, more)


def build(origin: str, got: Gathered) -> Zone | None:
    """The served zone from the gathered record sets (whose dict it takes as its `records`),
    or None when the zone-level rules need the reference check (`check_zone`), which the
    caller then runs, and the reference build (`Zone.build`).

    Args:
        origin: the zone's origin, canonical (`api.aws.`).
        got: what `gather` gave.
    """
    org = dns.name.from_text(origin)
    okey = key_of(org)
    n = len(okey)
    rdtypes: dict[str, int] = {}
    suffixes: dict[str, tuple[tuple[bytes, ...], bool]] = {}  # -> labels, all inside the zone
    IN = dns.rdataclass.IN
    heads: dict[tuple[int, int], bytes] = {}
    nodes: dict[Key, dict[int, Entry]] = {}
    records, more = got.sets, got.more
    closer = False  # some rule needs the reference check
    cnames: list[Key] = []
    last_owner = ""
    key: Key = ()
    name = org
    node: dict[int, Entry] = {}
    for (rk, rs), wire in zip(records.items(), got.wires, strict=True):
        owner, rtype = rk[0], rk[1]
        ttl, values = rs.ttl, rs.values
        if owner != last_owner:
            last_owner = owner
            if "\\" in owner or owner == "." or not owner.isascii():
                name, key = _owner(owner)  # escapes: dnspython decides the labels
                if len(key) < n or key[len(key) - n:] != okey:
                    closer = True  # outside the zone
            else:
                first, _, rest = owner.partition(".")
                got_sfx = suffixes.get(rest)
                if got_sfx is None:
                    labels = tuple(rest.encode().split(b"."))
                    inside = len(labels) >= n and labels[len(labels) - n:] == okey
                    got_sfx = suffixes[rest] = (labels, inside)
                sfx, inside = got_sfx
                key = (first.encode(), *sfx)
                if not inside and key != okey:
                    closer = True  # outside the zone (the apex's own suffix is not inside)
                name = _new(dns.name.Name)
                _set(name, "labels", key)  # lower case already: the labels are the key
            node = nodes.get(key)  # type: ignore[assignment]
            if node is None:
                node = nodes[key] = {}
        t = rdtypes.get(rtype)
        if t is None:
            t = rdtypes[rtype] = dns.rdatatype.from_text(rtype)
        entry: Entry | None = None
        if t in (A, AAAA):
            wires = (wire,) if len(values) == 1 else (wire, *[more[(rk, v)] for v in values[1:]])
            if None not in wires:
                head = heads.get((t, ttl))
                if head is None:
                    head = heads[(t, ttl)] = (t.to_bytes(2, "big") + b"\x00\x01" + ttl.to_bytes(4, "big")
                                              + (b"\x00\x04" if t == A else b"\x00\x10"))
                rr = _new(AddressRRset)
                rr._pending = True
                rr.name = name
                rr.rdclass = IN
                rr.rdtype = _RDTYPES[t]
                rr.covers = _NONE
                rr.deleting = None
                rr.ttl = ttl
                rr.texts = values
                rr.tails = (head + wire,) if len(wires) == 1 else tuple([head + w for w in wires])  # type: ignore[operator]
                entry = _new(Plain)
                _set(entry, "rrset", rr)
                _set(entry, "key", key)
        elif t in rdatawire.FAST_TYPES:
            parsed = rdatawire.encode(t, values)
            if parsed is not None:
                texts = values if parsed[0] == values else parsed[0]
                entry = Plain(PackedRRset.of(name, t, ttl, texts, parsed[1]), key)
        if entry is None:
            entry = _compile_set(rs)
        node[t] = entry
        if t == CNAME:
            cnames.append(key)
            if len(values) != 1:
                closer = True  # more than one CNAME (the RRset kept only the last)
        elif t == SOA:
            if key != okey or len(values) != 1:
                closer = True  # an SOA below the apex, or more than one at it
        elif t == DNAME:
            closer = True  # the rules below a DNAME are the reference's
    apex = nodes.get(okey, {})
    soa = apex.get(SOA)
    if soa is None or NS not in apex:
        closer = True
    for k in cnames:
        if not _BESIDE_CNAME.issuperset(nodes[k]):
            closer = True  # a CNAME beside other data
    if closer:
        return None
    # values of one type whose duplicates differ only in a name's case (RFC 4343) stay as
    # written in the record set, and the RRset keeps the first: as `Zone.build` does
    soa_rrset, neg = _soas(origin, org, soa)
    # every owner exists (all are inside the zone, or `closer` is set), so `existing` starts
    # as the owners in one table of its final size, from the keys' stored hashes; grown one
    # `add` at a time it was resized up to the end, and its last resize (the old table of 1M
    # names beside the new one) set a restart's peak resident set (issue 12)
    zone = Zone(org, okey, nodes, set(nodes), set(), soa_rrset, neg, records, {}, {})
    existing, kids, cuts = zone.existing, zone.kids, zone.cuts
    for k, nd in nodes.items():
        if len(k) > n:  # one more name below its parent, which exists or is an empty
            parent = k[1:]  # non-terminal made now (with its own missing ancestors)
            kids[parent] = kids.get(parent, 0) + 1
            if parent not in existing:
                zone._add_name(parent)
        if NS in nd and k != okey:
            cuts.add(k)
    return zone


_RDTYPES = {int(t): t for t in dns.rdatatype.RdataType}
_NONE = dns.rdatatype.NONE


def from_sets(origin: str, sets: Iterable[RecordSet]) -> Zone | None:
    """`build` over record sets a store read back (a restart's snapshot rows): the served
    zone `Zone.build(origin, sets)` would give, without its per-set reference path, or None
    when a set is not plain (an alias, a weighted or routed member: `Zone.build` keeps those)
    or the zone needs the reference check. The A and AAAA wire forms are made here
    (`rdatawire.one`), since no reader made them; the values are canonical already (the
    store wrote them), so `tests/test_fastbuild.py` checks the answers against the reference.

    The wire forms are made as `build` reaches each set (`_wires`), not as a list first: that
    list held a 4-byte `bytes` per A set (~56 MB at 1M names) beside the whole zone being
    built, and set a restart's peak resident set (VmHWM), issue 12. `build` copies each one
    into its RRset's tail at once, so one is alive at a time.
    """
    records: dict[RecordKey, RecordSet] = {}
    for rs in sets:
        if rs.alias is not None or rs.set_identifier is not None or rs.routing is not None \
                or rs.weight is not None or not rs.values or rs.key in records:
            return None
        records[rs.key] = rs
    more: dict[tuple[RecordKey, str], bytes | None] = {}
    return build(origin, Gathered(records, _wires(records, more), more))


def _wires(records: dict[RecordKey, RecordSet], more: dict[tuple[RecordKey, str], bytes | None]
           ) -> Iterator[bytes | None]:
    """The wire form of each set's first value (None: not A or AAAA, or a text the reference
    writes otherwise), in the order of `records`; the other values' go into `more` before
    their set's is yielded, so `build`, which takes the set and then its wire, finds them."""
    one = rdatawire.one
    quad = rdatawire._QUAD  # "0".."255" -> the octet: the only texts of an A value it takes
    for rk, rs in records.items():
        rtype, values = rs.rtype, rs.values
        t = A if rtype == "A" else AAAA if rtype == "AAAA" else 0
        if not t:
            yield None
            continue
        if t == A and len(values) == 1:  # the bulk of a zone: `rdatawire.one`'s A, inline
            try:
                q1, q2, q3, q4 = values[0].split(".")
                wire: bytes | None = bytes((quad[q1], quad[q2], quad[q3], quad[q4]))
            except (KeyError, ValueError):
                wire = None
            yield wire
            continue
        for v in values[1:]:
            got = one(t, v)
            more[(rk, v)] = None if got is None or got[0] != v else got[1]
        got = one(t, values[0])  # a text not as the reader writes it: the reference's
        yield None if got is None or got[0] != values[0] else got[1]
