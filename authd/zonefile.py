"""Loading zones from disk: RFC 1035 master files (`*.zone`) and Route 53 JSON (`*.json`).

Pure core apart from reading the file text. A Route 53 JSON file has exactly the shape that
`aws route53 list-resource-record-sets` prints, so a real exported zone loads as is, weighted
and alias record sets included. A bad zone is refused whole with the file, the line or record,
and the reason: `ZoneLoadError` carries them, and `load_zone_dir` never returns half a set.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from authd.records import RecordError, RecordSet, canonical_name


@dataclass(frozen=True)
class LoadedZone:
    origin: str  # canonical, e.g. "api.aws."
    record_sets: tuple[RecordSet, ...]
    source: str  # the file it came from


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
    """Parse an RFC 1035 master file. The origin is $ORIGIN or else the file name's."""
    try:
        zone = dns.zone.from_text(
            text, origin=origin, relativize=False, check_origin=True, filename=path
        )
    except dns.exception.SyntaxError as exc:
        # dnspython formats these as "path:line: detail"
        line, detail = _syntax_error_line(text, path, origin, exc)
        raise ZoneLoadError(path, detail, line=line) from exc
    except dns.zone.NoSOA as exc:
        raise ZoneLoadError(path, f"no SOA record at the zone apex {origin}") from exc
    except dns.zone.NoNS as exc:
        raise ZoneLoadError(path, f"no NS records at the zone apex {origin}") from exc
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


def check_zone(zone: LoadedZone) -> None:
    """Zone-level rules, Route 53's among them. Raises ZoneLoadError naming the record at fault."""
    path = zone.source
    origin = dns.name.from_text(zone.origin)
    by_name_type: dict[tuple[str, str], list[RecordSet]] = defaultdict(list)
    names: set[str] = set()
    for rs in zone.record_sets:
        if not dns.name.from_text(rs.name).is_subdomain(origin):
            raise ZoneLoadError(path, f"{rs.name} is outside the zone {zone.origin}", record=rs.name)
        by_name_type[(rs.name, rs.rtype)].append(rs)
        names.add(rs.name)
    if ("SOA" not in {t for (n, t) in by_name_type if n == zone.origin}) or (
        (zone.origin, "NS") not in by_name_type
    ):
        raise ZoneLoadError(path, f"the zone apex {zone.origin} needs an SOA and NS records")
    for (name, rtype), group in by_name_type.items():
        where = f"name={name!r}, type={rtype!r}"
        ids = [rs.set_identifier for rs in group]
        if len(group) > 1 and any(i is None for i in ids):
            raise ZoneLoadError(
                path, "a weighted and a non-weighted record set share a name and type", record=where
            )
        if len(set(ids)) != len(ids):
            raise ZoneLoadError(path, "duplicate record set", record=where)
        if rtype == "CNAME" and any(
            t != "CNAME" for (n, t) in by_name_type if n == name
        ) and not all(rs.alias for rs in group):
            raise ZoneLoadError(path, "a CNAME cannot coexist with other data", record=where)
        for rs in group:
            if rs.alias is not None and rs.alias.dns_name not in names:
                raise ZoneLoadError(
                    path,
                    f"alias target {rs.alias.dns_name} is not a name in this zone",
                    record=where,
                )


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
