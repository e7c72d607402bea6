"""Loading zones from disk: RFC 1035 master files (`*.zone`) and Route 53 JSON (`*.json`).

Pure core apart from reading the file text. A Route 53 JSON file has exactly the shape that
`aws route53 list-resource-record-sets` prints, so a real exported zone loads as is, weighted
and alias record sets included. A bad zone is refused whole with the file, the line or record,
and the reason: `ZoneLoadError` carries them, and `load_zone_dir` never returns half a set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from authd import gcpause
from authd.model.records import RecordError, RecordKey, RecordSet, canonical_name
from authd.zonefiles import fastbuild
from authd.zonefiles.masterfile import MasterFileError, NeedsFullReader, read_tuples, read_wired


@dataclass(frozen=True)
class LoadedZone:
    origin: str  # canonical, e.g. "api.aws."
    record_sets: tuple[RecordSet, ...]
    source: str  # the file it came from
    # (name, type) -> the line of its last record, for master files (error messages)
    lines: Mapping[tuple[str, str], int] = field(default_factory=dict, compare=False, repr=False)
    # the served zone (`authd.dns.answer.Zone`) built as the file was read, already checked
    # (`authd.zonefiles.fastbuild`), when the loader was asked for it; None: build it from
    # `record_sets` (`Zone.build`). The index takes it once and drops it (`take_built`).
    built: Any = field(default=None, compare=False, repr=False)

    def take_built(self) -> Any:
        """The prebuilt zone, handed over once: the zone file no longer keeps it alive."""
        zone = self.built
        object.__setattr__(self, "built", None)
        return zone


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


def parse_master(text: str, path: str, origin: str, *, build: bool = False) -> LoadedZone:
    """Parse an RFC 1035 master file; the zone's origin is the file name's.

    `authd.zonefiles.masterfile` reads it line by line (fast, and every record keeps its line); a file
    with $INCLUDE or $GENERATE is read by dnspython instead. With `build`, the served zone is
    built on the way and checked (`authd.zonefiles.fastbuild`; `LoadedZone.built`): a zone the
    quick check does not pass is checked here by `check_zone`, which raises its error."""
    try:
        got = fastbuild.gather(read_wired(text, origin))
    except MasterFileError as exc:
        line_text = _line(text, exc.line)
        reason = f"{exc.reason.rstrip('.')} (in {line_text!r})" if line_text else exc.reason
        raise ZoneLoadError(path, reason, line=exc.line) from exc
    except NeedsFullReader:
        return _parse_master_dnspython(text, path, origin)
    origin = canonical_name(origin)
    sets = tuple(got.sets.values())
    zone = fastbuild.build(origin, got) if build else None
    del got
    loaded = LoadedZone(origin, sets, path, _Lines(text, origin), built=zone)
    if build and zone is None:
        check_zone(loaded)  # raises with the line; a zone that passes is built by the index
    return loaded


class _Lines(Mapping[tuple[str, str], int]):
    """(name, type) -> the last line of its records, read again from the text when first
    asked: only an error message needs it, and keeping it for every set of a big zone cost
    tens of MB while it loaded."""

    def __init__(self, text: str, origin: str):
        self._text, self._origin = text, origin
        self._lines: dict[tuple[str, str], int] | None = None

    def _all(self) -> dict[tuple[str, str], int]:
        if self._lines is None:
            self._lines = {(owner, rtype): line
                           for line, owner, _, rtype, _ in read_tuples(self._text, self._origin)}
        return self._lines

    def __getitem__(self, key: tuple[str, str]) -> int:
        return self._all()[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


_trusted = fastbuild._trusted  # `tests/test_zonefile_fast.py` checks it against `RecordSet(...)`


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
    """Zone-level rules, as strict as Knot's and NSD's, plus Route 53's. Linear in the zone,
    and without a structure per name: the per-type view is built only for the few names
    whose rules need it (CNAME and DNAME owners, weighted groups).

    Raises ZoneLoadError naming the line (master files) or the record (Route 53 JSON)."""
    path, origin = zone.source, zone.origin
    origin_name = dns.name.from_text(origin)
    plain_suffix = "." + origin if origin != "." else "."
    sets = zone.record_sets

    def fail(reason: str, name: str, *rtypes: str) -> ZoneLoadError:
        """The error, at the latest line among the named sets (the record that broke it)."""
        found = [zone.lines[(name, t)] for t in rtypes if (name, t) in zone.lines]
        rtype = rtypes[0]
        if found:
            line = max(found)
            return ZoneLoadError(path, reason, line=line)
        return ZoneLoadError(path, reason, record=f"name={name!r}, type={rtype!r}")

    names: dict[str, str] = {}  # every owner -> the first type seen there
    plain_keys: set[RecordKey] = set()
    special: set[str] = set()  # names with a CNAME or DNAME: their types are looked at
    grouped: dict[tuple[str, str], list[RecordSet]] = {}  # (name, type) with set identifiers
    for rs in sets:
        name = rs.name
        if name not in names:
            names[name] = rs.rtype
        if rs.set_identifier is None:
            if rs.key in plain_keys:
                raise fail("duplicate record set", name, rs.rtype)
            plain_keys.add(rs.key)
        else:
            grouped.setdefault((name, rs.rtype), []).append(rs)
        if rs.rtype in ("CNAME", "DNAME"):
            special.add(name)
    for name, first_type in names.items():
        # names are canonical text, so a suffix test is exact unless a label holds an escape
        inside = name == origin or (name.endswith(plain_suffix) and "\\" not in name) or \
            dns.name.from_text(name).is_subdomain(origin_name)
        if not inside:
            raise fail(f"{name} is outside the zone {origin}", name, first_type)
    for rs in sets:
        if rs.rtype == "SOA" and rs.name != origin:
            raise fail(f"SOA record at {rs.name}, below the zone apex {origin} (RFC 1035 §5.2)",
                       rs.name, "SOA")
    apex_soa = [rs for rs in sets if rs.name == origin and rs.rtype == "SOA"]
    if not apex_soa:
        raise ZoneLoadError(path, f"no SOA record at the zone apex {origin}")
    soa_values = [v for rs in apex_soa for v in rs.values]
    if len(soa_values) != 1:
        raise fail(f"{len(soa_values)} SOA records at the zone apex {origin}; a zone has exactly "
                   "one (RFC 1035 §5.2)", origin, "SOA")
    if (origin, "NS", None) not in plain_keys and (origin, "NS") not in grouped:
        raise ZoneLoadError(path, f"no NS records at the zone apex {origin}")

    for (name, rtype), group in grouped.items():
        ids = [rs.set_identifier for rs in group]
        if (name, rtype, None) in plain_keys:
            raise fail("a weighted and a non-weighted record set share a name and type",
                       name, rtype)
        if len(set(ids)) != len(ids):
            raise fail("duplicate record set", name, rtype)
    for rs in sets:
        if rs.alias is not None and rs.alias.dns_name not in names:
            raise fail(f"alias target {rs.alias.dns_name} is not a name in this zone",
                       rs.name, rs.rtype)
    if not special:
        return
    at: dict[str, dict[str, list[RecordSet]]] = {}  # the types at CNAME and DNAME owners
    for rs in sets:
        if rs.name in special:
            at.setdefault(rs.name, {}).setdefault(rs.rtype, []).append(rs)
    dnames = {n for n, types in at.items() if "DNAME" in types}
    for name, types in at.items():
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
    if dnames:
        for name, first_type in names.items():
            if name == origin:
                continue
            parent = _parent(name)
            while parent is not None and len(parent) >= len(origin):
                if parent in dnames:
                    raise fail(f"{name} is below the DNAME at {parent}; no data may exist below "
                               "a DNAME (RFC 6672 §2.3)", name, first_type)
                parent = None if parent == origin else _parent(parent)


def _parent(name: str) -> str | None:
    """The parent of a canonical name (None for the root)."""
    if name == ".":
        return None
    if "\\" in name:  # an escaped dot is not a label boundary
        return dns.name.from_text(name).parent().to_text()
    rest = name.split(".", 1)[1]
    return rest or "."


def load_zone_file(path: str | Path, *, build: bool = False) -> LoadedZone:
    """One zone file, read and checked. With `build`, a master file's served zone is built as
    it is read (`LoadedZone.built`), for a serving index that takes it (`index_from_zones`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ZoneLoadError(str(p), f"cannot read: {exc}") from exc
    with gcpause.paused(text.count("\n")):
        if p.suffix == ".json":
            zone = parse_route53_json(text, str(p))
        elif p.suffix == ".zone":
            zone = parse_master(text, str(p), origin_from_filename(p), build=build)
        else:
            raise ZoneLoadError(str(p), "unknown zone file type (expected .zone or .json)")
        if zone.built is None:  # a built zone was checked as it was built
            check_zone(zone)
    return zone


def load_zone_dir(directory: str | Path, *, build: bool = False) -> list[LoadedZone]:
    """Every `*.zone` and `*.json` directly in `directory`, all or nothing, sorted by origin.
    `build`: as for `load_zone_file`."""
    return load_zone_files(zone_paths(directory), build=build)


def zone_paths(directory: str | Path) -> list[Path]:
    """The `*.zone` and `*.json` files directly in `directory`, sorted."""
    d = Path(directory)
    if not d.is_dir():
        raise ZoneLoadError(str(d), "not a directory")
    return sorted([*d.glob("*.zone"), *d.glob("*.json")])


def load_zone_files(paths: Iterable[Path], *, build: bool = False) -> list[LoadedZone]:
    zones: dict[str, LoadedZone] = {}
    for p in paths:
        zone = load_zone_file(p, build=build)
        if zone.origin in zones:
            raise ZoneLoadError(
                str(p), f"zone {zone.origin} is also defined in {zones[zone.origin].source}"
            )
        zones[zone.origin] = zone
    return [zones[k] for k in sorted(zones)]
