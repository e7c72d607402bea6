"""Test helper: check a raw Route 53 response body against botocore's model of the operation.

botocore's parser skips elements it does not know and never complains about a missing
required member, so a response can "work" with boto3 and still not be Route 53's. This walks
the XML itself, against the operation's output shape from
`botocore/data/route53/2013-04-01/service-2.json` (rest-xml: no attributes, no flattened
lists, no maps in this model):

- the root is `<OperationNameResponse>` in Route 53's namespace;
- every element is a member of its shape (no unknown members), at most once unless a list;
- every required member is there (header members in the headers);
- leaves hold text only and parse as their type: integer/long (within min/max), boolean
  (`true`/`false`), timestamp (ISO 8601), string (enum values, max length);
- list items carry the list's member name (`member` when the model gives none).

Errors: the body is an ErrorResponse (Error/Type, Code, Message; RequestId), the code is one
the operation declares (or a common one), and the HTTP status is the model's for that error.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

NS = "https://route53.amazonaws.com/doc/2013-04-01/"
# errors any Route 53 operation may return (Route 53 API reference, Common Errors), and
# UnknownOperation for what authd does not serve
COMMON_ERRORS = {
    "InvalidInput", "AccessDenied", "IncompleteSignature", "InvalidClientTokenId",
    "MissingAuthenticationToken", "SignatureDoesNotMatch", "Throttling", "ThrottlingException",
    "RequestEntityTooLarge", "InternalFailure", "ServiceUnavailable",
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def check_leaf(shape: Any, text: str, where: str) -> list[str]:
    t = shape.type_name
    problems: list[str] = []
    if t in ("integer", "long"):
        try:
            n = int(text)
        except ValueError:
            return [f"{where}: {text!r} is not an {t}"]
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if lo is not None and n < lo or hi is not None and n > hi:
            problems.append(f"{where}: {n} outside [{lo}, {hi}]")
    elif t == "boolean":
        if text not in ("true", "false"):
            problems.append(f"{where}: {text!r} is not a boolean")
    elif t == "timestamp":
        try:
            dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{where}: {text!r} is not an ISO 8601 timestamp")
    elif t == "string":
        enum = getattr(shape, "enum", None) or []
        if enum and text not in enum:
            problems.append(f"{where}: {text!r} is not one of {enum}")
        hi = shape.metadata.get("max")
        if hi is not None and len(text) > hi:
            problems.append(f"{where}: {len(text)} characters, more than {hi}")
    elif t in ("double", "float"):
        try:
            float(text)
        except ValueError:
            problems.append(f"{where}: {text!r} is not a number")
    else:
        problems.append(f"{where}: no check for type {t}")
    return problems


def check_element(elem: ET.Element, shape: Any, where: str) -> list[str]:
    t = shape.type_name
    if t == "structure":
        return check_structure(elem, shape, where)
    if t == "list":
        item_name = shape.member.serialization.get("name", "member")
        problems: list[str] = []
        if (elem.text or "").strip():
            problems.append(f"{where}: a list holds text {elem.text!r}")
        for i, child in enumerate(elem):
            if _local(child.tag) != item_name:
                problems.append(f"{where}: list item <{_local(child.tag)}>, expected <{item_name}>")
                continue
            problems += check_element(child, shape.member, f"{where}[{i}]")
        # a list's `min` constrains requests (botocore validates it on input); Route 53
        # answers an untagged resource with an empty <Tags/> all the same
        return problems
    if len(elem):
        return [f"{where}: leaf of type {t} holds elements"]
    return check_leaf(shape, elem.text or "", where)


def check_structure(elem: ET.Element, shape: Any, where: str, headers: Mapping[str, str] | None = None) -> list[str]:
    problems: list[str] = []
    by_xml: dict[str, tuple[str, Any]] = {}
    for name, member in shape.members.items():
        if member.serialization.get("location"):
            continue  # header / status members travel outside the body
        by_xml[member.serialization.get("name", name)] = (name, member)
    if (elem.text or "").strip():
        problems.append(f"{where}: a structure holds text {elem.text!r}")
    seen: set[str] = set()
    for child in elem:
        tag = _local(child.tag)
        if _ns(child.tag) not in ("", NS):
            problems.append(f"{where}.{tag}: namespace {_ns(child.tag)}")
        if tag not in by_xml:
            problems.append(f"{where}: unknown member <{tag}> (members: {', '.join(by_xml) or 'none'})")
            continue
        if tag in seen:
            problems.append(f"{where}: <{tag}> appears more than once")
        seen.add(tag)
        problems += check_element(child, by_xml[tag][1], f"{where}.{tag}")
    for name in shape.required_members:
        member = shape.members[name]
        loc = member.serialization.get("location")
        if loc == "header":
            header = member.serialization.get("name", name).lower()
            if headers is not None and header not in headers:
                problems.append(f"{where}: required header {header} missing")
        elif not loc and member.serialization.get("name", name) not in seen:
            problems.append(f"{where}: required member <{name}> missing")
    return problems


def check_response(operation: Any, status: int, body: bytes, headers: Mapping[str, str]) -> list[str]:
    """Every way the response departs from the model; [] when it conforms."""
    headers = {k.lower(): v for k, v in headers.items()}
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        return [f"{operation.name}: body is not XML ({exc}): {body[:200]!r}"]
    if status >= 300:
        return check_error(operation, status, root)
    problems: list[str] = []
    want_status = operation.http.get("responseCode", 200)
    if status != want_status:
        problems.append(f"{operation.name}: HTTP {status}, the model says {want_status}")
    if _local(root.tag) != f"{operation.name}Response" or _ns(root.tag) != NS:
        problems.append(f"{operation.name}: root element {root.tag}, expected {{{NS}}}{operation.name}Response")
    if operation.output_shape is not None:
        problems += check_structure(root, operation.output_shape, operation.name, headers)
    elif len(root):
        problems.append(f"{operation.name}: the model has no output, the body has {len(root)} elements")
    return problems


def check_error(operation: Any, status: int, root: ET.Element) -> list[str]:
    problems: list[str] = []
    if _local(root.tag) != "ErrorResponse":
        return [f"{operation.name}: error body root {root.tag}, expected ErrorResponse"]
    error = root.find(f"{{{NS}}}Error")
    if error is None:
        return [f"{operation.name}: ErrorResponse without Error"]
    fields = {_local(c.tag): (c.text or "") for c in error}
    if set(fields) - {"Type", "Code", "Message"}:
        problems.append(f"{operation.name}: unknown Error members {set(fields) - {'Type', 'Code', 'Message'}}")
    for name in ("Type", "Code", "Message"):
        if not fields.get(name):
            problems.append(f"{operation.name}: Error/{name} missing or empty")
    if root.find(f"{{{NS}}}RequestId") is None:
        problems.append(f"{operation.name}: ErrorResponse without RequestId")
    code = fields.get("Code", "")
    declared = {e.name: e for e in operation.error_shapes}
    if code not in declared and code not in COMMON_ERRORS:
        problems.append(f"{operation.name}: error {code} is not one the operation declares ({', '.join(declared)})")
    elif code in declared:
        want = declared[code].metadata.get("error", {}).get("httpStatusCode", 400)
        if status != want:
            problems.append(f"{operation.name}: {code} with HTTP {status}, the model says {want}")
    return problems


def synthetic_input(shape: Any, depth: int = 0) -> Any:
    """A value botocore's validator accepts, for a shape: required members only."""
    t = shape.type_name
    if t == "structure":
        return {name: synthetic_input(shape.members[name], depth + 1) for name in shape.required_members}
    if t == "list":
        return [synthetic_input(shape.member, depth + 1)] * max(int(shape.metadata.get("min", 1)), 1)
    if t in ("integer", "long"):
        return max(int(shape.metadata.get("min", 1)), 1)
    if t == "boolean":
        return False
    if t == "timestamp":
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    if t in ("double", "float"):
        return 1.0
    enum = getattr(shape, "enum", None)
    if enum:
        return enum[0]
    text = "authd-model-probe"
    lo, hi = shape.metadata.get("min", 1), shape.metadata.get("max", len(text))
    return (text * 4)[: max(lo, min(hi, len(text)))]
