"""CIDR collections (Route 53 IP-based routing): the documents, their changes, their XML.

Pure core: no I/O. A collection is stored through the store's generic resources (kind
`cidrcollection`, journaled so every serving index learns its blocks) as
`{"Name": ..., "CallerReference": ..., "Locations": {location: [cidr, ...]}}`; its Version is
the resource's version (1 when created, +1 per change), which ChangeCidrCollection's
CollectionVersion is checked against (compare-and-swap). The shell that serves the API is
`authd.control.api_cidr`; record sets name a location with CidrRoutingConfig, and
`authd.dns.answer` routes on the longest block that holds the client.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from xml.etree.ElementTree import Element

from authd.control import r53xml as X

KIND = "cidrcollection"
MAX_CHANGES = 1000  # CidrCollectionChanges and CidrList: at most 1,000 items (botocore model)
_NAME = re.compile(r"[0-9A-Za-z_\-]{1,64}")  # CollectionName
_LOCATION = re.compile(r"[0-9A-Za-z_\-]{1,16}")  # CidrLocationNameDefaultNotAllowed
_UUID = re.compile(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}")

# HTTP status of each error (botocore model)
STATUS = {
    "NoSuchCidrCollectionException": 404,
    "NoSuchCidrLocationException": 404,
    "CidrCollectionVersionMismatchException": 409,
    "CidrCollectionAlreadyExistsException": 400,
    "CidrCollectionInUseException": 400,
    "CidrBlockInUseException": 400,
}


class CidrError(Exception):
    """A refused CIDR request: `code` is the Route 53 error code, the text its message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def arn(cid: str) -> str:
    return f"arn:aws:route53:::cidrcollection/{cid}"


def check_id(cid: str) -> None:
    if not _UUID.fullmatch(cid):
        raise CidrError("InvalidInput", f"1 validation error detected: Value '{cid}' at 'id' failed "
                        "to satisfy constraint: Member must satisfy regular expression pattern: "
                        "[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}")


def new_collection(name: str, caller_reference: str) -> dict[str, Any]:
    if not _NAME.fullmatch(name):
        raise CidrError("InvalidInput", f"1 validation error detected: Value '{name}' at 'name' "
                        "failed to satisfy constraint: Member must satisfy regular expression "
                        "pattern: [0-9A-Za-z_\\-]+")
    if not 1 <= len(caller_reference) <= 64:
        raise CidrError("InvalidInput", "CallerReference must be 1 to 64 characters")
    return {"Name": name, "CallerReference": caller_reference, "Locations": {}}


def _network(text: str) -> str:
    """A block in the form Route 53 lists it (`192.0.2.0/24`); host bits must be zero."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=True))
    except ValueError as exc:
        raise CidrError("InvalidInput", f"Invalid CIDR block {text!r}: {exc}") from exc


def apply_changes(doc: dict[str, Any], changes: list[tuple[str, str, list[str]]]) -> dict[str, Any]:
    """The collection after ChangeCidrCollection's changes, each (action, location, blocks):
    PUT adds blocks to a location (creating it), DELETE_IF_EXISTS removes those it has (a
    location left without blocks goes away). A block may belong to one location only."""
    if not 1 <= len(changes) <= MAX_CHANGES:
        raise CidrError("InvalidInput", f"Changes must hold 1 to {MAX_CHANGES} changes")
    locations: dict[str, list[str]] = {k: list(v) for k, v in (doc.get("Locations") or {}).items()}
    for action, location, blocks in changes:
        if not _LOCATION.fullmatch(location):
            raise CidrError("InvalidInput", f"1 validation error detected: Value '{location}' at "
                            "'locationName' failed to satisfy constraint: Member must satisfy "
                            "regular expression pattern: [0-9A-Za-z_\\-]+")
        if not 1 <= len(blocks) <= MAX_CHANGES:
            raise CidrError("InvalidInput", f"CidrList must hold 1 to {MAX_CHANGES} blocks")
        nets = [_network(b) for b in blocks]
        if action == "PUT":
            have = locations.setdefault(location, [])
            for net in nets:
                owner = next((loc for loc, bs in locations.items() if net in bs), None)
                if owner is not None and owner != location:
                    raise CidrError("CidrBlockInUseException",
                                    f"CIDR block {net} is already in use by location {owner}")
                if net not in have:
                    have.append(net)
        elif action == "DELETE_IF_EXISTS":
            have = locations.get(location)
            if have is not None:
                locations[location] = [b for b in have if b not in nets]
                if not locations[location]:
                    del locations[location]
        else:
            raise CidrError("InvalidInput", f"1 validation error detected: Value '{action}' at "
                            "'action' failed to satisfy constraint: Member must satisfy enum value "
                            "set: [PUT, DELETE_IF_EXISTS]")
    return {**doc, "Locations": {k: sorted(v) for k, v in sorted(locations.items())}}


# --- XML ------------------------------------------------------------------------------------


def _children(elem: Element | None, name: str) -> list[Element]:
    if elem is None:
        return []
    return [c for c in elem if X._local(c.tag) == name]


def _text(elem: Element, name: str) -> str | None:
    got = _children(elem, name)
    return (got[0].text or "").strip() if got else None


def parse_create(body: bytes) -> tuple[str, str]:
    root = X.parse_xml(body)
    if X._local(root.tag) != "CreateCidrCollectionRequest":
        raise CidrError("InvalidInput", f"Invalid XML ; unexpected root element {X._local(root.tag)}")
    name, ref = _text(root, "Name"), _text(root, "CallerReference")
    if not name or not ref:
        raise CidrError("InvalidInput", "Invalid XML ; Name and CallerReference are required")
    return name, ref


def parse_change(body: bytes) -> tuple[int | None, list[tuple[str, str, list[str]]]]:
    root = X.parse_xml(body)
    if X._local(root.tag) != "ChangeCidrCollectionRequest":
        raise CidrError("InvalidInput", f"Invalid XML ; unexpected root element {X._local(root.tag)}")
    version_text = _text(root, "CollectionVersion")
    version = None
    if version_text is not None:
        if not version_text.isdigit() or int(version_text) < 1:
            raise CidrError("InvalidInput", f"CollectionVersion must be a positive integer, got {version_text!r}")
        version = int(version_text)
    changes = []
    for groups in _children(root, "Changes"):
        for item in groups:
            location, action = _text(item, "LocationName"), _text(item, "Action")
            if location is None or action is None:
                raise CidrError("InvalidInput", "Invalid XML ; each change needs LocationName, Action and CidrList")
            blocks = [(c.text or "").strip() for lst in _children(item, "CidrList") for c in lst]
            changes.append((action, location, blocks))
    return version, changes


def collection_xml(tag: str, cid: str, doc: dict[str, Any], version: int) -> str:
    return (f"<{tag}>" + X.element("Arn", arn(cid)) + X.element("Id", cid)
            + X.element("Name", doc.get("Name", "")) + X.element("Version", version) + f"</{tag}>")


def page(items: list[Any], query: dict[str, str]) -> tuple[list[Any], str | None]:
    """NextToken/MaxResults paging: the token is the offset of the next item."""
    raw_max = query.get("maxresults", "100")
    token = query.get("nexttoken", "0") or "0"
    if not raw_max.isdigit() or int(raw_max) < 1:
        raise CidrError("InvalidInput", f"MaxResults must be a positive integer, got {raw_max!r}")
    if not token.isdigit():
        raise CidrError("InvalidInput", f"Invalid NextToken {token!r}")
    start, n = int(token), min(int(raw_max), 1000)
    chunk = items[start:start + n]
    return chunk, (str(start + n) if start + n < len(items) else None)
