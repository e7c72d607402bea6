"""The serving index: what DNS answers, fed only by journal entries, built for speed.

Pure core (no sockets, no clock; randomness injected). `ServingIndex.apply(entry)` is the one
path from the store to DNS, at startup (one SNAPSHOT entry per zone) and at runtime (CHANGE and
ZONE_DELETED entries in `seq` order). `respond(wire, tcp=...)` is the per-packet entry point.

Speed: a query in the common shape (`authd.dns.wire.parse_fast`) is looked up by (RD/CD bits,
lowercased question, EDNS variant) in a table of answers rendered by the full pipeline the first
time that question is asked. A weighted question stores every possible outcome (enumerated
through the same answer logic) with cumulative probabilities, so a pick is one bisect, O(log n).
Per packet only the 2-byte ID and the question bytes (for their case) are copied in. Anything
unusual takes the full path in `authd.dns.answer`. An answer that depends on where the client is
(geolocation, latency, IP-based routing) is rendered per source address instead, and one with
more outcomes than can be listed (multivalue beyond eight) takes the full path every time.
Health-check statuses and CIDR collections arrive as RESOURCE entries; a status change
forgets the answers of the zones that name the check.

A CHANGE entry updates its zone in place (`Zone.update`: only the names and types it names, with
their empty non-terminals, delegation points, weighted tables and the SOA), so applying it costs
the size of the batch, not of the zone; aliases are followed at answer time, so an alias sees
changes to its targets at once. Rendered answers are remembered per zone, and a change forgets
only its own zone's (a SNAPSHOT or a deleted zone forgets them all).
"""

from __future__ import annotations

import bisect
import ipaddress
import logging
import random
from collections import deque as _drain
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat

import dns.name
import dns.rcode
import dns.rdatatype

from authd.dns.answer import (
    MIN_UDP,
    OUR_PAYLOAD,
    TCP_LIMIT,
    Key,
    Outcome,
    Prepared,
    Query,
    Reply,
    Zone,
    ZoneTable,
    answer,
    answer_query,
    answering_zone,
    classify,
    enumerate_outcomes,
    key_of,
    make_query_wire,
)
from authd.dns.answer import prepare as prepare_sets
from authd.dns.compiled import CompiledAnswers
from authd.dns.geo import GeoMap
from authd.dns.wire import parse_fast
from authd.dns.xfr import TransferView
from authd.model.changes import zone_id_for as changes_zone_id_for
from authd.model.changes import zone_id_from_aliases
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import RecordKey, RecordSet
from authd.zonefiles.zonefile import LoadedZone

HEALTH_STATUS = "healthcheck-status"  # resource kind: {"healthy": bool, ...} per health check id
CIDR_COLLECTION = "cidrcollection"  # resource kind: {"Locations": {name: [cidr, ...]}, ...}


def cidr_blocks(doc: dict) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
    """A CIDR collection's blocks with their location names, longest prefix first (so the
    first that holds an address is its longest match). Blocks that do not parse are skipped:
    the API validated them when it stored them."""
    out = []
    for loc, blocks in (doc.get("Locations") or {}).items():
        for b in blocks:
            try:
                out.append((ipaddress.ip_network(b, strict=False), str(loc)))
            except ValueError:
                continue
    out.sort(key=lambda item: -item[0].prefixlen)
    return out

log = logging.getLogger("authd")

# in the rendered-answer table: "answer this question by the full path every time", because
# it has too many outcomes to render them all
_FULL_PATH = object()
# in the rendered-answer table: "this question's answer depends on where the client is": it is
# rendered per source address instead (`_by_source`), and never enters the exact tables
_LOCATED = object()
_RCODE_TEXT = {rc: dns.rcode.to_text(rc) for rc in range(6)}
# distinct questions kept rendered; past it the table starts over. About 620 B per UDP
# question (its rendered answer, its exact-packet entry and its key in `_filled`, measured by
# tracemalloc with NXDOMAIN answers): 25,000 is about 16 MB full (100,000 was 62 MB)
CACHE_LIMIT = 25_000


@dataclass(slots=True)
class _Rendered:
    """One outcome rendered: the full wire and, lazily, its truncations per client limit.

    The reply is kept only when some client limit could need a truncation: no limit is
    below MIN_UDP, so a response that fits in it never does. Most answers are that small,
    and dropping their Reply (question name, section lists) makes forgetting them after a
    change cheaper, and the table smaller.
    """

    reply: Reply | None
    full: bytes
    cut: dict[int, bytes] | None = None
    zone: Key | None = None  # the zone that answered (for forgetting it after a change)

    @classmethod
    def of(cls, reply: Reply) -> _Rendered:
        full = reply.to_wire(TCP_LIMIT)
        return cls(reply if len(full) > MIN_UDP else None, full)

    def fit(self, limit: int) -> bytes:
        if len(self.full) <= limit:
            return self.full
        if self.cut is None:
            self.cut = {}
        wire = self.cut.get(limit)
        if wire is None:
            assert self.reply is not None  # kept for every answer longer than MIN_UDP
            wire = self.cut[limit] = self.reply.truncated(limit)
        return wire


@dataclass
class _Choice:
    """Every outcome of a weighted question with cumulative probabilities (last is 1.0)."""

    cumulative: list[float]
    outcomes: list[_Rendered]
    zone: Key | None = None


class ServingIndex:
    """Zones as DNS serves them, plus the rendered-answer table.

    Args:
        rng: the source of weighted picks (`random.Random` or a callable giving [0, 1)).
        cache: keep rendered answers (False forces the full parse on every packet).
        allow_axfr: answer AXFR over TCP (RFC 5936); refused otherwise.
        geomap: the operator's location table for geolocation and latency routing.
        compiled: answer from compiled templates (`authd.dns.compiled`) before the pipeline.
    """

    def __init__(
        self,
        *,
        rng: random.Random | Callable[[], float] | None = None,
        cache: bool = True,
        cache_limit: int = CACHE_LIMIT,
        allow_axfr: bool = False,
        geomap: GeoMap | None = None,
        compiled: bool = True,
    ):
        r = rng if rng is not None else random.Random()
        self._random: Callable[[], float] = r.random if isinstance(r, random.Random) else r
        self.random = self._random  # for shells that pick from `exact_udp` themselves
        self.cache_enabled = cache
        self.cache_limit = cache_limit
        self.allow_axfr = allow_axfr
        self.seq = 0
        self.table = ZoneTable()
        self.table.geomap = geomap
        self._zones: dict[str, tuple[str, dict[RecordKey, RecordSet]]] = {}  # by zone id
        self._by_id: dict[str, Zone] = {}
        self._cache: dict[tuple[int, bytes, int], _Rendered | _Choice] = {}
        # packet bytes after the ID -> response after the ID (or cumulative and choices).
        # `exact_udp` is public so the UDP shell can look it up inline; it is only ever
        # cleared in place, never replaced.
        self.exact_udp: dict[bytes, bytes | tuple[list[float], list[bytes]]] = {}
        self._exact_tcp: dict[bytes, bytes | tuple[list[float], list[bytes]]] = {}
        # answers that depend on the client's location, per (question key, source address):
        # everything else such an answer depends on (zone data, health, CIDR collections, the
        # location table) forgets them when it changes, as it forgets the other tables
        self._by_source: dict[tuple[tuple[int, bytes, int], str], _Rendered | _Choice | object] = {}
        self._tables = (self._cache, self.exact_udp, self._exact_tcp, self._by_source)
        # which rendered answers belong to which zone (None: no zone, REFUSED), so a change
        # batch forgets only its own zone's answers: per zone, its keys in each of `_tables`
        self._filled: dict[Key | None, tuple[list, list, list, list]] = {}
        self.stats = {"fast": 0, "fill": 0, "slow": 0}
        # answers compiled per zone, owner and type (`authd.dns.compiled`): asked after `exact`
        self.compiled = CompiledAnswers(self.table, self._random) if cache and compiled else None
        if self.compiled is not None:
            self.compiled.keep = self._keep_udp
        self._health_zones: dict[str, set[Key]] = {}  # health-check id -> zones naming it
        # called after every applied entry (e.g. authd.dns.emptywatch); empty by default: no cost
        self.on_applied: list[Callable[[JournalEntry], None]] = []
        # query bytes after the ID -> times asked, counted by the server loops when metrics are
        # on (authd.metrics folds and clears it in place); None: not counted
        self.query_counts: dict[bytes, int] | None = None
        # the same for queries answered outside the exact table, by query bytes + the reply's
        # status octets (`authd.metrics.status_of`)
        self.reply_counts: dict[bytes, int] | None = None
        # zone transfers' view (`authd.dns.xfr`), when the node serves secondaries
        self.transfers: TransferView | None = None
        # journaled resources by kind and id (see `_apply_resource`)
        self.resources: dict[str, dict[str, dict]] = {}
        # the in-flight change batch's sets, compiled while the store commits it (`prepare`)
        self._prepared: Prepared | None = None

    # --- feeding ---------------------------------------------------------------------------

    def apply(self, entry: JournalEntry, built: Zone | None = None) -> bool:
        """Apply one journal entry. Returns False for a CHANGE already applied (seq ≤ ours).
        `built`: a SNAPSHOT's zone already built from its puts (`authd.zonefiles.fastbuild`).

        Raises ValueError (and changes nothing) if the result could not be served, e.g. a zone
        left without its SOA.
        """
        if entry.kind is EntryKind.RESOURCE:
            # a snapshot carries every journaled resource at one seq, so an equal seq is still
            # new; applying a resource's state twice changes nothing
            if entry.seq < self.seq:
                return False
            self._apply_resource(entry)
        elif entry.kind is not EntryKind.SNAPSHOT and entry.seq <= self.seq:
            return False
        elif entry.kind is EntryKind.ZONE_DELETED:
            old = self._zones.pop(entry.zone_id, None)
            self._by_id.pop(entry.zone_id, None)
            if old is not None:
                self.table.remove(dns.name.from_text(old[0]))
                if self.compiled is not None:
                    self.compiled.forget(None)
            self._forget_answers(None)
            log.info("zone %s (%s) deleted at seq %d", entry.zone_name, entry.zone_id, entry.seq)
        elif entry.kind is EntryKind.SNAPSHOT or entry.zone_id not in self._zones:
            gone = set(entry.deletes)
            sets = [rs for rs in entry.puts if rs.key not in gone] if gone else entry.puts
            zone = built if built is not None and not gone else Zone.build(entry.zone_name, sets)  # raises before any change
            self._zones[entry.zone_id] = (entry.zone_name, zone.records)
            self._by_id[entry.zone_id] = zone
            self.table.add(zone)
            self._forget_answers(None)  # a new zone may take over names another one answered
            if self.compiled is not None:
                self.compiled.forget(zone.okey)
            self._note_health(zone.okey, entry.puts)
            log.info(
                "zone %s (%s) loaded: %d record sets, serial %d, seq %d",
                entry.zone_name, entry.zone_id, len(zone.records), entry.serial, entry.seq,
            )
        else:
            zone = self._by_id[entry.zone_id]
            prepared, self._prepared = self._prepared, None
            zone.update(entry.puts, entry.deletes, prepared)  # raises before any change
            self._forget_answers(zone.okey)
            if self.compiled is not None:
                self.compiled.changed(zone, entry.puts, entry.deletes)
            self._note_health(zone.okey, entry.puts)
            log.info(
                "zone %s change %s applied: %d put, %d deleted, serial %d, seq %d",
                entry.zone_name, entry.change_id, len(entry.puts), len(entry.deletes),
                entry.serial, entry.seq,
            )
        if self.transfers is not None:  # what secondaries get follows the same entries
            self.transfers.apply(entry)
        self.seq = max(self.seq, entry.seq)
        for hook in self.on_applied:
            hook(entry)
        return True

    def prepare(self, puts: Iterable[RecordSet], over: Callable[[], bool] | None = None) -> None:
        """Compile an accepted batch's plain sets ahead of its `apply` (`answer.prepare`),
        called by the control API while the store's thread commits the batch (the COMMIT's
        write and fsync release the GIL): the apply then only mutates. Nothing is served
        from them before that apply, and a batch that never arrives (its commit failed)
        leaves them to be dropped by the next apply or prepare. `over()`, asked as the sets
        are compiled, says the time the caller allowed (about the commit's duration) is
        spent: the rest is compiled by the apply. No clock of its own. Never raises."""
        try:
            self._prepared = prepare_sets(puts, over)
        except Exception:  # noqa: BLE001 - a hint only: the apply compiles what is missing
            self._prepared = None

    def enable_transfers(self, history: int) -> TransferView:
        """Start keeping what secondaries get (`authd.dns.xfr`), from the zones served now on."""
        if self.transfers is None:
            view = TransferView(history)
            for zone_id, zone in self._by_id.items():
                view.apply(JournalEntry(self.seq, EntryKind.SNAPSHOT, zone_id, self._zones[zone_id][0],
                                        0, "", tuple(zone.records.values())))
            self.transfers = view
        return self.transfers

    def _apply_resource(self, entry: JournalEntry) -> None:
        """Keep the newest document of each journaled resource (health-check statuses, CIDR
        collections, ...) in `resources[kind][id]`; a deleted one goes away."""
        assert entry.resource is not None
        kind, rid, doc = entry.resource
        docs = self.resources.setdefault(kind, {})
        if doc is None:
            docs.pop(rid, None)
        else:
            docs[rid] = doc
        if kind == HEALTH_STATUS:
            # a health check's status, as the prober writes it: {"healthy": bool, ...}
            healthy = True if doc is None else bool(doc.get("healthy", True))
            if self.table.health.get(rid, True) != healthy or (doc is None) != (rid not in self.table.health):
                if doc is None:
                    self.table.health.pop(rid, None)
                else:
                    self.table.health[rid] = healthy
                # answers rendered under the old health are stale: this is the generation
                # bump, for the zones whose record sets name this check
                for okey in list(self._health_zones.get(rid, ())):
                    self._forget_answers(okey)
                log.info("health check %s is %s", rid, "healthy" if healthy else "unhealthy")
        elif kind == CIDR_COLLECTION:
            if doc is None:
                self.table.cidr.pop(rid, None)
            else:
                self.table.cidr[rid] = cidr_blocks(doc)
            self._forget_answers(None)

    def _note_health(self, okey: Key, puts: Iterable[RecordSet]) -> None:
        """Remember which zones name which health checks (a set that no longer names one
        leaves its zone listed: a status change then forgets a little more than it must)."""
        for rs in puts:
            if rs.routing is not None and rs.routing.health_check_id is not None:
                self._health_zones.setdefault(rs.routing.health_check_id, set()).add(okey)

    def set_geomap(self, geomap: GeoMap | None) -> None:
        """The operator's location table (`authd serve --geo-map FILE`)."""
        self.table.geomap = geomap
        self._forget_answers(None)

    def _forget_answers(self, zone: Key | None) -> None:
        """Drop rendered answers that may have changed: those of one zone after its change
        batch (answers never depend on another zone: CNAMEs leaving it are not chased, aliases
        and glue stay inside it), or all of them (`None`) when the set of zones changes."""
        filled = self._filled.pop(zone, None) if zone is not None else None
        if zone is None or (filled and sum(map(len, filled)) * 2 > self.cache_limit):
            for table in self._tables:
                table.clear()
            self._filled.clear()
            return
        if filled:
            for table, keys in zip(self._tables, filled, strict=True):
                # the pops run in C (no bytecode per key): a change may forget thousands
                _drain(map(table.pop, keys, repeat(None)), maxlen=0)

    def _remember(self, table: dict, key: object, zone: Key | None) -> None:
        if len(table) >= self.cache_limit:
            self._forget_answers(None)
        keys = self._filled.get(zone)
        if keys is None:
            keys = self._filled[zone] = ([], [], [], [])
        keys[0 if table is self._cache else 1 if table is self.exact_udp
             else 2 if table is self._exact_tcp else 3].append(key)

    def zone_names(self) -> list[str]:
        return sorted(name for name, _ in self._zones.values())

    # --- answering -------------------------------------------------------------------------

    def respond(self, wire: bytes, *, tcp: bool, source: str | None = None) -> bytes | None:
        """The response to one packet, or None to drop it. Never raises on bad input.

        Two tables: `exact` is keyed by the packet's bytes after the ID (so a repeat of the same
        question, case and EDNS costs one dict lookup and one concatenation); behind it, the
        rendered answers keyed by the lower-cased question (`parse_fast`), which also serve
        new spellings of a known question. `source` is the client's address: an answer that
        depends on where the client is (geolocation, latency, IP-based routing) is rendered
        per source address, looked up by question and source, and never enters the exact
        tables (which the UDP shell reads without the address).
        """
        exact = self._exact_tcp if tcp else self.exact_udp
        key = wire[2:]
        hit = exact.get(key)
        if hit is not None:
            self.stats["fast"] += 1
            if type(hit) is bytes:
                return wire[:2] + hit
            return wire[:2] + hit[1][bisect.bisect_right(hit[0], self._random())]  # type: ignore[index]
        compiled = self.compiled
        if compiled is not None:
            if compiled.declined is wire and not tcp:
                compiled.declined = None  # `compiled_udp` just declined this very packet
            else:
                out = self._from_compiled(wire, tcp, exact)
                if out is not None:
                    return out
        fq = parse_fast(wire) if self.cache_enabled else None
        if fq is not None:
            entry = self._cache.get(fq.key)
            if entry is None:
                entry = self._fill(wire, fq.key)
            reusable = entry is not _LOCATED  # by every client, so in the exact table too
            if not reusable:
                skey = (fq.key, source or "")
                entry = self._by_source.get(skey)
                if entry is None:
                    entry = self._fill(wire, skey, source or "")  # "": no address known
            if entry is not None and entry is not _FULL_PATH and entry is not _LOCATED:
                self.stats["fast"] += 1
                if tcp:
                    limit = TCP_LIMIT
                elif fq.payload:
                    limit = OUR_PAYLOAD if fq.payload > OUR_PAYLOAD else max(fq.payload, MIN_UDP)
                else:
                    limit = MIN_UDP
                qend = fq.qend
                question = wire[12:qend]

                def tail(rendered: _Rendered) -> bytes:
                    body = rendered.fit(limit)
                    return body[2:12] + question + body[qend:]

                if not reusable:
                    if type(entry) is _Choice:
                        chosen = entry.outcomes[bisect.bisect_right(entry.cumulative, self._random())]
                        return wire[:2] + tail(chosen)
                    return wire[:2] + tail(entry)  # type: ignore[arg-type]
                self._remember(exact, key, entry.zone)  # type: ignore[union-attr]
                if type(entry) is _Choice:
                    tails = [tail(r) for r in entry.outcomes]
                    exact[key] = (entry.cumulative, tails)
                    return wire[:2] + tails[bisect.bisect_right(entry.cumulative,
                                                                self._random())]
                one = tail(entry)  # type: ignore[arg-type]
                exact[key] = one
                return wire[:2] + one
        self.stats["slow"] += 1
        reply = self.answer(wire, tcp=tcp, source=source)
        if reply is None:
            return None
        return reply.to_wire(TCP_LIMIT if tcp else reply.udp_limit)

    def _from_compiled(self, wire: bytes, tcp: bool, exact: dict) -> bytes | None:
        done = self.compiled.respond(wire, tcp)  # type: ignore[union-attr]
        if done is None:
            return None
        self.stats["fast"] += 1
        out, okey = done
        if okey is not None:  # one owner's single answer: the exact table's too
            self._remember(exact, wire[2:], okey)
            exact[wire[2:]] = out[2:]
        return out

    @property
    def compiled_udp(self) -> Callable[[bytes], bytes | None] | None:
        """The compiled templates' UDP responder (`CompiledAnswers.udp`: bytes, or None when
        they do not answer), for the UDP shell's queries that no guard needs to see; None
        when answers are not compiled."""
        return self.compiled.udp if self.compiled is not None else None

    def _keep_udp(self, key: bytes, out: bytes, okey: Key) -> None:
        """`_remember` for the exact UDP table, inline: the compiled path keeps every owner's
        own answer it sends, so this runs for most random existing names."""
        exact = self.exact_udp
        if len(exact) >= self.cache_limit:
            self._forget_answers(None)
        keys = self._filled.get(okey)
        if keys is None:
            keys = self._filled[okey] = ([], [], [], [])
        keys[1].append(key)  # the exact UDP table's keys (`_tables`' second)
        exact[key] = out

    def answer(self, wire: bytes, *, tcp: bool, rng: object = None,
               source: str | None = None) -> Reply | None:
        """The full pipeline (no table), logging any SERVFAIL reason."""
        reply = answer(
            wire, self.table, rng=rng or self._random, tcp=tcp, allow_axfr=self.allow_axfr,  # type: ignore[arg-type]
            source=source,
        )
        if reply is not None and reply.problem:
            log.error("SERVFAIL for %s: %s", _qtext(reply), reply.problem)
        return reply

    def _fill(self, wire: bytes, key: tuple, source: str | None = None) -> _Rendered | _Choice | object | None:
        """Render every outcome of this question once, through the full pipeline: for every
        client (`source` None, into `_cache`), or for one source address (into `_by_source`)."""
        self.stats["fill"] += 1
        table = self._cache if source is None else self._by_source
        try:
            outcomes = list(
                enumerate_outcomes(
                    lambda picker: answer(wire, self.table, rng=picker, tcp=False,
                                          source=source or None)
                )
            )
        except OverflowError:
            # too many combinations to precompute (a multivalue set of more than eight, deep
            # weighted trees): the full path picks, and is not asked to enumerate them again
            return self._mark(wire, table, key, _FULL_PATH)
        renders: list[tuple[float, _Rendered]] = []
        for probability, reply in outcomes:
            if reply is None or reply.outcome in (Outcome.FORMERR, Outcome.BADVERS):
                return None  # parse_fast and the full parser disagree: never cache that
            if reply.located and source is None:
                # depends on the client's location: remember that, so later queries are
                # rendered per source address (forgotten with the zone's other answers)
                return self._mark(wire, table, key, _LOCATED)
            if reply.problem:
                log.error("SERVFAIL for %s: %s", _qtext(reply), reply.problem)
            renders.append((probability, _Rendered.of(reply)))
        first = outcomes[0][1]
        found = answering_zone(self.table, key_of(first.qname), first.qtype)  # type: ignore[union-attr,arg-type]
        zone = found.okey if found is not None else None
        self._remember(table, key, zone)
        result: _Rendered | _Choice
        if len(renders) == 1:
            result = renders[0][1]
            result.zone = zone
        else:
            cumulative: list[float] = []
            total = 0.0
            for p, _ in renders:
                total += p
                cumulative.append(total)
            cumulative[-1] = 1.0  # float sums may fall short; random() < 1.0 always lands
            result = _Choice(cumulative, [r for _, r in renders], zone)
        table[key] = result
        return result

    def _mark(self, wire: bytes, table: dict, key: tuple, mark: object) -> object:
        """Remember `mark` for a question (until its zone changes)."""
        query = classify(wire, tcp=False)
        found = (answering_zone(self.table, key_of(query.qname), query.qtype)
                 if isinstance(query, Query) else None)
        self._remember(table, key, found.okey if found is not None else None)
        table[key] = mark
        return mark

    # --- for the enactor's interleaving checker ------------------------------------------

    def resolve_all(self, qname: str, qtype: str) -> list[tuple[str, tuple[str, ...]]]:
        """Every answer a client could get for (qname, qtype), over all weighted picks that can
        happen (weight > 0, or every member when all are 0), via the same answer logic.

        Each item is (rcode text, answer-section rdata values in order), without duplicates.
        """
        query = classify(make_query_wire(qname, qtype), tcp=True)
        if not isinstance(query, Query):  # e.g. AXFR: not a question with answers
            return [(dns.rcode.to_text(query.rcode if query else dns.rcode.FORMERR), ())]
        seen: dict[tuple[str, tuple[str, ...]], None] = {}
        for _, reply in enumerate_outcomes(
            lambda picker: answer_query(query, self.table, rng=picker)
        ):
            assert reply is not None
            values = tuple(t for rrset in reply.answer for t in rrset.texts)
            seen[(_RCODE_TEXT.get(reply.rcode) or dns.rcode.to_text(reply.rcode), values)] = None
        return list(seen)


def _qtext(reply: Reply) -> str:
    if reply.qname is None:
        return "(no question)"
    return f"{reply.qname} {dns.rdatatype.to_text(reply.qtype)}"


# --- startup from zone files ----------------------------------------------------------------


def zone_id_for(zone: LoadedZone) -> str:
    """The hosted zone id, by the store's one rule (`authd.model.changes`): the id its in-zone alias
    records already name, else derived from the origin (`example.test.` -> `Z0EXAMPLE0TEST`)."""
    return zone_id_from_aliases(zone.origin, zone.record_sets) or changes_zone_id_for(zone.origin)


def _serial(zone: LoadedZone) -> int:
    for rs in zone.record_sets:
        if rs.rtype == "SOA" and rs.name == zone.origin and rs.values:
            return int(rs.values[0].split()[2])
    return 0


def snapshot_entries(zones: Iterable[LoadedZone], seq: int = 0) -> list[JournalEntry]:
    """One SNAPSHOT journal entry per loaded zone: how zone files reach the serving index."""
    return [
        JournalEntry(
            seq=seq,
            kind=EntryKind.SNAPSHOT,
            zone_id=zone_id_for(z),
            zone_name=z.origin,
            serial=_serial(z),
            change_id="",
            puts=z.record_sets,
        )
        for z in zones
    ]


def index_from_zones(zones: Iterable[LoadedZone], **options: object) -> ServingIndex:
    """A serving index holding these zones (startup from `zones/`)."""
    index = ServingIndex(**options)  # type: ignore[arg-type]
    zones = list(zones)
    for zone, entry in zip(zones, snapshot_entries(zones), strict=True):
        index.apply(entry, zone.take_built())  # a zone file's prebuilt zone, if it has one
    return index
