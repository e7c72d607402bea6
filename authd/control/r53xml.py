"""Route 53 wire formats (API version 2013-04-01): request XML in, response XML out, and the
JSON change-batch shape that `aws route53 change-resource-record-sets --change-batch` takes.

Pure core. Requests are parsed with defusedxml (no entities, no DTDs, no external anything)
into the same dict shape as the JSON, so the API and the CLI share one conversion to
`Change`s. Responses are built as text with every value escaped. Element names and order
follow the Route 53 API reference; botocore parses them into the shapes boto3 returns.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
import xml.etree.ElementTree as FastET
from collections.abc import Iterable, Sequence
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from authd.model.records import RecordError, RecordSet, from_route53_name, route53_name
from authd.store.contract import Action, Change, ChangeInfo, HostedZone

NS = "https://route53.amazonaws.com/doc/2013-04-01/"
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


class BadRequest(Exception):
    """A request Route 53 would refuse before looking at the store.

    `code` is InvalidInput (malformed XML, missing fields) or InvalidChangeBatch (a record
    set that cannot exist); `messages` are what the response says."""

    def __init__(self, code: str, messages: Sequence[str]):
        self.code, self.messages = code, tuple(messages)
        super().__init__("; ".join(self.messages))


# --- parsing --------------------------------------------------------------------------------


_LOCAL: dict[str, str] = {}


def _local(tag: str) -> str:
    name = _LOCAL.get(tag)
    if name is None:
        name = tag.rsplit("}", 1)[-1]
        if len(_LOCAL) < 4096:
            _LOCAL[tag] = name
    return name


_OPENINGS = (
    "Tried to ", "RRSet ", "The request ", "A HostedZone ", "Number of records", "RDATA ",
    "Invalid ", "Weight ", "TTL ", "A record set ", "An alias ", "Alias records ",
    "Duplicate ", "SetIdentifier must", "A weighted ", "A non-alias ", "No health check ",
    "CIDR ", "Geolocation ", "Multivalue ",
)


def split_messages(message: str) -> list[str]:
    """The inverse of the bracketed InvalidChangeBatch Message, for clients that want the
    problems one by one: a new problem starts where a known problem opening follows ", "."""
    text = message[1:-1] if message.startswith("[") and message.endswith("]") else message
    out: list[str] = []
    for part in text.split(", "):
        if out and not part.startswith(_OPENINGS):
            out[-1] += ", " + part
        else:
            out.append(part)
    return out


_UTF8_DECL = re.compile(rb"""<\?xml[^>]*encoding=["'](?:utf-8|UTF-8|us-ascii|US-ASCII)["']""")


def _plain_utf8(body: bytes) -> bool:
    """True when the body is UTF-8 (or declares it) and holds no markup declaration at all.

    Without `<!` there is no DOCTYPE, so no entity declarations and no external entities:
    nothing that defusedxml guards against can be expressed, and the C parser is safe."""
    if b"<!" in body:
        return False
    if body.startswith(b"<?xml") and b"encoding" in body[:200] and not _UTF8_DECL.match(body):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# Limits on a request document, well above any real request and far below what would hurt.
# The deepest Route 53 request (ResourceRecordSet/GeoProximityLocation/Coordinates/Latitude)
# nests 8 levels; a full 1,000-change batch with every routing field is ~30,000 elements.
# Past either cap the request is InvalidInput, before any recursive code sees the tree.
MAX_DEPTH = 32
MAX_ELEMENTS = 100_000


def parse_xml(body: bytes, root: str | None = None) -> Element:
    """Parse a request body safely, within `MAX_ELEMENTS` and `MAX_DEPTH`.

    Bodies with any markup declaration (`<!`), or not plain UTF-8, go through defusedxml
    (which refuses entity declarations and external references); the rest, which cannot
    contain them, through the stdlib's C parser, about 3x faster on a 1,000-change batch.

    With `root` (a request element name in `IMPLEMENTED`), the document must have that
    root and only implemented children anywhere (`refuse_unimplemented`); without it, only
    the depth is checked.
    """
    try:
        tree = FastET.fromstring(body) if _plain_utf8(body) else SafeET.fromstring(body)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise BadRequest("InvalidInput", [f"Invalid XML ; {type(exc).__name__}: {exc}"]) from exc
    count = sum(1 for _ in tree.iter())  # C-speed; the tree is already bounded by the body cap
    if count > MAX_ELEMENTS:
        raise BadRequest("InvalidInput", [f"Invalid XML ; the document has {count} elements, more than {MAX_ELEMENTS}"])
    if root is None:
        _check_depth(tree)
    else:
        if _local(tree.tag) != root:
            raise BadRequest("InvalidInput", [f"Invalid XML ; cvc-elt.1: Cannot find the declaration of element '{_local(tree.tag)}'."])
        refuse_unimplemented(tree, root)
    return tree


def _too_deep() -> BadRequest:
    return BadRequest("InvalidInput", [f"Invalid XML ; elements are nested more than {MAX_DEPTH} levels deep"])


def _check_depth(tree: Element) -> None:
    stack = [(tree, 1)]
    while stack:  # iterative: a deep document must not exhaust the interpreter's stack
        elem, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        stack.extend((child, depth + 1) for child in elem)


# --- what authd implements, per request element ---------------------------------------------
#
# `IMPLEMENTED[shape]` maps each child element authd reads to the shape of that child (None
# for a text leaf). Anything else in a request body, whether Route 53 knows it (VPC,
# DelegationSetId, HealthCheckId, ...) or not, is refused with InvalidInput naming it, so no
# field is ever silently dropped (issue 11 section 4). Implementing a field means adding its
# name here, next to the code that reads it; `tests/test_control_hygiene.py` walks
# botocore's model and checks that every member not listed here is refused by name.
# Shapes in `REPEATED` are lists: their one child element may repeat; in every other shape
# a child may appear at most once (a second one would otherwise overwrite the first).

IMPLEMENTED: dict[str, dict[str, str | None]] = {
    "CreateHostedZoneRequest": {"Name": None, "CallerReference": None, "HostedZoneConfig": "HostedZoneConfig",
                                "DelegationSetId": None},  # read by authd.control.api_zones
    "HostedZoneConfig": {"Comment": None, "PrivateZone": None},
    "UpdateHostedZoneCommentRequest": {"Comment": None},
    "ChangeResourceRecordSetsRequest": {"ChangeBatch": "ChangeBatch"},
    "ChangeBatch": {"Comment": None, "Changes": "Changes"},
    "Changes": {"Change": "Change"},
    "Change": {"Action": None, "ResourceRecordSet": "ResourceRecordSet"},
    "ResourceRecordSet": {
        "Name": None, "Type": None, "SetIdentifier": None, "Weight": None, "TTL": None,
        "ResourceRecords": "ResourceRecords", "AliasTarget": "AliasTarget",
        # the routing fields, read by records.RecordSet.from_route53
        "Region": None, "GeoLocation": "GeoLocation", "Failover": None, "MultiValueAnswer": None,
        "HealthCheckId": None, "CidrRoutingConfig": "CidrRoutingConfig",
    },
    "GeoLocation": {"ContinentCode": None, "CountryCode": None, "SubdivisionCode": None},
    "CidrRoutingConfig": {"CollectionId": None, "LocationName": None},
    "ResourceRecords": {"ResourceRecord": "ResourceRecord"},
    "ResourceRecord": {"Value": None},
    "AliasTarget": {"HostedZoneId": None, "DNSName": None, "EvaluateTargetHealth": None},
}
REPEATED = frozenset({"Changes", "ResourceRecords"})


def _unexpected(name: str, allowed: Iterable[str]) -> BadRequest:
    """Route 53's schema-validation wording (Xerces' cvc-complex-type.2.4.a)."""
    expected = ", ".join(f'"{NS}":{a}' for a in allowed)
    return BadRequest("InvalidInput", [
        f"Invalid XML ; cvc-complex-type.2.4.a: Invalid content was found starting with element "
        f"'{name}'. One of '{{{expected}}}' is expected."
    ])


def refuse_unimplemented(tree: Element, shape: str) -> None:
    """Raise InvalidInput naming the first element under `tree` that `IMPLEMENTED` lacks.

    Also refuses a repeated child outside `REPEATED`, child elements inside a text leaf,
    and nesting deeper than `MAX_DEPTH`. One pass; it descends only into implemented
    elements, so its recursion is bounded by the table's nesting, not by the document."""
    _refuse_under(tree, shape, 1)


_NOT_READ = object()


def _refuse_under(elem: Element, kind: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _too_deep()
    allowed = IMPLEMENTED.get(kind, {})
    seen: set[str] | None = None if kind in REPEATED else set()
    for child in elem:
        name = _local(child.tag)
        sub = allowed.get(name, _NOT_READ)
        if sub is _NOT_READ or (seen is not None and name in seen):
            raise _unexpected(name, [a for a in allowed if seen is None or a not in seen])
        if seen is not None:
            seen.add(name)
        if sub is None:
            if len(child):
                raise BadRequest("InvalidInput", [
                    f"Invalid XML ; cvc-type.3.1.2: Element '{name}' is a simple type, "
                    "so it must have no element information item [children]."
                ])
        else:
            _refuse_under(child, sub, depth + 1)  # type: ignore[arg-type]


def refuse_unimplemented_json(doc: Any, shape: str, where: str = "") -> None:
    """The same check for the JSON shape (`aws route53 ... --change-batch file://x.json`):
    InvalidInput naming the first key `IMPLEMENTED` lacks."""
    stack: list[tuple[Any, str | None, str, int]] = [(doc, shape, where or shape, 1)]
    while stack:
        value, kind, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        if kind is None or not isinstance(value, dict | list):
            continue
        allowed = IMPLEMENTED.get(kind, {})
        if kind in REPEATED:  # a JSON list stands for the repeated element
            (item_shape,) = allowed.values()
            items = value if isinstance(value, list) else [value]
            stack.extend((v, item_shape, f"{path}[{i}]", depth + 1) for i, v in enumerate(items))
            continue
        if isinstance(value, dict):
            for key, child in value.items():
                if key not in allowed:
                    raise BadRequest("InvalidInput", [
                        f"Invalid change batch ; unknown or unsupported field {key!r} in {path}; "
                        f"expected one of {', '.join(allowed)}"
                    ])
                stack.append((child, allowed[key], f"{path}.{key}", depth + 1))


_LISTS = {"Changes": "Change", "ResourceRecords": "ResourceRecord"}


def to_dict(elem: Element, name: str | None = None) -> Any:
    """XML element to the JSON shape: text for leaves, dicts, lists for the known lists."""
    if name is None:
        name = _local(elem.tag)
    if len(elem) == 0:
        return [] if name in _LISTS else (elem.text or "").strip()
    item = _LISTS.get(name)
    if item is not None:
        return [to_dict(c, item) for c in elem if _local(c.tag) == item]
    out: dict[str, Any] = {}
    for c in elem:
        n = _local(c.tag)
        out[n] = to_dict(c, n)
    return out


def parse_change_batch_xml(body: bytes) -> tuple[str, list[Change]]:
    scanned = _scan_change_batch(body)
    if scanned is not None:
        return scanned
    return _generic_change_batch(parse_xml(body, "ChangeResourceRecordSetsRequest"))


def _generic_change_batch(root: Element) -> tuple[str, list[Change]]:
    """The reference conversion: XML to the JSON shape, then `changes_from_route53`."""
    doc = to_dict(root)
    if not isinstance(doc, dict) or not isinstance(doc.get("ChangeBatch"), dict):
        raise BadRequest("InvalidInput", ["Invalid XML ; ChangeBatch is required"])
    return changes_from_route53(doc["ChangeBatch"])


_ACTIONS = {a.value: a for a in Action}


# The exact bytes botocore (boto3, the AWS CLI) and authd's own clients send for a batch of
# plain and weighted sets: no attributes but the namespace, no whitespace between elements,
# no entity or character references. Character data excludes what an XML parser would
# refuse or rewrite: `<`, `&`, C0 controls and CR, U+FFFE/U+FFFF (XML 1.0 sections 2.2, 2.4,
# 2.11); a body holding `]]>` anywhere is left to the parser.
_TEXT = r"[^<&\x00-\x08\x0b-\x1f\ufffe\uffff]*"
_SCAN_HEAD = re.compile(
    r"""(?:<\?xml version=(["'])1\.0\1 encoding=(["'])(?:utf-8|UTF-8)\2\?>\n?)?"""
    rf'<ChangeResourceRecordSetsRequest xmlns="{re.escape(NS)}"><ChangeBatch>'
    rf"(?:<Comment>({_TEXT})</Comment>)?<Changes>"
)
_SCAN_CHANGE = re.compile(
    rf"<Change><Action>({_TEXT})</Action><ResourceRecordSet><Name>({_TEXT})</Name>"
    rf"<Type>({_TEXT})</Type>(?:<SetIdentifier>({_TEXT})</SetIdentifier>)?"
    rf"(?:<Weight>({_TEXT})</Weight>)?<TTL>({_TEXT})</TTL>"
    # the first value captured apart: most sets have one, and then need no second search
    rf"<ResourceRecords><ResourceRecord><Value>({_TEXT})</Value></ResourceRecord>"
    rf"((?:<ResourceRecord><Value>{_TEXT}</Value></ResourceRecord>)*)"
    r"</ResourceRecords></ResourceRecordSet></Change>"
)
_SCAN_VALUE = re.compile(rf"<Value>({_TEXT})</Value>")
_SCAN_TAIL = "</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"


def _scan_change_batch(body: bytes) -> tuple[str, list[Change]] | None:
    """The commonest request, read without building an element tree: a batch of plain or
    weighted record sets exactly as botocore serialises it. The whole body must match the
    grammar above, or this returns None and the XML parser reads it; so must every value be
    valid (else the generic conversion words the problems). The grammar only admits
    well-formed XML whose character data needs no decoding, so for what it takes it gives
    what the parser and `_generic_change_batch` give: `tests/test_r53xml_fastpath.py` checks
    that on generated batches and on botocore's own serialisation. 1,000 changes: 6.5 ms,
    against 19 ms for the parser and the generic conversion (4.9 ms CPU for 1,000 CREATEs
    since the first value is captured apart, against 5.5; most of it is building the
    `RecordSet`s, 2.2 ms)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    head = _SCAN_HEAD.match(text)
    if head is None or "]]>" in text:
        return None
    comment = (head.group(3) or "").strip()
    pos = head.end()
    match = _SCAN_CHANGE.match
    values_in = _SCAN_VALUE.findall
    actions = _ACTIONS
    types = _RR_TYPE_SET
    out: list[Change] = []
    append = out.append
    try:
        while (m := match(text, pos)) is not None:
            act, name, rtype, set_id, weight, ttl, first, more = m.groups()
            # exact spellings first (what botocore sends); stripped and upper-cased as the
            # generic conversion reads them otherwise
            action = actions.get(act) or actions.get(act.strip().upper())
            if rtype not in types:
                rtype = rtype.strip()
                if rtype not in types:
                    return None
            if action is None:
                return None
            values = ((first.strip(),) if not more
                      else (first.strip(), *[v.strip() for v in values_in(more)]))
            append(Change(action, RecordSet(
                from_route53_name(name.strip()), rtype, int(ttl), values,
                None if set_id is None else set_id.strip(), None if weight is None else int(weight),
            )))
            pos = m.end()
    except ValueError:  # RecordError included: the generic conversion words every problem
        return None
    if not out or text[pos:].rstrip(" \t\n") != _SCAN_TAIL:
        return None
    return comment, out


# botocore's model, shape RRType, in its order (the order Route 53's schema error lists them).
# DNAME is not among them: zone files may hold one, a change batch may not.
RR_TYPES = ("SOA", "A", "TXT", "NS", "CNAME", "MX", "NAPTR", "PTR", "SRV", "SPF", "AAAA", "CAA",
            "DS", "TLSA", "SSHFP", "SVCB", "HTTPS")
_RR_TYPE_SET = frozenset(RR_TYPES)


def msg_bad_rrtype(value: object) -> str:
    """Route 53's schema validation text for a Type outside the RRType enumeration."""
    return (f"Invalid XML ; cvc-enumeration-valid: Value '{value}' is not facet-valid with "
            f"respect to enumeration '[{', '.join(RR_TYPES)}]'. It must be a value from the "
            "enumeration.")


def _int(value: Any, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise BadRequest("InvalidInput", [f"Invalid XML ; {field} must be an integer, got {value!r}"]) from exc


def changes_from_route53(batch: Any) -> tuple[str, list[Change]]:
    """`{"Comment": ..., "Changes": [{"Action": ..., "ResourceRecordSet": {...}}]}` to Changes.

    Shared by the XML API and the CLI's JSON files. Structural problems are InvalidInput;
    a record set that cannot exist (bad value, bad name) is InvalidChangeBatch, as Route 53
    reports "Invalid Resource Record" problems.
    """
    if not isinstance(batch, dict) or not isinstance(batch.get("Changes"), list):
        raise BadRequest("InvalidInput", ['Invalid change batch ; expected {"Changes": [...]}'])
    comment = batch.get("Comment") or ""
    if not isinstance(comment, str):
        raise BadRequest("InvalidInput", ["Invalid change batch ; Comment must be a string"])
    out: list[Change] = []
    bad: list[str] = []
    for i, item in enumerate(batch["Changes"]):
        if not isinstance(item, dict) or not isinstance(item.get("ResourceRecordSet"), dict):
            raise BadRequest("InvalidInput", [f"Invalid change batch ; Changes[{i}] needs Action and ResourceRecordSet"])
        try:
            action = Action(str(item.get("Action", "")).upper())
        except ValueError as exc:
            raise BadRequest(
                "InvalidInput",
                [f"Invalid XML ; Changes[{i}].Action {item.get('Action')!r} is not CREATE, DELETE or UPSERT"],
            ) from exc
        rrs = dict(item["ResourceRecordSet"])
        for field in ("TTL", "Weight"):
            if field in rrs and rrs[field] is not None:
                rrs[field] = _int(rrs[field], field)
        if isinstance(rrs.get("AliasTarget"), dict):
            at = dict(rrs["AliasTarget"])
            eth = at.get("EvaluateTargetHealth", False)
            at["EvaluateTargetHealth"] = eth if isinstance(eth, bool) else str(eth).lower() == "true"
            rrs["AliasTarget"] = at
        if not isinstance(rrs.get("ResourceRecords", []), list):
            raise BadRequest("InvalidInput", [f"Invalid change batch ; Changes[{i}].ResourceRecords must be a list"])
        if "Name" not in rrs or "Type" not in rrs:
            raise BadRequest("InvalidInput", [f"Invalid change batch ; Changes[{i}] needs Name and Type"])
        if str(rrs["Type"]).strip() not in RR_TYPES:
            raise BadRequest("InvalidInput", [msg_bad_rrtype(str(rrs["Type"]).strip())])
        try:
            out.append(Change(action, RecordSet.from_route53(rrs)))
        except RecordError as exc:
            text = str(exc)  # a value's problem is already Route 53's "FATAL problem: ..." text
            bad.append(f"Invalid Resource Record: '{text}'" if text.startswith("FATAL problem: ")
                       else f"Invalid Resource Record: FATAL problem: {text}")
    if bad:
        raise BadRequest("InvalidChangeBatch", bad)
    return comment, out


def parse_create_zone_xml(body: bytes) -> dict[str, str]:
    doc = to_dict(parse_xml(body, "CreateHostedZoneRequest"))
    if not isinstance(doc, dict) or not doc.get("Name") or not doc.get("CallerReference"):
        raise BadRequest("InvalidInput", ["Invalid XML ; Name and CallerReference are required"])
    raw_config = doc.get("HostedZoneConfig")
    config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    if str(config.get("PrivateZone", "false")).lower() == "true":  # VPC: refused by name above
        raise BadRequest("InvalidInput", ["Invalid XML ; element 'PrivateZone' true is not supported by authd: private hosted zones are not implemented"])
    return {
        "name": str(doc["Name"]),
        "caller_reference": str(doc["CallerReference"]),
        "comment": str(config.get("Comment", "") or ""),
    }


def parse_update_comment_xml(body: bytes) -> str:
    if not body.strip():  # botocore sends no body when Comment is omitted: Route 53 clears it
        return ""
    doc = to_dict(parse_xml(body, "UpdateHostedZoneCommentRequest"))
    if not isinstance(doc, dict | str):
        raise BadRequest("InvalidInput", ["Invalid XML ; expected UpdateHostedZoneCommentRequest"])
    return str(doc.get("Comment", "")) if isinstance(doc, dict) else ""


# --- building -------------------------------------------------------------------------------


def _el(name: str, value: Any) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def timestamp(epoch: float) -> str:
    """ISO 8601 in UTC with milliseconds, as Route 53 writes SubmittedAt."""
    t = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def change_info_xml(info: ChangeInfo, status: str) -> str:
    parts = [_el("Id", f"/change/{info.id}"), _el("Status", status), _el("SubmittedAt", timestamp(info.submitted_at))]
    if info.comment:
        parts.append(_el("Comment", info.comment))
    return "<ChangeInfo>" + "".join(parts) + "</ChangeInfo>"


def hosted_zone_xml(zone: HostedZone) -> str:
    config = "<Config>" + (_el("Comment", zone.comment) if zone.comment else "") + _el("PrivateZone", False) + "</Config>"
    return (
        "<HostedZone>"
        + _el("Id", f"/hostedzone/{zone.id}")
        + _el("Name", route53_name(zone.name))
        + _el("CallerReference", zone.caller_reference)
        + config
        + _el("ResourceRecordSetCount", zone.record_set_count)
        + "</HostedZone>"
    )


def delegation_set_xml(name_servers: Iterable[str]) -> str:
    return (
        "<DelegationSet><NameServers>"
        + "".join(_el("NameServer", ns) for ns in name_servers)
        + "</NameServers></DelegationSet>"
    )


def record_set_xml(rs: RecordSet) -> str:
    parts = [_el("Name", route53_name(rs.name)), _el("Type", rs.rtype)]
    if rs.set_identifier is not None:
        parts.append(_el("SetIdentifier", rs.set_identifier))
    if rs.weight is not None:
        parts.append(_el("Weight", rs.weight))
    r = rs.routing
    if r is not None:  # the element order of Route 53's ResourceRecordSet
        if r.region is not None:
            parts.append(_el("Region", r.region))
        if r.geo is not None:
            parts.append(
                "<GeoLocation>"
                + "".join(_el(n, v) for n, v in (("ContinentCode", r.geo.continent),
                                                 ("CountryCode", r.geo.country),
                                                 ("SubdivisionCode", r.geo.subdivision))
                          if v is not None)
                + "</GeoLocation>"
            )
        if r.failover is not None:
            parts.append(_el("Failover", r.failover))
        if r.multivalue is not None:
            parts.append(_el("MultiValueAnswer", r.multivalue))
    if rs.alias is not None:
        parts.append(
            "<AliasTarget>"
            + _el("HostedZoneId", rs.alias.hosted_zone_id)
            + _el("DNSName", route53_name(rs.alias.dns_name))
            + _el("EvaluateTargetHealth", rs.alias.evaluate_target_health)
            + "</AliasTarget>"
        )
    else:
        parts.append(_el("TTL", rs.ttl))
        parts.append(
            "<ResourceRecords>"
            + "".join(f"<ResourceRecord>{_el('Value', v)}</ResourceRecord>" for v in rs.values)
            + "</ResourceRecords>"
        )
    if r is not None:
        if r.health_check_id is not None:
            parts.append(_el("HealthCheckId", r.health_check_id))
        if r.cidr is not None:
            parts.append("<CidrRoutingConfig>" + _el("CollectionId", r.cidr[0])
                         + _el("LocationName", r.cidr[1]) + "</CidrRoutingConfig>")
    return "<ResourceRecordSet>" + "".join(parts) + "</ResourceRecordSet>"


def document(root: str, inner: str) -> bytes:
    return (XML_DECL + f'<{root} xmlns="{NS}">' + inner + f"</{root}>").encode()


def element(name: str, value: Any) -> str:
    return _el(name, value)


def request_id() -> str:
    return str(uuid.uuid4())


def error_xml(code: str, messages: Sequence[str], req_id: str, sender: bool = True) -> bytes:
    """Route 53's ErrorResponse. InvalidChangeBatch carries every problem in one Message:
    the list in brackets, comma-joined, as Route 53 writes it and as boto3 and the AWS CLI
    print it (`An error occurred (InvalidChangeBatch) ...: [first, second]`)."""
    message = "[" + ", ".join(messages) + "]" if code == "InvalidChangeBatch" else "; ".join(messages)
    inner = (
        "<Error>" + _el("Type", "Sender" if sender else "Receiver") + _el("Code", code)
        + _el("Message", message) + "</Error>" + _el("RequestId", req_id)
    )
    return document("ErrorResponse", inner)
