"""Answers compiled ahead: a query answered by a dict lookup and a splice, not the pipeline.

Pure core (no sockets, no clock; weighted picks from an injected `random()`). The serving
index asks `CompiledAnswers.respond(wire, tcp)` before its per-question table; None means
"not mine": the index goes on to the full pipeline (`authd.dns.answer`), which stays the
reference for every byte this module sends.

Theory of operation. A response is the 12-byte header, the question copied from the query
(so its case is the client's), and the sections. The sections' bytes depend on the question
only through name compression (RFC 1035 §4.1.4): every pointer is either into the question
(at 12 + L - len(suffix), L = the query name's wire length) or to a name written after it
(at 12 + L + 4 + x). So for one set of zone data the sections are a function of L and of the
deepest suffix of the query name that also ends one of the names the sections hold (the
`suffixes` S of a template): two queries that agree on both get the same bytes.

The decision (which template answers) mirrors RFC 1034 §4.3.2 as `answer.solve` does, here
on the zone's own lookup structures without dnspython:
- a cut at or above the name (step 3b): the zone's referral template for that cut;
- an owner with the type or a CNAME (step 3a): that owner and type's compiled answer, fixed
  bytes since the query name is the owner (weighted sets: every outcome with its
  cumulative probability, as the index's `_Choice`);
- an owner without it, or an empty non-terminal (RFC 4592 §2.2.2): the zone's NODATA
  template, the SOA in authority with TTL min(SOA TTL, MINIMUM) (RFC 2308 §2.2, §3);
- else the closest encloser's wildcard (RFC 4592 §3.3.1): that source and type's template;
- else NXDOMAIN: the zone's NXDOMAIN template (RFC 2308 §2.1).

Where the bytes come from, cheapest first:
- an owner's own plain RRset with no name in its rdata (A, AAAA, TXT, ...): its RRs were
  rendered at load (`WireRRset.tails`), so the sections are a pointer to the question before
  each; nothing is kept per name;
- an owner's CNAME followed one step (to data, to a name without the type, to no name, out
  of the zone): written once without the pipeline, from the CNAME's wire rdata (building its
  dnspython rdata cost ~100 us a first query): the CNAME alone or with the negative SOA by
  `_cname_body`, which compresses as `Renderer` does (RFC 1035 §4.1.4; ~20 -> ~13 us an
  owner's first query), a target whose RRset has load-time tails spliced from them, other
  targets by `Renderer`; kept per owner and type;
- everything else (NXDOMAIN, NODATA, wildcards, referrals, aliases, weighted sets, longer
  chains): rendered by the reference pipeline itself (`answer.answer`, with a representative
  query: ID 0, no flags, no EDNS, the lowered question) the first time a (template,
  suffix, L) is met, and checked then to have the outcome the decision expected.
`respond` decides the commonest answers inline (an owner's plain RRset; NXDOMAIN in a zone
with no cut above the name and no `*` label anywhere; NODATA at an owner; an owner's CNAME
once its template is made), and the rest in `_decide`. Where the
time of a random name goes (mostly memory: the lookup reads ~10 objects one after the other)
is in BENCHMARKS.md, "where a random query's time goes". The C UDP loop reads a question
without EDNS itself and calls `udp_read`, which shares `_shape_of` (the zone, the decision,
the size check) with `respond` and leaves the splice to C. Per query only the header is built: the bits the pipeline copies from the query (RD, RFC 1035
§4.1.1; `copied_flags` asks the pipeline which), and the EDNS OPT appended with DO echoed
(RFC 6891 §6.1.1, RFC 3225 §3). A rendering reads the zone through a view that records which
names it read, so a change batch forgets only the templates of the names it touches and of
the names that read them (CNAME and alias targets, glue, the SOA).

Declined, so answered by the full pipeline: zones holding a DNAME, ANY and DS questions,
wildcards that are empty non-terminals, sets with health checks or another routing policy,
anything whose answer depends on the client, a SERVFAIL, and a response longer than the
client's limit (truncation, RFC 2181 §9). Questions `authd.dns.wire.read_query` declines
(EDNS options other than cookies, ECS, compression in the question) never reach here.
"""

from __future__ import annotations

import bisect
import functools
import struct
from collections.abc import Callable, Iterable
from typing import Any

from authd.dns.answer import (
    MIN_UDP,
    OUR_PAYLOAD,
    TCP_LIMIT,
    Key,
    Outcome,
    Plain,
    Routed,
    Weighted,
    Zone,
    ZoneTable,
    answer,
    enumerate_outcomes,
    key_of,
)
from authd.dns.wire import COMPRESSIBLE, Renderer, read_query
from authd.model.records import RecordKey, RecordSet

_CNAME, _NS, _SOA, _DS, _DNAME, _ANY = 5, 2, 6, 43, 39, 255
_WILD = b"*"
_RD_CD = 0x0110
_HEAD = struct.Struct(">HHHHH")
_QUERY_HEAD = b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
# the root's SOA asked with RD and CD set, of no zone: which of the two the pipeline's
# replies copy from a query (`copied_flags`)
_PROBE = b"\x00\x00\x01\x10\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x06\x00\x01"
# RFC 6891 §6.1.2 OPT as `Reply.render` writes it: root owner, type 41, CLASS = our payload,
# extended RCODE 0, version 0, DO echoed (RFC 3225 §3), no options
_OPT = {1: b"\x00\x00\x29" + OUR_PAYLOAD.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00",
        2: b"\x00\x00\x29" + OUR_PAYLOAD.to_bytes(2, "big") + b"\x00\x00\x80\x00\x00\x00"}
# `parse_fast`'s uncached types (OPT, TKEY, TSIG, IXFR, AXFR and 0), ANY (RFC 8482) and DS (the
# parent side of a cut, RFC 4035 §3.1.4.1): the pipeline's
NOT_COMPILED = frozenset({0, 41, 249, 250, 251, 252, _ANY, _DS})
QR_AA = 0x8400  # the header flags of an authoritative answer (RFC 1035 §4.1.1)
_PTR_QNAME = b"\xc0\x0c"  # RFC 1035 §4.1.4: a pointer to the question's name
MAX_PTR = 0x3FFF  # a response past this might need pointers the renderer would not write
_NOTHING: frozenset = frozenset()
_NO_VARIANTS: dict = {}  # never written: fixed templates keep their one shape apart
# `udp`'s doorkeeper: 64 KiB of marks (stays in a core's L2), started over after 16,384
# marks (at most a quarter set, so a new query finds its slot already marked 1 time in 4);
# the count of marks in the two octets after them (big-endian), so the C UDP loop, which
# marks the same bytearray itself (`doorkeeper` in authd/dns/_fastudp.c), counts alike
_SEEN_MASK = 0xFFFF
_SEEN_EPOCH = 1 << 14
_SEEN_COUNT = _SEEN_MASK + 1  # the count's offset
_NO_MARKS = bytes(_SEEN_COUNT + 2)
_VARIANTS_PER_TEMPLATE = 4096  # (suffix, L) pairs kept per template; past it, start over

# A rendered outcome: (header flags without RD/CD, ANCOUNT, NSCOUNT, ARCOUNT, sections).
Shape = tuple[int, int, int, int, bytes]
# A weighted outcome: cumulative probabilities (last 1.0) and their shapes.
Pick = tuple[list[float], list[Shape]]
# What `_shape_of` answers a query with: flags, ANCOUNT, NSCOUNT, ARCOUNT (without the OPT),
# the sections, and the zone's key when it is one owner's own single answer (else None).
Answer = tuple[int, int, int, int, bytes, "Key | None"]


class Template:
    """One answer as a function of the question: its shapes by (suffix, L).

    `suffixes` is S: every suffix of every name the sections write (the query name's own
    owners excepted). `fixed` templates answer one query name only (an owner's own data):
    one variant, no suffix to find.
    """

    __slots__ = ("suffixes", "variants", "fixed", "expect", "reads", "shape")

    def __init__(self, suffixes: frozenset[Key], fixed: bool, expect: Outcome | None,
                 reads: frozenset[Key] = frozenset()):
        self.suffixes = suffixes
        # a fixed template's one variant is `shape` (no dict: there is one per CNAME owner)
        self.variants: dict[tuple[Key, int], Shape | Pick] = {} if not fixed else _NO_VARIANTS
        self.shape: Shape | Pick | None = None
        self.fixed = fixed
        self.expect = expect  # the outcome the decision promised (None: any)
        self.reads = reads  # the names its rendering read (for forgetting it after a change)


class _Declined:
    """A compiled "not mine" (routed, health-checked, client-dependent, SERVFAIL)."""


DECLINED: Any = _Declined()
_SEARCH: Any = _Declined()  # `_shape_of`'s "find the zone here"


class _TracedNodes:
    """`zone.nodes` as the reference reads it, recording each name read (and whether any node
    read holds data whose answer may change without a change batch: health, routing)."""

    __slots__ = ("_nodes", "reads", "unsteady")

    def __init__(self, nodes: dict, reads: set[Key]):
        self._nodes = nodes
        self.reads = reads
        self.unsteady = False

    def _note(self, k: Key, node: dict | None) -> dict | None:
        self.reads.add(k)
        if node is not None:
            for e in node.values():
                if type(e) is Routed or (type(e) is Weighted and e.checked):
                    self.unsteady = True
        return node

    def get(self, k: Key, default: Any = None) -> Any:
        node = self._nodes.get(k)
        return default if self._note(k, node) is None else node

    def __getitem__(self, k: Key) -> dict:
        return self._note(k, self._nodes[k])  # type: ignore[return-value]

    def __contains__(self, k: Key) -> bool:
        return self._note(k, self._nodes.get(k)) is not None


class _TracedSet:
    __slots__ = ("_set", "reads")

    def __init__(self, s: set[Key], reads: set[Key]):
        self._set = s
        self.reads = reads

    def __contains__(self, k: Key) -> bool:
        self.reads.add(k)
        return k in self._set


class _TracedZone:
    """A zone seen through the tracers; everything else is the zone's own. Reading the SOA
    counts as reading the apex (an SOA change touches the apex)."""

    def __init__(self, zone: Zone, reads: set[Key]):
        self._zone = zone
        self.nodes = _TracedNodes(zone.nodes, reads)
        self.existing = _TracedSet(zone.existing, reads)
        self.cuts = zone.cuts  # a change to a cut forgets the whole zone's templates
        self.okey = zone.okey
        self._reads = reads

    @property
    def negative_soa(self) -> Any:
        self._reads.add(self._zone.okey)
        return self._zone.negative_soa

    @property
    def soa(self) -> Any:
        self._reads.add(self._zone.okey)
        return self._zone.soa

    def contains(self, k: Key) -> bool:
        return self._zone.contains(k)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._zone, name)


class _ZoneState:
    """One zone's templates: per owner and type, per wildcard source and type, per cut, and
    the zone's NXDOMAIN and NODATA; `deps` says which templates read which names."""

    __slots__ = ("zone", "soa", "nxdomain", "nodata", "owners", "wild", "cuts", "deps",
                 "qtypes", "wildcards", "soa_parts")

    def __init__(self, zone: Zone | None):
        self.zone = zone
        # whether any name of the zone has a `*` label (owner, or empty non-terminal): without
        # one no missing name can be synthesised (RFC 4592 §2.1.1), so a name that does not
        # exist is NXDOMAIN without the closest-encloser walk. A name below a `*` label makes
        # that label's name an empty non-terminal, so the first labels say it all. Read once
        # per zone (on its first query that reads templates), kept by `changed`.
        self.wildcards = zone is not None and any(k[0] == _WILD for k in zone.existing)
        self.soa: object = None  # the negative SOA the zone templates were rendered with
        self.nxdomain: Template | None = None
        self.nodata: Template | None = None
        # by (owner, type): flat, for memory (one entry per CNAME owner asked, typically)
        self.owners: dict[tuple[Key, int], Template | _Declined] = {}
        self.qtypes: set[int] = set()  # the types `owners` has held (for forgetting an owner)
        self.wild: dict[Key, dict[int, Template | _Declined]] = {}
        self.cuts: dict[Key, Template | _Declined] = {}
        self.deps: dict[Key, list[tuple[int, Key, int]]] = {}  # (a list: memory; repeats harmless)
        # the negative SOA's names and fixed bytes for `_cname_body`, with the RRset they
        # were read from (a new SOA object, each accepted batch, reads them again)
        self.soa_parts: tuple[object, _SoaParts | None] | None = None


_OWNER, _WILDCARD, _CUT = 0, 1, 2
_NO_STATE = _ZoneState(None)  # `CompiledAnswers._last` before any zone is asked


def name_key(text: str) -> Key:
    """The lookup key of a stored record name (absolute presentation form, as the store keeps
    it), as `answer.key_of` gives it. Names with escapes go through dnspython."""
    if text == ".":
        return (b"",)
    if "\\" in text:
        import dns.name

        return key_of(dns.name.from_text(text))
    return tuple(text.lower().encode().split(b"."))


class CompiledAnswers:
    """The templates of every served zone (built lazily per zone, kept until a change forgets
    them), and the per-packet `respond`.

    Args:
        table: the serving index's zones (health, location table and CIDR collections too).
        rng: `random()` for weighted picks.
    """

    def __init__(self, table: ZoneTable, rng: Callable[[], float]):
        self.table = table
        self.random = rng
        self._states: dict[Key, _ZoneState] = {}
        self._last = _NO_STATE  # the state `respond` used last (most queries ask one zone)
        # where `udp` keeps an owner's own answer: (query after the ID, response after the
        # ID, zone key); set by the serving index
        self.keep: Callable[[bytes, bytes, Key], None] | None = None
        # templates rendered (`direct`: of them, CNAME owners spliced without the pipeline);
        # decisions the reference overruled
        self.stats = {"render": 0, "direct": 0, "mismatch": 0}
        self.copied = copied_flags()
        # the last packet `udp` declined (see `udp`)
        self.declined: bytes | None = None
        self._seen = bytearray(_NO_MARKS)  # `udp`'s doorkeeper marks, then their count

    # --- keeping up with the zones -----------------------------------------------------------

    def forget(self, okey: Key | None = None) -> None:
        """Forget one zone's templates (a snapshot, a deleted zone), or all of them (None)."""
        self.declined = None
        self._last = _NO_STATE
        if okey is None:
            self._states.clear()
        else:
            self._states.pop(okey, None)

    def changed(self, zone: Zone, puts: Iterable[RecordSet], deletes: Iterable[RecordKey]) -> None:
        """A change batch was applied to `zone`: forget the templates of the names it touched,
        their ancestors (whose existence may have changed, RFC 4592 §2.2.2), and every template
        that read one of those. A new or removed cut, or a DNAME, forgets the zone's all."""
        self.declined = None
        self._last = _NO_STATE
        st = self._states.get(zone.okey)
        if st is None:
            return
        if st.zone is not zone:
            self._states.pop(zone.okey, None)
            return
        touched: set[Key] = set()
        okey = zone.okey
        n = len(okey)
        for name, rtype in [(rs.name, rs.rtype) for rs in puts] + [(k[0], k[1]) for k in deletes]:
            k = name_key(name)
            if _WILD in k:
                st.wildcards = True  # (a deletion leaves it set: a walk more, never a miss)
            if rtype == "DNAME" or (rtype == "NS" and k != okey):
                self._states.pop(okey, None)
                return
            while len(k) >= n and k not in touched:
                touched.add(k)
                k = k[1:]
        owners, wild, cuts, deps, qtypes = st.owners, st.wild, st.cuts, st.deps, st.qtypes
        for k in touched:
            for t in qtypes:
                owners.pop((k, t), None)
            wild.pop(k, None)
            cuts.pop(k, None)
            for kind, key, qtype in deps.pop(k, ()):
                if kind == _OWNER:
                    owners.pop((key, qtype), None)
                elif kind == _CUT:
                    cuts.pop(key, None)
                else:
                    types = wild.get(key)
                    if types is not None:
                        types.pop(qtype, None)
        # the NXDOMAIN/NODATA templates follow the negative SOA by identity (`_zone_template`)

    def _state(self, zone: Zone) -> _ZoneState:
        st = self._states.get(zone.okey)
        if st is None or st.zone is not zone:
            st = self._states[zone.okey] = _ZoneState(zone)
        self._last = st
        return st

    # --- answering ---------------------------------------------------------------------------

    def udp(self, wire: bytes) -> bytes | None:
        """`respond` over UDP for the UDP shell, handing an owner's own answer to `keep`
        (the serving index's exact table) the second time the same packet (after its ID)
        is answered here, so the next one is a table hit in the shell itself. A query it
        declines is remembered (`declined`), so the index's `respond`, asked next for the
        same packet object, does not read it here again."""
        return self._kept(wire, self.respond(wire, False))

    def udp_read(self, wire: bytes, k: Key, qtype: int, qend: int,
                 zone: Any = _SEARCH) -> bytes | Answer | None:
        """`udp` for a question the C UDP loop has already read (`_fastudp.read_question`,
        the same reader as `authd.dns.wire.read_query`, for a query without EDNS): `k` is
        the name's key (lowered labels and the root's b""), `qend` the offset past the
        question, `zone` the zone C found in `table.zones` by the name's suffixes, deepest
        first (None: none; `_SEARCH`, the default: find it here). Only the lookups and the
        decision are left (`_shape_of`): the answer is
        returned as `_shape_of` gives it, for the C loop to splice as `_spliced` does, or as
        the response's bytes when it goes to the exact table (`_kept`)."""
        got = self._shape_of(wire, k, qend, qtype, 0, 0, False, zone)
        if got is None:
            self.declined = wire
            return None
        okey = got[5]
        if okey is not None and self.keep is not None:
            key = wire[2:]  # the key `keep` takes, sliced once
            if self.seen_before(key):
                out = self._spliced(wire, qend, 0, got)
                self.keep(key, out[2:], okey)
                return out
        return got  # the C loop splices it as `_spliced` does

    def _kept(self, wire: bytes, done: tuple[bytes, Key | None] | None) -> bytes | None:
        """What `udp` does with a response: remember a decline, keep a repeated owner's
        answer in the exact table."""
        if done is None:
            self.declined = wire
            return None
        out, okey = done
        if okey is not None and self.keep is not None and self.seen_before(wire[2:]):
            self.keep(wire[2:], out[2:], okey)
        return out

    def seen_before(self, key: bytes) -> bool:
        """The doorkeeper (as TinyLFU's) in front of `keep`: a query seen once is only
        marked. Random names (asked once each) would otherwise fill the table, and empty it
        when full, for nothing; a repeated one is kept on its second answer. A slot two
        queries share keeps the second early (harmless); the marks start over every
        _SEEN_EPOCH. The C UDP loop runs this same rule on the same marks (`doorkeeper`)."""
        seen = self._seen
        slot = hash(key) & _SEEN_MASK
        if seen[slot]:
            return True
        seen[slot] = 1
        n = (seen[_SEEN_COUNT] << 8 | seen[_SEEN_COUNT + 1]) + 1
        if n >= _SEEN_EPOCH:
            seen[:] = _NO_MARKS  # in place: the C loop may hold this bytearray
            n = 0
        seen[_SEEN_COUNT] = n >> 8
        seen[_SEEN_COUNT + 1] = n & 0xFF
        return False

    @property
    def doorkeeper(self) -> tuple[bytearray, int]:
        """`seen_before`'s state for the C UDP loop to run it itself: the marks (a mask's
        worth, then their count in two octets, big-endian) and how many start them over."""
        return self._seen, _SEEN_EPOCH

    def respond(self, wire: bytes, tcp: bool) -> tuple[bytes, Key | None] | None:
        """The response to one query, with its zone's key when the answer is one owner's own
        single answer (so the index may keep it in its exact table, forgotten with the zone's
        other answers), or None: not compiled, ask the pipeline.

        The query is read by `authd.dns.wire.read_query`, as `parse_fast` reads it (one
        reader of the query's shape for every fast path). The commonest answers are decided
        in `_shape_of` (see the module's notes); every other shape by `_decide`."""
        q = read_query(wire)
        if q is None:
            return None
        variant = q[4]
        got = self._shape_of(wire, q[0], q[2], q[3], variant, q[5], tcp, _SEARCH)
        if got is None:
            return None
        return self._spliced(wire, q[2], variant, got), got[5]

    def _spliced(self, wire: bytes, qend: int, variant: int, got: Answer) -> bytes:
        """The response from `_shape_of`'s answer: the header with the query's ID and the
        bits the pipeline copies (RD, RFC 1035 §4.1.1), the question as asked, the sections,
        the OPT last with DO echoed (RFC 6891 §6.1.1, RFC 3225 §3). The C UDP loop splices
        `udp_read`'s answers by this same rule (`splice` in authd/dns/_fastudp.c)."""
        base, an, ns, ar, body, _ = got
        return (wire[:2] + _HEAD.pack(base | (wire[2] << 8 | wire[3]) & self.copied, 1, an, ns,
                                      ar + 1 if variant else ar)
                + wire[12:qend] + body + (_OPT[variant] if variant else b""))

    def _shape_of(self, wire: bytes, k: Key, qend: int, qtype: int, variant: int,
                  payload: int, tcp: bool, zone: Any = _SEARCH) -> Answer | None:
        """`respond` after the query is read (by `read_query`, or by the C UDP loop's
        reader for `udp_read`): the zone, the decision and the size check, written once
        for both; None: the pipeline's. `variant` and `payload` are `read_query`'s EDNS
        fields (0, 0 without EDNS); `zone` the zone holding the name (None: none), or
        _SEARCH to find it here."""
        if qtype in NOT_COMPILED:
            return None
        if zone is _SEARCH:  # the deepest zone holding the name (the C loop searches alike)
            zones = self.table.zones
            zone = None
            for j in range(len(k)):
                zone = zones.get(k[j:])
                if zone is not None:
                    break
        if zone is None or zone.dnames:  # REFUSED; DNAME substitution (RFC 6672 §3.2)
            return None  # the pipeline's
        okey: Key | None = zone.okey
        cuts = zone.cuts
        cut = None
        if cuts:  # a delegation at or above the name (RFC 1034 §4.3.2 step 3b)
            for j in range(len(k) - len(okey) - 1, -1, -1):
                if k[j:] in cuts:
                    cut = k[j:]
                    break
        node = zone.nodes.get(k) if cut is None else None
        entry = node.get(qtype) if node is not None else None
        if type(entry) is Plain and entry.rrset.tails:  # type: ignore[union-attr]
            # the owner's own RRset with no name to compress in its rdata: its RRs rendered
            # at load (`WireRRset.tails`), each owner a pointer to the question (RFC 1035
            # §4.1.4); nothing is kept per name
            tails = entry.rrset.tails  # type: ignore[union-attr]
            an = len(tails)
            base, ns, ar = QR_AA, 0, 0
            body = _PTR_QNAME + (tails[0] if an == 1 else _PTR_QNAME.join(tails))
        else:
            st = self._last
            if st.zone is not zone:
                st = self._state(zone)
            # the commonest shapes decided here, as `_decide` decides them
            template: Template | _Declined | None
            if node is None and cut is None and not st.wildcards and k not in zone.existing:
                # NXDOMAIN (RFC 2308 §2.1): no name, no cut above it, no wildcard to
                # synthesise from (RFC 4592 §2.1.1)
                template = st.nxdomain if st.soa is zone.negative_soa else None
                if template is None:
                    template = self._zone_template(st, Outcome.MISS)
            elif entry is None and node is not None:  # (a node: no cut at or above it)
                if _CNAME in node:  # the owner's CNAME, its template once made
                    template = st.owners.get((k, qtype))
                    if template is None:
                        template = self._decide(st, zone, k, wire[12:qend].lower(), qtype,
                                                cut, node)
                else:  # the owner without the type: NODATA (RFC 2308 §2.2)
                    template = st.nodata if st.soa is zone.negative_soa else None
                    if template is None:
                        template = self._zone_template(st, Outcome.NODATA)
            else:
                template = self._decide(st, zone, k, wire[12:qend].lower(), qtype, cut, node)
            if template is None or template is DECLINED:
                return None
            t: Template = template  # type: ignore[assignment]
            if t.fixed:
                got = t.shape
            else:
                okey = None
                s = t.suffixes
                m: Key = ()
                for j in range(len(k)):
                    if k[j:] in s:
                        m = k[j:]
                        break
                qlen = qend - 16  # the name's wire length
                got = t.variants.get((m, qlen))
                if got is None:
                    got = self._fill(st, t, wire[12:qend].lower(), m, qlen)
            if got is None:
                return None
            if type(got[0]) is int:  # type: ignore[index]
                base, an, ns, ar, body = got  # type: ignore[misc]
            else:  # a weighted pick
                cumulative, shapes = got  # type: ignore[misc]
                base, an, ns, ar, body = shapes[bisect.bisect_right(cumulative, self.random())]
                okey = None
        # the size of the response `_spliced` writes (the OPT is 11 octets)
        size = qend + len(body)
        if variant:
            size += 11
            limit = (TCP_LIMIT if tcp else OUR_PAYLOAD if payload > OUR_PAYLOAD
                     else payload if payload > MIN_UDP else MIN_UDP)
        else:
            limit = TCP_LIMIT if tcp else MIN_UDP
        if size > limit or size > MAX_PTR:
            return None  # truncation is the pipeline's (RFC 2181 §9)
        return base, an, ns, ar, body, okey

    def _decide(self, st: _ZoneState, zone: Zone, k: Key, question: bytes, qtype: int,
                cut: Key | None, node: dict | None) -> Template | _Declined | None:
        """The template answering every shape `respond` does not decide inline (`cut`: the
        delegation at or above the name, `node`: its data), by RFC 1034 §4.3.2 as the module
        notes say; None: the pipeline's."""
        if cut is not None:
            template = st.cuts.get(cut)
            if template is None:
                template = st.cuts[cut] = self._template(st, question, k, Outcome.DELEG, False)
                self._note_deps(st, template, _CUT, cut, 0)
            return template
        nodes = zone.nodes
        if node is not None:  # (a plain RRset with tails was spliced by `respond`)
            if qtype in node or _CNAME in node:
                template = st.owners.get((k, qtype))
                if template is None:
                    template = st.owners[(k, qtype)] = self._template(st, question, k, None, True,
                                                                       node)
                    st.qtypes.add(qtype)
                    self._note_deps(st, template, _OWNER, k, qtype)
                return template
            # the owner without the type: NODATA (RFC 2308 §2.2)
        elif k not in zone.existing:
            if not st.wildcards:  # NXDOMAIN (RFC 2308 §2.1)
                return st.nxdomain if st.soa is zone.negative_soa and st.nxdomain is not None \
                    else self._zone_template(st, Outcome.MISS)
            existing = zone.existing
            nz = len(zone.okey)
            ce = k[1:]
            while ce not in existing and len(ce) > nz:
                ce = ce[1:]
            source = (_WILD,) + ce
            if source in nodes:
                types = st.wild.get(source)
                if types is None:
                    types = st.wild[source] = {}
                template = types.get(qtype)
                if template is None:
                    template = types[qtype] = self._template(st, question, k, None, False)
                    self._note_deps(st, template, _WILDCARD, source, qtype)
                return template
            if source in existing:
                return None  # a wildcard that is an empty non-terminal: the pipeline's
            return st.nxdomain if st.soa is zone.negative_soa and st.nxdomain is not None \
                else self._zone_template(st, Outcome.MISS)
        # NODATA at an owner, or at an empty non-terminal (RFC 4592 §2.2.2)
        return st.nodata if st.soa is zone.negative_soa and st.nodata is not None \
            else self._zone_template(st, Outcome.NODATA)

    def _zone_template(self, st: _ZoneState, outcome: Outcome) -> Template:
        """The zone's NXDOMAIN or NODATA template, new with every SOA (each accepted batch
        bumps the serial): only the negative SOA is in its sections (RFC 2308 §2.1, §2.2)."""
        neg = st.zone.negative_soa
        if st.soa is not neg:
            st.soa, st.nxdomain, st.nodata = neg, None, None
        if outcome is Outcome.MISS:
            if st.nxdomain is None:
                st.nxdomain = Template(_names(neg), False, outcome)
            return st.nxdomain
        if st.nodata is None:
            st.nodata = Template(_names(neg), False, outcome)
        return st.nodata

    def _template(self, st: _ZoneState, question: bytes, k: Key, expect: Outcome | None,
                  fixed: bool, node: dict | None = None) -> Template | _Declined:
        """A new template and its first variant, rendered for this question (`fixed`: an
        owner's own answer, the same bytes for every spelling of its name; `node`: its data,
        when the caller has it)."""
        rendered = self._direct(st, question, k, node) if fixed else None
        if rendered is not None:
            self.stats["direct"] += 1
        else:
            rendered = self._run(st.zone, question)
            if rendered is None:
                return DECLINED
        outcomes, suffixes, reads = rendered
        if expect is not None and any(r.outcome is not expect for _, r in outcomes):
            self.stats["mismatch"] += 1
            return DECLINED
        # a fixed template needs no suffixes (one spelling of one name): none kept, for memory
        t = Template(_NOTHING if fixed else frozenset(suffixes), fixed, expect, frozenset(reads))
        if fixed:
            t.shape = _shape(outcomes, question)
        else:
            m: Key = ()
            for j in range(len(k)):
                if k[j:] in t.suffixes:
                    m = k[j:]
                    break
            t.variants[(m, len(question) - 4)] = _shape(outcomes, question)
        self.stats["render"] += 1
        return t

    @staticmethod
    def _note_deps(st: _ZoneState, t: Template | _Declined, kind: int, key: Key,
                   qtype: int) -> None:
        """Register a fresh template under every other name its first rendering read (a
        declined one is forgotten with its own name only: what it read is in the zone's
        structure, which any change to a cut or a DNAME forgets whole)."""
        if isinstance(t, Template):
            for r in t.reads:
                if r != key:
                    st.deps.setdefault(r, []).append((kind, key, qtype))
            t.reads = _NOTHING  # registered: the template need not keep them

    def _direct(self, st: _ZoneState, question: bytes, k: Key,
                node: dict | None = None) -> tuple[list, set[Key], set[Key]] | None:
        """An owner's CNAME followed one step as `answer.solve` follows it (RFC 1034 §4.3.2
        step 3a, one restart), rendered by the reference's own renderer without the rest of
        the pipeline: to a plain RRset of the asked type (HIT), out of the zone (FOLLOW: the
        chain so far), to a name without the type (NODATA) or to no name (NXDOMAIN; RFC 2308
        §2.1, the CNAME in the answer, the SOA in authority). None for every other shape
        (cuts, wildcards, further CNAMEs, aliases and weighted sets: the pipeline's)."""
        zone: Zone = st.zone  # type: ignore[assignment]
        if node is None:
            node = zone.nodes[k]
        qtype = question[-4] << 8 | question[-3]
        cname = node.get(_CNAME)
        if qtype in node or qtype == _NS or type(cname) is not Plain:
            return None
        # the target from the CNAME's wire rdata (RFC 1035 §3.3.1), case kept: reading the
        # dnspython rdata would build it from text (~100 us, most of a CNAME owner's first query)
        wires = cname.rrset.wires  # type: ignore[union-attr]
        labels = _wire_labels(wires[0]) if len(wires) == 1 else None
        if labels is None:
            return None
        target = (*map(bytes.lower, labels), b"")
        if target == k:
            return None
        reads = {k, target}
        suffixes = _NOTHING  # a fixed template keeps none (one spelling of one name)
        if not zone.contains(target):
            return [(1.0, _DirectReply([cname.rrset], labels, qlabels=k[:-1]))], suffixes, reads  # type: ignore[union-attr]
        okey = zone.okey
        cuts = zone.cuts
        if cuts:  # a cut at or above the target: a referral's (most zones have none)
            for j in range(len(target) - len(okey)):
                if target[j:] in cuts:
                    return None
        tnode = zone.nodes.get(target)
        negative = zone.negative_soa
        if tnode is not None:
            data = tnode.get(qtype)
            if type(data) is Plain:
                return [(1.0, _DirectReply([cname.rrset, data.rrset], labels, qlabels=k[:-1]))], suffixes, reads  # type: ignore[union-attr]
            if data is not None or _CNAME in tnode:
                return None
            rcode = 0  # NODATA at the target (RFC 2308 §2.2)
        elif target in zone.existing:
            rcode = 0  # an empty non-terminal
        else:
            ce = target[1:]
            while ce not in zone.existing and len(ce) > len(okey):
                reads.add(ce)
                ce = ce[1:]
            source = (_WILD,) + ce
            reads.add(source)
            if source in zone.nodes or source in zone.existing:
                return None  # wildcard synthesis (or a wildcard ENT): the pipeline's
            rcode = 3  # NXDOMAIN
        reads.add(okey)  # the SOA
        parts = st.soa_parts
        if parts is None or parts[0] is not negative:
            parts = st.soa_parts = (negative, _SoaParts.of(negative))
        reply = _DirectReply([cname.rrset], labels, [negative], rcode, parts[1], k[:-1])  # type: ignore[union-attr]
        return [(1.0, reply)], suffixes, reads

    def _fill(self, st: _ZoneState, t: Template, question: bytes, m: Key,
              qlen: int) -> Shape | Pick | None:
        """Render one (suffix, L) variant through the reference pipeline and keep it."""
        rendered = self._run(st.zone, question)  # (fixed templates are rendered once, whole)
        if rendered is None:
            return None
        outcomes, suffixes, _ = rendered
        if (t.expect is not None and any(r.outcome is not t.expect for _, r in outcomes)) \
                or (not t.fixed and not t.suffixes.issuperset(suffixes)):
            self.stats["mismatch"] += 1  # the decision and the reference disagree: theirs
            return None
        shape = _shape(outcomes, question)
        if len(t.variants) >= _VARIANTS_PER_TEMPLATE:
            t.variants.clear()
        t.variants[(m, qlen)] = shape
        self.stats["render"] += 1
        return shape

    def _run(self, zone: Zone, question: bytes) -> tuple[list, set[Key], set[Key]] | None:
        """Every outcome of the reference pipeline for the representative query, the names
        its sections write (with their suffixes) and the names it read; None to decline."""
        reads: set[Key] = set()
        traced = _TracedZone(zone, reads)
        view = ZoneTable()
        view.zones = {zone.okey: traced}  # type: ignore[dict-item]
        view.health, view.geomap, view.cidr = self.table.health, self.table.geomap, self.table.cidr
        wire = _QUERY_HEAD + question
        try:
            outcomes = list(enumerate_outcomes(lambda picker: answer(wire, view, rng=picker)))
        except OverflowError:
            return None
        if traced.nodes.unsteady:
            return None
        qkey = None
        suffixes: set[Key] = set()
        for _, reply in outcomes:
            if (reply is None or reply.problem or reply.located or reply.edns >= 0
                    or reply.outcome in (Outcome.SERVFAIL, Outcome.REFUSED, Outcome.FORMERR)):
                return None
            if qkey is None:
                qkey = key_of(reply.qname)
            for section in (reply.answer, reply.authority, reply.additional):
                for rrset in section:
                    owner = key_of(rrset.name)
                    if owner != qkey:
                        _add_suffixes(suffixes, owner)
                    if rrset.rdtype in COMPRESSIBLE:
                        for name in _rdata_names(rrset):
                            _add_suffixes(suffixes, key_of(name))
        return outcomes, suffixes, reads


class _DirectReply:
    """What `_shape` and `_run`'s callers read of a reply, for `_direct`'s answers: the
    owner's CNAME (its target's labels given, read from its wire rdata), then the rest."""

    def __init__(self, answer: list, target: tuple[bytes, ...], authority: list = (),  # type: ignore[assignment]
                 rcode: int = 0, soa: _SoaParts | None = None, qlabels: Key | None = None):
        self.answer, self.authority, self.rcode = answer, list(authority), rcode
        self.target = target
        self.soa = soa  # the negative SOA's parts, when `authority` holds it
        self.qlabels = qlabels  # the question's lowered labels (without the root's)
        self.outcome = (Outcome.MISS if rcode else Outcome.NODATA) if authority else Outcome.HIT

    def written(self, question: bytes) -> Shape | None:
        """The shape of the CNAME alone (out of the zone) or with the negative SOA (NXDOMAIN,
        NODATA), by `_cname_body`; None for the others (`to_wire`)."""
        if len(self.answer) != 1 or (self.authority and self.soa is None):
            if not self.authority and len(self.answer) == 2 and self.answer[1].tails \
                    and question[0] and self.target:  # (neither name the root)
                return self._spliced(question)
            return None
        labels = self.qlabels if self.qlabels is not None else question_key(question)[:-1]
        return (QR_AA | self.rcode, 1, 1 if self.soa else 0, 0,
                _cname_body(question, labels, self.answer[0], self.target, self.soa))

    def to_wire(self, limit: int, question: bytes = b"") -> bytes:
        shape = self.written(question)
        if shape is not None:
            base, an, ns, ar, body = shape
            return b"\x00\x00" + _HEAD.pack(base, 1, an, ns, ar) + question + body
        labels = tuple(question_key(question)[:-1])
        r = Renderer(bytes(12), question, labels)
        # the CNAME RR as `Renderer.rrset` writes one (owner, then the target, each
        # compressed, RFC 1035 §4.1.4), without reading its dnspython rdata
        cname = self.answer[0]
        r.name(cname.name.labels[:-1])
        out = r.out
        out += b"\x00\x05" + cname.rdclass.to_bytes(2, "big") + cname.ttl.to_bytes(4, "big")
        at = len(out)
        out += b"\x00\x00"
        r.name(self.target)
        out[at:at + 2] = (len(out) - at - 2).to_bytes(2, "big")
        an = 1 + sum(r.rrset(x) for x in self.answer[1:])
        ns = sum(r.rrset(x) for x in self.authority)
        r.out[2:12] = _HEAD.pack(QR_AA | self.rcode, 1, an, ns, 0)
        return bytes(r.out)


    def _spliced(self, question: bytes) -> Shape:
        """`written` for the commonest CNAME answer, the owner's CNAME and then its target's
        RRset with no name in its rdata (load-time `tails`), spliced as `Renderer` writes
        it: the owner a pointer to the question, the target compressed against the question
        name's suffixes only (RFC 1035 §4.1.4: the deepest one that ends it), each target RR
        a pointer to the target. A CNAME owner's first query cost ~45 us through `Renderer`.

        The deepest suffix of the target that is also a suffix of the question's name is
        their longest common run of trailing labels (a suffix of a matching suffix matches
        too), so it is found from the end, label by label, without a table of offsets."""
        qlabels = self.qlabels  # the question's lowered labels, without the root's
        if qlabels is None:
            qlabels = question_key(question)[:-1]
        target = self.target
        nq, nt = len(qlabels), len(target)
        c = 0  # trailing labels shared (compared lowered, written as stored)
        while c < nt and c < nq and target[nt - 1 - c].lower() == qlabels[nq - 1 - c]:
            c += 1
        head = nt - c  # the target's labels written out before any pointer
        name = b"".join([bytes((len(label),)) + label for label in target[:head]])
        rdata_at = 12 + len(question) + 12  # the CNAME RR's rdata, after the question
        if c:
            ptr = 12 + nq - c + sum(map(len, qlabels[:nq - c]))  # where that suffix starts
            name += (0xC000 | ptr).to_bytes(2, "big")
            here = rdata_at if head else ptr  # where the target starts
        else:
            name += b"\x00"
            here = rdata_at
        cname, data = self.answer
        tails = data.tails
        owner = (0xC000 | here).to_bytes(2, "big")
        body = (b"\xc0\x0c\x00\x05" + cname.rdclass.to_bytes(2, "big")
                + cname.ttl.to_bytes(4, "big") + len(name).to_bytes(2, "big") + name
                + owner + owner.join(tails))
        return QR_AA, 1 + len(tails), 0, 0, body


class _SoaParts:
    """A zone's negative SOA as `Renderer.rrset` reads it, for `_cname_body`: the owner, the
    MNAME and RNAME (labels as stored, and their lowered suffixes: `Renderer.comp`'s keys),
    the RR's type, class and TTL, and the five fixed fields (RFC 1035 §3.3.13)."""

    __slots__ = ("owner", "head", "mname", "rname", "fixed")

    def __init__(self, owner: tuple, head: bytes, mname: tuple, rname: tuple, fixed: bytes):
        self.owner, self.head, self.mname, self.rname, self.fixed = owner, head, mname, rname, fixed

    @staticmethod
    def of(rrset: Any) -> _SoaParts | None:
        """From the SOA's wire rdata (uncompressed, case kept: no dnspython rdata read);
        None for anything else (the renderer writes it)."""
        wires = getattr(rrset, "wires", ())
        if rrset.rdtype != _SOA or len(wires) != 1:
            return None
        wire = wires[0]
        names = []
        i = 0
        for _ in range(2):
            start = i
            while i < len(wire) and wire[i]:
                i += wire[i] + 1
            i += 1
            labels = _wire_labels(wire[start:i]) if i <= len(wire) else None
            if labels is None:
                return None
            names.append(_spelled(labels))
        if len(wire) - i != 20:
            return None
        head = (_SOA.to_bytes(2, "big") + rrset.rdclass.to_bytes(2, "big")
                + rrset.ttl.to_bytes(4, "big"))
        return _SoaParts(_spelled(rrset.name.labels[:-1]), head, names[0], names[1], wire[i:])


def _spelled(labels: tuple[bytes, ...]) -> tuple[tuple[bytes, ...], list[tuple[bytes, ...]]]:
    """A name's labels and the lowered suffix `Renderer.name` looks up before each."""
    lowered = tuple(map(bytes.lower, labels))
    return labels, [lowered[i:] for i in range(len(lowered))]


def _put_name(out: bytearray, base: int, comp: dict, name: tuple) -> None:
    """`Renderer.name` into `out`, whose first octet is at `base` in the message: each suffix
    a pointer to where it was written before, else its label, remembered (RFC 1035 §4.1.4)."""
    labels, suffixes = name
    for i in range(len(labels)):
        ptr = comp.get(suffixes[i])
        if ptr is not None:
            out += (0xC000 | ptr).to_bytes(2, "big")
            return
        pos = base + len(out)
        if pos < MAX_PTR:
            comp[suffixes[i]] = pos
        label = labels[i]
        out.append(len(label))
        out += label
    out.append(0)


def _cname_body(question: bytes, labels: Key, cname: Any, target: tuple[bytes, ...],
                soa: _SoaParts | None) -> bytes:
    """The sections of a CNAME owner's answer that is its CNAME alone or the CNAME and the
    negative SOA in authority, as `Renderer` writes them after this (lowered) question, without
    it: the owner is the question's name (a pointer to it, RFC 1035 §4.1.4), the target and the
    SOA's names compressed against the question's suffixes and every name written before."""
    comp: dict[tuple[bytes, ...], int] = {}
    at = 12  # `labels`: the question's, lowered, without the root's
    for i in range(len(labels)):
        comp[labels[i:]] = at
        at += len(labels[i]) + 1
    base = 12 + len(question)
    out = bytearray(_PTR_QNAME if labels else b"\x00")
    out += (b"\x00\x05" + cname.rdclass.to_bytes(2, "big") + cname.ttl.to_bytes(4, "big")
            + b"\x00\x00")
    rdata = len(out)
    _put_name(out, base, comp, _spelled(target))
    out[rdata - 2:rdata] = (len(out) - rdata).to_bytes(2, "big")
    if soa is not None:
        _put_name(out, base, comp, soa.owner)
        out += soa.head + b"\x00\x00"
        rdata = len(out)
        _put_name(out, base, comp, soa.mname)
        _put_name(out, base, comp, soa.rname)
        out += soa.fixed
        out[rdata - 2:rdata] = (len(out) - rdata).to_bytes(2, "big")
    return bytes(out)


def _shape(outcomes: list, question: bytes) -> Shape | Pick:
    """The sections of each outcome as rendered, with its header's flags and counts."""
    shapes: list[Shape] = []
    for _, reply in outcomes:
        if type(reply) is _DirectReply:
            written = reply.written(question)
            if written is not None:
                shapes.append(written)
                continue
        full = (reply.to_wire(TCP_LIMIT, question) if type(reply) is _DirectReply
                else reply.to_wire(TCP_LIMIT))
        shapes.append(((full[2] << 8 | full[3]) & ~_RD_CD, full[6] << 8 | full[7],
                       full[8] << 8 | full[9], full[10] << 8 | full[11], full[12 + len(question):]))
    if len(shapes) == 1:
        return shapes[0]
    cumulative: list[float] = []
    total = 0.0
    for p, _ in outcomes:
        total += p
        cumulative.append(total)
    cumulative[-1] = 1.0  # float sums may fall short; random() < 1.0 always lands
    return cumulative, shapes


def _wire_labels(wire: bytes) -> tuple[bytes, ...] | None:
    """The labels (without the root) of an uncompressed wire name filling `wire`, or None."""
    labels = []
    i, n = 0, len(wire)
    while i < n:
        length = wire[i]
        if not length:
            return tuple(labels) if i + 1 == n else None
        if length > 63:
            return None
        labels.append(wire[i + 1:i + 1 + length])
        i += length + 1
    return None


def question_key(question: bytes) -> Key:
    """The lookup key of a (lowered) question section's name."""
    labels = []
    i = 0
    while question[i]:
        labels.append(question[i + 1:i + 1 + question[i]])
        i += question[i] + 1
    labels.append(b"")
    return tuple(labels)


@functools.cache  # a property of the pipeline's code, not of any zone: asked once
def copied_flags() -> int:
    """The header bits (of RD and CD) the reference pipeline copies from a query into its
    response (RFC 1035 §4.1.1 copies RD; whether CD is copied is `answer._finish`'s call)."""
    reply = answer(_PROBE, ZoneTable(), rng=lambda: 0.0)
    assert reply is not None
    return reply.flags & _RD_CD


def _add_suffixes(out: set[Key], k: Key) -> None:
    for i in range(len(k)):
        out.add(k[i:])


def _rdata_names(rrset: Any) -> list:
    names = []
    for rd in rrset:
        t = rd.rdtype
        if t == _SOA:
            names += [rd.mname, rd.rname]
        elif t == 15:  # MX
            names.append(rd.exchange)
        else:  # NS, CNAME, PTR
            names.append(rd.target)
    return names


def _names(rrset: Any) -> frozenset[Key]:
    """S of a template whose sections hold only this RRset (the negative SOA)."""
    out: set[Key] = set()
    _add_suffixes(out, key_of(rrset.name))
    for name in _rdata_names(rrset):
        _add_suffixes(out, key_of(name))
    return frozenset(out)
