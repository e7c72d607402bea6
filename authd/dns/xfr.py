"""Zone transfers to real secondaries: AXFR (RFC 5936) and IXFR (RFC 1995), with TSIG.

Pure core. `TransferView` follows the same journal entries as the serving index (one call in
`ServingIndex.apply`), keeping for every zone what a secondary gets and the differences
between serials. `TransferService.respond` turns a transfer query, or any TSIG-signed query,
into the response messages; the shells in `authd.dns.server` only send them.

**What a secondary gets.** Weighted and alias record sets have no RFC 1035 form, and neither
do the other routing policies. A transfer renders each (name, type) as every address any client
could get from it: the members of a weighted (failover, latency, geolocation, multivalue,
IP-based) set merged into one RRset with their lowest TTL, and an alias as its target's
records as they are now (followed through aliases and merged sets, up to 16 steps, as the
answer pipeline does). A secondary then answers every name authd answers, with the whole set
where authd would pick one member. An alias whose target has no records of its type is left
out, as it answers NODATA. This is a choice (Route 53 itself offers no transfers); README
"Zone transfers" documents it, and `tests/test_xfr.py` pins it.

**IXFR** (RFC 1995). Each accepted change batch is one step from the zone's old SOA serial to
its new one: the records its (name, type)s lost and gained in the view above, aliases
re-resolved. The view keeps the last `history` steps per zone (`authd serve --ixfr-history`);
a client whose serial is older than that, or unknown, gets the whole zone in AXFR form
(RFC 1995 §4), and one that is up to date gets the SOA alone. Over UDP an IXFR is answered
when it fits in one message, else with the SOA alone, which tells the client to use TCP
(RFC 1995 §2).

**Messages.** A transfer fills messages up to 64 KiB (RFC 5936 §2.2): the first carries the
question, the first and last records are the SOA; with TSIG every message is signed, each over
the previous one's MAC (RFC 8945 §5.3.1).
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.renderer
import dns.rrset

from authd.dns import tsig
from authd.dns.answer import OUR_PAYLOAD
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import RecordKey, RecordSet

log = logging.getLogger("authd.xfr")

AXFR, IXFR, SOA = 252, 251, 6
MAX_MESSAGE = 65535
TSIG_ROOM = 512  # bytes kept free in each message for its TSIG RR
ALIAS_DEPTH = 16
DEFAULT_HISTORY = 1000

Flat = dict[tuple[str, str], tuple[int, frozenset[str]]]  # (name, type) -> (ttl, values)
Record = tuple[str, str, int, str]  # name, type, ttl, value


@dataclass(frozen=True)
class Step:
    """One change batch as IXFR sends it: from one SOA serial to the next."""

    old_serial: int
    new_serial: int
    old_soa: tuple[int, str]  # (ttl, value)
    new_soa: tuple[int, str]
    removed: tuple[Record, ...]
    added: tuple[Record, ...]


@dataclass
class _Zone:
    zone_id: str
    origin: str
    raw: dict[RecordKey, RecordSet] = field(default_factory=dict)
    by_name_type: dict[tuple[str, str], set[RecordKey]] = field(default_factory=dict)
    flat: Flat = field(default_factory=dict)
    aliased: set[tuple[str, str]] = field(default_factory=set)  # (name, type)s with an alias
    soa: tuple[int, str] = (0, "")
    serial: int = 0
    steps: deque[Step] = field(default_factory=deque)


def _serial(soa_value: str) -> int:
    return int(soa_value.split()[2])


class TransferView:
    """What secondaries get, per zone, fed by journal entries in seq order."""

    def __init__(self, history: int = DEFAULT_HISTORY):
        self.history = history
        self.seq = 0
        self.zones: dict[str, _Zone] = {}  # by zone id
        self.by_origin: dict[str, str] = {}
        self.changed: list[tuple[str, int]] = []  # (origin, serial) since last taken, for NOTIFY
        self.listener: Callable[[], None] | None = None  # called when `changed` grows

    # --- feeding ---------------------------------------------------------------------------

    def apply(self, entry: JournalEntry) -> None:
        if entry.kind is EntryKind.RESOURCE:
            return
        if entry.kind is not EntryKind.SNAPSHOT and entry.seq <= self.seq:
            return
        self.seq = max(self.seq, entry.seq)
        if entry.kind is EntryKind.ZONE_DELETED:
            z = self.zones.pop(entry.zone_id, None)
            if z is not None:
                self.by_origin.pop(z.origin, None)
            return
        zone = self.zones.get(entry.zone_id)
        if entry.kind is EntryKind.SNAPSHOT or zone is None:
            old = zone
            zone = _Zone(entry.zone_id, entry.zone_name)
            gone = set(entry.deletes)
            for rs in entry.puts:
                if rs.key not in gone:
                    self._put(zone, rs)
            zone.flat = {}
            for nt in zone.by_name_type:
                self._flatten_into(zone, nt)
            self._soa(zone)
            if old is not None and old.serial != zone.serial:  # re-snapshot: a diff step
                self._step(zone, old.soa, old.serial, old.flat)
            self.zones[entry.zone_id] = zone
            self.by_origin[zone.origin] = entry.zone_id
            return
        old_soa, old_serial = zone.soa, zone.serial
        touched: set[tuple[str, str]] = set()
        for key in entry.deletes:
            touched.add((key.name, key.rtype))
            self._drop(zone, key)
        for rs in entry.puts:
            touched.add((rs.name, rs.rtype))
            self._drop(zone, rs.key)
            self._put(zone, rs)
        touched |= zone.aliased  # aliases see changes to their targets at once
        before = {nt: zone.flat.get(nt) for nt in touched}
        for nt in touched:
            self._flatten_into(zone, nt)
        self._soa(zone)
        old_flat: Flat = {nt: v for nt, v in before.items() if v is not None}
        self._step(zone, old_soa, old_serial, old_flat, touched)

    def take_changed(self) -> list[tuple[str, int]]:
        """Zones whose serial changed since the last call: what NOTIFY announces."""
        out, self.changed = self.changed, []
        return out

    def _put(self, zone: _Zone, rs: RecordSet) -> None:
        zone.raw[rs.key] = rs
        zone.by_name_type.setdefault((rs.name, rs.rtype), set()).add(rs.key)
        if rs.alias is not None:
            zone.aliased.add((rs.name, rs.rtype))

    def _drop(self, zone: _Zone, key: RecordKey) -> None:
        if zone.raw.pop(key, None) is None:
            return
        nt = (key.name, key.rtype)
        keys = zone.by_name_type.get(nt)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del zone.by_name_type[nt]
        if not any(zone.raw[k].alias is not None for k in zone.by_name_type.get(nt, ())):
            zone.aliased.discard(nt)

    def _soa(self, zone: _Zone) -> None:
        sets = [zone.raw[k] for k in zone.by_name_type.get((zone.origin, "SOA"), ())]
        if sets and sets[0].values:
            zone.soa = (sets[0].ttl or 0, sets[0].values[0])
            zone.serial = _serial(zone.soa[1])

    def _resolve(self, zone: _Zone, nt: tuple[str, str], depth: int = 0) -> tuple[int, frozenset[str]] | None:
        """The merged (ttl, values) a (name, type) answers with, aliases followed."""
        keys = zone.by_name_type.get(nt)
        if not keys or depth > ALIAS_DEPTH:
            return None
        ttl: int | None = None
        values: set[str] = set()
        for k in keys:
            rs = zone.raw[k]
            if rs.alias is not None:
                got = self._resolve(zone, (rs.alias.dns_name, nt[1]), depth + 1)
                if got is None:
                    continue
                t, vals = got
            else:
                t, vals = rs.ttl or 0, frozenset(rs.values)
            ttl = t if ttl is None else min(ttl, t)
            values |= vals
        return (ttl, frozenset(values)) if values and ttl is not None else None

    def _flatten_into(self, zone: _Zone, nt: tuple[str, str]) -> None:
        got = self._resolve(zone, nt)
        if got is None:
            zone.flat.pop(nt, None)
        else:
            zone.flat[nt] = got

    def _step(self, zone: _Zone, old_soa: tuple[int, str], old_serial: int, old_flat: Flat,
              touched: Iterable[tuple[str, str]] | None = None) -> None:
        keys = set(old_flat) | (set(touched) if touched is not None else set(zone.flat))
        removed: list[Record] = []
        added: list[Record] = []
        for nt in sorted(keys):
            if nt[1] == "SOA" and nt[0] == zone.origin:
                continue
            old, new = old_flat.get(nt), zone.flat.get(nt)
            if old == new:
                continue
            old_vals = old[1] if old else frozenset()
            new_vals = new[1] if new else frozenset()
            if old and new and old[0] != new[0]:  # a TTL change replaces every record
                removed += [(nt[0], nt[1], old[0], v) for v in sorted(old_vals)]
                added += [(nt[0], nt[1], new[0], v) for v in sorted(new_vals)]
                continue
            if old:
                removed += [(nt[0], nt[1], old[0], v) for v in sorted(old_vals - new_vals)]
            if new:
                added += [(nt[0], nt[1], new[0], v) for v in sorted(new_vals - old_vals)]
        if old_serial == zone.serial and not removed and not added:
            return
        zone.steps.append(Step(old_serial, zone.serial, old_soa, zone.soa, tuple(removed),
                               tuple(added)))
        while len(zone.steps) > self.history:
            zone.steps.popleft()
        self.changed.append((zone.origin, zone.serial))
        if self.listener is not None:
            self.listener()

    # --- reading ---------------------------------------------------------------------------

    def find(self, origin: str) -> _Zone | None:
        zid = self.by_origin.get(origin)
        return self.zones.get(zid) if zid is not None else None

    def records(self, zone: _Zone) -> Iterator[dns.rrset.RRset]:
        """The zone as a transfer sends it, between the two SOAs, names in tree order (RFC
        5936 §2.2 allows any order; this one keeps a zone's parts together for a reader)."""
        for (name, rtype), (ttl, values) in sorted(
            list(zone.flat.items()), key=lambda kv: (tuple(reversed(kv[0][0].split("."))), kv[0][1])
        ):
            if rtype == "SOA" and name == zone.origin:
                continue
            yield dns.rrset.from_text_list(name, ttl, "IN", rtype, sorted(values))

    def steps_since(self, zone: _Zone, serial: int) -> list[Step] | None:
        """The steps from `serial` to now; [] if up to date; None if history does not reach."""
        if serial == zone.serial:
            return []
        steps = list(zone.steps)
        for i, s in enumerate(steps):
            if s.old_serial == serial:
                chain = steps[i:]
                # a chain must connect (it always does unless history was rebuilt)
                if all(a.new_serial == b.old_serial for a, b in zip(chain, chain[1:], strict=False)):
                    return chain
        return None


@dataclass(frozen=True)
class TransferRule:
    """Who may transfer: a network and, optionally, the TSIG key it must sign with."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    key: dns.name.Name | None = None

    @classmethod
    def parse(cls, text: str) -> TransferRule:
        """`CIDR` or `CIDR@KEYNAME` (`--allow-transfer`): the key must sign the request."""
        net, _, key = text.rpartition("@") if "@" in text else (text, "", "")
        try:
            network = ipaddress.ip_network(net, strict=False)
            keyname = dns.name.from_text(key) if key else None
        except (ValueError, dns.exception.DNSException) as exc:
            raise ValueError(f"--allow-transfer {text!r}: {exc}") from exc
        return cls(network, keyname)

    def allows(self, ip: str, keyname: dns.name.Name | None) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return addr in self.network and (self.key is None or self.key == keyname)


@dataclass(frozen=True)
class TransferConfig:
    """`authd serve` flags for secondaries: who may transfer, whom to notify, the keys."""

    rules: tuple[TransferRule, ...] = ()
    allow_any: bool = False  # --allow-axfr
    keyring: tsig.Keyring = field(default_factory=dict)
    notify: tuple[object, ...] = ()  # authd.dns.notify.NotifyTarget
    history: int = DEFAULT_HISTORY

    @property
    def enabled(self) -> bool:
        return bool(self.rules or self.allow_any or self.keyring or self.notify)


def _rrset(name: str, rtype: str, ttl: int, value: str) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(name, ttl, "IN", rtype, [value])


class TransferService:
    """Answers AXFR and IXFR queries and every TSIG-signed query.

    Args:
        view: the transfer view fed with the serving index's entries (None: no transfers).
        answer: the serving index's `respond(wire, tcp=...)`, for signed ordinary queries
            (a secondary's SOA check), answered through the one pipeline and then signed.
        rules: who may transfer (`--allow-transfer`); empty with `allow_any` False refuses all.
        allow_any: `--allow-axfr`: anyone may transfer, signed or not.
        keyring: TSIG keys (`--tsig-key`).
        serves: whether a name is the apex of a zone we serve, for the NOTAUTH answer when
            transfers are off (no view); without it, only the view's zones count.
    """

    def __init__(self, view: TransferView | None, answer, *, rules: Sequence[TransferRule] = (),
                 allow_any: bool = False, keyring: tsig.Keyring | None = None,
                 serves: Callable[[dns.name.Name], bool] | None = None):
        self.view = view
        self.serves = serves
        self.answer = answer
        self.rules = list(rules)
        self.allow_any = allow_any
        self.keyring = keyring or {}
        self.stats = {"axfr": 0, "ixfr": 0, "ixfr_as_axfr": 0, "refused": 0, "notauth": 0}

    @staticmethod
    def wants(wire: bytes) -> bool:
        """Whether a query is ours: a transfer, or signed. Cheap: most queries are neither."""
        if len(wire) < 17:
            return False
        if tsig.has_tsig(wire):
            return True
        qtype = _qtype(wire)
        return qtype in (AXFR, IXFR)

    def respond(self, wire: bytes, ip: str, *, tcp: bool, now: int) -> Iterable[bytes] | None:
        """The response messages (several for a transfer over TCP, made as they are taken),
        or None to drop."""
        checked = tsig.verify(wire, self.keyring)
        if checked.verdict is tsig.Verdict.FORMERR or checked.message is None:
            return None if len(wire) < 12 else [_formerr(wire)]
        query = checked.message
        if checked.verdict not in (tsig.Verdict.VALID, tsig.Verdict.UNSIGNED):
            self.stats["notauth"] += 1
            return [tsig.error_response(checked, self.keyring, now)]
        signed = checked.verdict is tsig.Verdict.VALID
        if len(query.question) != 1:
            return [self._simple(query, dns.rcode.FORMERR, signed)]
        q = query.question[0]
        if q.rdtype not in (AXFR, IXFR):
            return self._ordinary(query, tcp, signed)
        keyname = query.keyname if signed else None
        kind = "AXFR" if q.rdtype == AXFR else "IXFR"
        if q.rdtype == AXFR and not tcp:  # RFC 5936 §4.2: AXFR is TCP only (NSD, Knot: NOTIMP)
            return [self._simple(query, dns.rcode.NOTIMP, signed, aa=False)]
        zone = self.view.find(q.name.canonicalize().to_text()) if self.view is not None else None
        if q.rdclass != dns.rdataclass.IN or (
                zone is None and (self.serves is None or not self.serves(q.name))):
            # RFC 5936 §2.2.1: not a zone we serve is NOTAUTH, before any access rule is
            # consulted (as Knot and NSD answer, tests/test_dns_differential.py)
            return [self._simple(query, dns.rcode.NOTAUTH, signed)]
        if not (self.allow_any or any(r.allows(ip, keyname) for r in self.rules)):
            self.stats["refused"] += 1
            log.warning("transfer %s %s to %s refused: %s", q.name, kind, ip,
                        f"key {keyname} not allowed" if signed else
                        "not signed, or not in --allow-transfer")
            # RFC 8914 §4.19: EDE 18 (Prohibited), as NSD attaches to a refused transfer
            return [self._simple(query, dns.rcode.REFUSED, signed, ede=dns.edns.EDECode.PROHIBITED)]
        if zone is None:
            return [self._simple(query, dns.rcode.NOTAUTH, signed)]  # RFC 5936 §2.2.1
        if q.rdtype == AXFR:
            self.stats["axfr"] += 1
            return self._logged(
                self._stream(query, self._axfr_rrsets(zone), signed),
                f"transfer {zone.origin} AXFR to {ip}: serial {zone.serial}, {len(zone.flat) + 1} "
                f"record sets{f' (key {keyname})' if signed else ''}")
        return self._ixfr(query, zone, tcp, signed, ip)

    # --- the parts -------------------------------------------------------------------------

    def _axfr_rrsets(self, zone: _Zone) -> Iterator[dns.rrset.RRset]:
        assert self.view is not None
        soa = _rrset(zone.origin, "SOA", *zone.soa)
        yield soa
        yield from self.view.records(zone)
        yield soa

    def _ixfr(self, query: dns.message.Message, zone: _Zone, tcp: bool,
              signed: bool, ip: str = "?") -> Iterable[bytes]:
        client = None
        for rrset in query.authority:  # RFC 1995 §3: the client's SOA in the authority section
            if rrset.rdtype == SOA and len(rrset):
                client = rrset[0].serial
        soa_now = _rrset(zone.origin, "SOA", *zone.soa)
        steps = self.view.steps_since(zone, client) if client is not None else None
        if steps is None:
            self.stats["ixfr_as_axfr"] += 1
            log.info("transfer %s IXFR to %s: serial %s is not in the last %d changes; sending "
                     "the whole zone at serial %d%s", zone.origin, ip, client,
                     len(zone.steps), zone.serial, "" if tcp else " (over UDP: the SOA, use TCP)")
            if not tcp:
                return self._render(query, [soa_now], signed)
            return self._stream(query, self._axfr_rrsets(zone), signed)
        self.stats["ixfr"] += 1
        if not steps:
            return self._render(query, [soa_now], signed)
        log.info("transfer %s IXFR to %s: serial %d -> %d in %d changes (%d records out, %d in)",
                 zone.origin, ip, client, zone.serial, len(steps),
                 sum(len(s.removed) for s in steps), sum(len(s.added) for s in steps))
        seq: list[dns.rrset.RRset] = [soa_now]
        for s in steps:
            seq.append(_rrset(zone.origin, "SOA", *s.old_soa))
            seq += [_rrset(*r) for r in s.removed]
            seq.append(_rrset(zone.origin, "SOA", *s.new_soa))
            seq += [_rrset(*r) for r in s.added]
        seq.append(soa_now)
        size = MAX_MESSAGE if tcp else (max(512, query.payload) if query.edns >= 0 else 512)
        messages = self._render(query, seq, signed, one=not tcp, size=size)
        if not tcp and len(messages) != 1:
            return self._render(query, [soa_now], signed)  # RFC 1995 §2: use TCP
        return messages

    def _ordinary(self, query: dns.message.Message, tcp: bool, signed: bool) -> list[bytes] | None:
        """A signed ordinary query: answered by the one pipeline, then signed."""
        plain = dns.message.Message(id=query.id)
        plain.flags = query.flags
        plain.question = query.question
        if query.edns >= 0:
            plain.use_edns(query.edns, query.ednsflags, query.payload, options=query.options)
        reply = self.answer(plain.to_wire(), tcp=tcp)
        if reply is None:
            return None
        if not signed:
            return [reply]
        resp = dns.message.from_wire(reply)
        tsig.sign_response(resp, query, self.keyring)
        return [resp.to_wire()]

    def _simple(self, query: dns.message.Message, rcode: int, signed: bool,
                aa: bool = False, ede: int | None = None) -> bytes:
        resp = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
        resp.set_rcode(rcode)
        if ede is not None and resp.edns >= 0:
            resp.use_edns(0, resp.ednsflags, resp.payload, options=[dns.edns.EDEOption(ede)])
        if aa:
            resp.flags |= dns.flags.AA
        if signed:
            tsig.sign_response(resp, query, self.keyring)
        return resp.to_wire()

    def _render(self, query: dns.message.Message, rrsets: Iterable[dns.rrset.RRset], signed: bool,
                one: bool = False, size: int = MAX_MESSAGE) -> list[bytes]:
        """All the messages at once (small answers); with `one`, at most two are made, so
        the caller can tell that the answer does not fit one."""
        stream = self._stream(query, rrsets, signed, size)
        return list(itertools.islice(stream, 2)) if one else list(stream)

    def _stream(self, query: dns.message.Message, rrsets: Iterable[dns.rrset.RRset],
                signed: bool, size: int = MAX_MESSAGE) -> Iterator[bytes]:
        """Pack RRsets into as many messages of `size` as they need (RFC 5936 §2.2), made one
        at a time as the sender takes them, so a big zone's first message leaves at once."""
        flags = dns.flags.QR | dns.flags.AA | (query.flags & dns.flags.RD)
        limit = size - (TSIG_ROOM if signed else 0)
        ctx = None
        source = iter(rrsets)
        pending: list[dns.rrset.RRset] = []  # what did not fit the last message, or a split
        first = True
        exhausted = False
        while first or pending or not exhausted:
            r = dns.renderer.Renderer(query.id, flags, limit)
            if first:  # RFC 5936 §2.2.1: the question in the first message
                q = query.question[0]
                r.add_question(q.name, q.rdtype, q.rdclass)
            placed = 0
            while True:
                if pending:
                    rrset = pending.pop()
                else:
                    rrset = next(source, None)
                    if rrset is None:
                        exhausted = True
                        break
                try:
                    r.add_rrset(dns.renderer.ANSWER, rrset)
                except dns.exception.TooBig:
                    if placed == 0 and len(rrset) > 1:  # one RRset over a message: split it
                        half = len(rrset) // 2
                        items = list(rrset)
                        pending.append(dns.rrset.from_rdata_list(rrset.name, rrset.ttl, items[half:]))
                        pending.append(dns.rrset.from_rdata_list(rrset.name, rrset.ttl, items[:half]))
                        continue
                    if placed == 0:
                        raise
                    pending.append(rrset)
                    break
                placed += 1
            r.write_header()
            r.max_size = size  # the room kept for the TSIG RR is now its to use
            if signed:
                key = self.keyring[query.keyname]
                ctx = r.add_multi_tsig(ctx, query.keyname, key, 300, query.id, 0, b"",
                                       query.mac if first else b"", key.algorithm)
            first = False
            yield r.get_wire()

    def _logged(self, messages: Iterator[bytes], what: str) -> Iterator[bytes]:
        count = 0
        for m in messages:
            count += 1
            yield m
        log.info("%s, in %d messages", what, count)


def _qtype(wire: bytes) -> int | None:
    """The first question's type, read without a parser (None if it cannot be read)."""
    i = 12
    n = len(wire)
    while i < n:
        length = wire[i]
        if length == 0:
            i += 1
            break
        if length & 0xC0:
            return None
        i += 1 + length
    else:
        return None
    if i + 2 > n:
        return None
    return wire[i] << 8 | wire[i + 1]


def _formerr(wire: bytes) -> bytes:
    flags = bytes([0x80 | (wire[2] & 0x79), 0x01])
    return wire[:2] + flags + b"\x00" * 8
