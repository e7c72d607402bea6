"""Loading zones from disk: RFC 1035 master files (`*.zone`) and Route 53 JSON (`*.json`).

Pure core apart from reading the file text. A Route 53 JSON file has exactly the shape that
`aws route53 list-resource-record-sets` prints, so a real exported zone loads as is, weighted
and alias record sets included. A bad zone is refused whole with the file, the line or record,
and the reason: `ZoneLoadError` carries them, and `load_zone_dir` never returns half a set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from authd.model.records import RecordError, RecordSet, canonical_name
from authd.zonefiles.masterfile import MasterFileError, NeedsFullReader, read_master


@dataclass(frozen=True)
class LoadedZone:
    origin: str  # canonical, e.g. "api.aws."
    record_sets: tuple[RecordSet, ...]
    source: str  # the file it came from
    # (name, type) -> the line of its last record, for master files (error messages)
    lines: Mapping[tuple[str, str], int] = field(default_factory=dict, compare=False, repr=False)


class ZoneLoadError(Exception):
    """A zone file that cannot be served. `str()` reads `file:line: reason` or `file: record: reason`."""

    def __init__(self, path: str, reason: str, line: int | None = None, record: str | None = None):
        self.path, self.reason, self.line, self.record = path, reason, line, record
        where = path + (f":{line}" if line is not None else "") + (f": {record}" if record else "")
        super().__init__(f"{where}: {reason}")


def origin_from_filename(path: Path) -> str:
    """`api.aws.zone` -> `api.aws.`; `root.zone` (or `.zone`) -> `.`."""
    stem = path.name.rsplit(".", 1)[0]
    return "." if stem in ("", "root", ".") else canonical_name(stem.rstrip(".") + ".")


def parse_master(text: str, path: str, origin: str) -> LoadedZone:
    """Parse an RFC 1035 master file; the zone's origin is the file name's.

    `authd.zonefiles.masterfile` reads it line by line (fast, and every record keeps its line); a file
    with $INCLUDE or $GENERATE is read by dnspython instead."""
    try:
        records = list(read_master(text, origin))
    except MasterFileError as exc:
        line_text = _line(text, exc.line)
        reason = f"{exc.reason.rstrip('.')} (in {line_text!r})" if line_text else exc.reason
        raise ZoneLoadError(path, reason, line=exc.line) from exc
    except NeedsFullReader:
        return _parse_master_dnspython(text, path, origin)
    # one record set per (owner, type), in file order; duplicates dropped (RFC 2181 §5) and
    # differing TTLs merged to the lowest, as dnspython merges them
    groups: dict[tuple[str, str], tuple[int, dict[str, None]]] = {}
    lines: dict[tuple[str, str], int] = {}  # the last line of each set: where a rule breaks
    for r in records:
        key = (r.owner, r.rtype)
        got = groups.get(key)
        if got is None:
            groups[key] = (r.ttl, {r.value: None})
        else:
            got[1][r.value] = None
            if r.ttl < got[0]:
                groups[key] = (r.ttl, got[1])
        lines[key] = r.line
    sets = [RecordSet(name=n, rtype=t, ttl=ttl, values=tuple(vals))
            for (n, t), (ttl, vals) in groups.items()]
    return LoadedZone(canonical_name(origin), tuple(sets), path, lines)


def _line(text: str, line: int) -> str:
    lines = text.split("\n", line)
    return lines[line - 1].strip() if 1 <= line <= len(lines) else ""


def _parse_master_dnspython(text: str, path: str, origin: str) -> LoadedZone:
    """dnspython's reader, for the directives `authd.zonefiles.masterfile` leaves to it."""
    try:
        zone = dns.zone.from_text(
            text, origin=origin, relativize=False, check_origin=False, filename=path
        )
    except dns.exception.SyntaxError as exc:
        # dnspython formats these as "path:line: detail"
        line, detail = _syntax_error_line(text, path, origin, exc)
        raise ZoneLoadError(path, detail, line=line) from exc
    except dns.exception.DNSException as exc:
        raise ZoneLoadError(path, str(exc) or type(exc).__name__) from exc
    sets: list[RecordSet] = []
    for name, node in zone.nodes.items():
        for rdataset in node.rdatasets:
            if rdataset.rdclass != dns.rdataclass.IN:
                raise ZoneLoadError(path, "only class IN is served", record=str(name))
            sets.append(
                RecordSet(
                    name=name.to_text(),
                    rtype=dns.rdatatype.to_text(rdataset.rdtype),
                    ttl=rdataset.ttl,
                    values=tuple(rd.to_text() for rd in rdataset),
                )
            )
    assert zone.origin is not None
    return LoadedZone(zone.origin.canonicalize().to_text(), tuple(sets), path)


def _split_syntax_error(path: str, exc: Exception) -> tuple[int | None, str]:
    msg = str(exc)
    prefix = f"{path}:"
    if msg.startswith(prefix):
        line_text, _, detail = msg[len(prefix):].partition(": ")
        if line_text.isdigit():
            return int(line_text), detail or msg
    return None, msg


def _syntax_error_line(text: str, path: str, origin: str, exc: Exception) -> tuple[int | None, str]:
    """The line at fault and a reason quoting it.

    dnspython reports rdata errors after it has consumed the end of the line, so the line it
    names can be one past the culprit. Re-parsing the text cut before that line tells which.
    """
    line, detail = _split_syntax_error(path, exc)
    lines = text.splitlines()
    if line is not None and line > 1:
        head = "\n".join(lines[: line - 1]) + "\n"
        try:
            dns.zone.from_text(head, origin=origin, relativize=False, check_origin=False)
        except dns.exception.SyntaxError:
            line -= 1
        except dns.exception.DNSException:
            pass
    if line is not None and 1 <= line <= len(lines):
        detail = f"{detail.rstrip('.')} in {lines[line - 1].strip()!r}"
    return line, detail


def parse_route53_json(text: str, path: str, origin: str | None = None) -> LoadedZone:
    """Parse `{"ResourceRecordSets": [...]}`. The origin is the SOA owner, else the file name's."""
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ZoneLoadError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("ResourceRecordSets"), list):
        raise ZoneLoadError(path, 'expected an object with a "ResourceRecordSets" list')
    sets: list[RecordSet] = []
    for i, item in enumerate(doc["ResourceRecordSets"]):
        where = f"ResourceRecordSets[{i}]"
        if isinstance(item, dict) and "Name" in item:
            where += f" (name={item.get('Name')!r}, type={item.get('Type')!r})"
        if not isinstance(item, dict):
            raise ZoneLoadError(path, "expected an object", record=where)
        try:
            rs = RecordSet.from_route53(item)
        except RecordError as exc:
            raise ZoneLoadError(path, str(exc), record=where) from exc
        problems = rs.problems()
        if problems:
            raise ZoneLoadError(path, "; ".join(problems), record=where)
        sets.append(rs)
    soas = [rs for rs in sets if rs.rtype == "SOA"]
    if len(soas) != 1:
        raise ZoneLoadError(path, f"expected exactly one SOA record set, found {len(soas)}")
    apex = soas[0].name
    if origin is not None and canonical_name(origin) != apex:
        raise ZoneLoadError(path, f"SOA owner {apex} is not the zone origin {origin}")
    return LoadedZone(apex, tuple(sets), path)


# Types that may sit beside a CNAME (RFC 2181 §10.1, RFC 4035 §2.5: DNSSEC's own records).
_BESIDE_CNAME = frozenset({"CNAME", "RRSIG", "NSEC", "KEY"})


def check_zone(zone: LoadedZone) -> None:
    """Zone-level rules, as strict as Knot's and NSD's, plus Route 53's. Linear in the zone.

    Raises ZoneLoadError naming the line (master files) or the record (Route 53 JSON)."""
    path, origin = zone.source, zone.origin
    origin_name = dns.name.from_text(origin)
    plain_suffix = "." + origin if origin != "." else "."
    by_name: dict[str, dict[str, list[RecordSet]]] = {}
    for rs in zone.record_sets:
        by_name.setdefault(rs.name, {}).setdefault(rs.rtype, []).append(rs)

    def fail(reason: str, name: str, *rtypes: str) -> ZoneLoadError:
        """The error, at the latest line among the named sets (the record that broke it)."""
        found = [zone.lines[(name, t)] for t in rtypes if (name, t) in zone.lines]
        rtype = rtypes[0]
        if found:
            line = max(found)
            return ZoneLoadError(path, reason, line=line)
        return ZoneLoadError(path, reason, record=f"name={name!r}, type={rtype!r}")

    for name, types in by_name.items():
        first_type = next(iter(types))
        # names are canonical text, so a suffix test is exact unless a label holds an escape
        inside = name == origin or (name.endswith(plain_suffix) and "\\" not in name) or \
            dns.name.from_text(name).is_subdomain(origin_name)
        if not inside:
            raise fail(f"{name} is outside the zone {origin}", name, first_type)
        if "SOA" in types and name != origin:
            raise fail(f"SOA record at {name}, below the zone apex {origin} (RFC 1035 §5.2)",
                       name, "SOA")
    apex = by_name.get(origin, {})
    if "SOA" not in apex:
        raise ZoneLoadError(path, f"no SOA record at the zone apex {origin}")
    soa_values = [v for rs in apex["SOA"] for v in rs.values]
    if len(soa_values) != 1:
        raise fail(f"{len(soa_values)} SOA records at the zone apex {origin}; a zone has exactly "
                   "one (RFC 1035 §5.2)", origin, "SOA")
    if "NS" not in apex:
        raise ZoneLoadError(path, f"no NS records at the zone apex {origin}")
    dnames = {n for n, types in by_name.items() if "DNAME" in types}

    for name, types in by_name.items():
        for rtype, group in types.items():
            ids = [rs.set_identifier for rs in group]
            if len(group) > 1 and any(i is None for i in ids):
                raise fail("a weighted and a non-weighted record set share a name and type",
                           name, rtype)
            if len(set(ids)) != len(ids):
                raise fail("duplicate record set", name, rtype)
            for rs in group:
                if rs.alias is not None and rs.alias.dns_name not in by_name:
                    raise fail(f"alias target {rs.alias.dns_name} is not a name in this zone",
                               name, rtype)
        if "DNAME" in types:
            if "CNAME" in types:
                raise fail(f"DNAME and CNAME at {name}; they cannot share a name (RFC 6672 §2.4)",
                           name, "DNAME", "CNAME")
            if any(len(rs.values) > 1 for rs in types["DNAME"]):
                raise fail(f"more than one DNAME record at {name} (RFC 6672 §2.4)", name, "DNAME")
        if "CNAME" in types:
            group = types["CNAME"]
            if not all(rs.alias for rs in group):
                others = sorted(t for t in types if t not in _BESIDE_CNAME)
                if others:
                    raise fail(f"CNAME at {name} beside other data ({', '.join(others)}); a CNAME "
                               "must be the only data at its name (RFC 1034 §3.6.2, RFC 2181 §10.1)",
                               name, "CNAME", *others)
                if any(len(rs.values) > 1 for rs in group if rs.set_identifier is None):
                    raise fail(f"more than one CNAME record at {name} (RFC 1034 §3.6.2)",
                               name, "CNAME")
        if dnames and name != origin:
            parent = _parent(name)
            while parent is not None and len(parent) >= len(origin):
                if parent in dnames:
                    raise fail(f"{name} is below the DNAME at {parent}; no data may exist below "
                               "a DNAME (RFC 6672 §2.3)", name, next(iter(types)))
                parent = None if parent == origin else _parent(parent)


def _parent(name: str) -> str | None:
    """The parent of a canonical name (None for the root)."""
    if name == ".":
        return None
    if "\\" in name:  # an escaped dot is not a label boundary
        return dns.name.from_text(name).parent().to_text()
    rest = name.split(".", 1)[1]
    return rest or "."


def load_zone_file(path: str | Path) -> LoadedZone:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ZoneLoadError(str(p), f"cannot read: {exc}") from exc
    if p.suffix == ".json":
        zone = parse_route53_json(text, str(p))
    elif p.suffix == ".zone":
        zone = parse_master(text, str(p), origin_from_filename(p))
    else:
        raise ZoneLoadError(str(p), "unknown zone file type (expected .zone or .json)")
    check_zone(zone)
    return zone


def load_zone_dir(directory: str | Path) -> list[LoadedZone]:
    """Every `*.zone` and `*.json` directly in `directory`, all or nothing, sorted by origin."""
    d = Path(directory)
    if not d.is_dir():
        raise ZoneLoadError(str(d), "not a directory")
    return load_zone_files(sorted([*d.glob("*.zone"), *d.glob("*.json")]))


def load_zone_files(paths: Iterable[Path]) -> list[LoadedZone]:
    zones: dict[str, LoadedZone] = {}
    for p in paths:
        zone = load_zone_file(p)
        if zone.origin in zones:
            raise ZoneLoadError(
                str(p), f"zone {zone.origin} is also defined in {zones[zone.origin].source}"
            )
        zones[zone.origin] = zone
    return [zones[k] for k in sorted(zones)]
