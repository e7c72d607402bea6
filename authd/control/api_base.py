"""What the newer Route 53 operations share: their error type and strict XML request reading.

Pure core. `ApiError` is a `StoreError`, so the control API's one error path turns it into
Route 53's ErrorResponse with `code` and HTTP 400 (404 where `authd.control.app.STATUS` says so).
`read_request` refuses every element a request holds that the operation does not define,
naming it (issue 11 section 4: nothing silently dropped), and gives leaves as text and
repeated children as lists, in document order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from xml.etree.ElementTree import Element

from authd.control.r53xml import _local, parse_xml
from authd.store.contract import StoreError

Response = tuple[int, bytes, list[tuple[bytes, bytes]]]


class ApiError(StoreError):
    """A refused request: Route 53's error `code` and its message(s)."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.messages = (message,)
        super().__init__(message)


def invalid(message: str) -> ApiError:
    return ApiError("InvalidInput", message)


# A request grammar: element name -> None for a text leaf, a nested grammar for a structure,
# or ("list", item name, item grammar-or-None, max items) for a list.
Grammar = Mapping[str, Any]


def read_request(body: bytes, root: str, grammar: Grammar) -> dict[str, Any]:
    """Parse `body` (root element `root`) against `grammar`; unknown elements are refused."""
    elem = parse_xml(body)
    if _local(elem.tag) != root:
        raise invalid(f"Invalid XML ; expected root element {root}, got {_local(elem.tag)}")
    return _read(elem, grammar, root)


def _read(elem: Element, grammar: Grammar, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in elem:
        name = _local(child.tag)
        if name not in grammar:
            raise invalid(f"Invalid XML ; authd does not implement element {name} in {where}")
        if name in out:
            raise invalid(f"Invalid XML ; element {name} appears more than once in {where}")
        spec = grammar[name]
        if spec is None:
            if len(child):
                raise invalid(f"Invalid XML ; element {name} must hold text only")
            out[name] = (child.text or "").strip()
        elif isinstance(spec, tuple):
            _, item, item_spec, most = spec
            items: list[Any] = []
            for sub in child:
                sub_name = _local(sub.tag)
                if sub_name != item:
                    raise invalid(f"Invalid XML ; authd does not implement element {sub_name} in {name}")
                items.append((sub.text or "").strip() if item_spec is None else _read(sub, item_spec, item))
            if len(items) > most:
                # the XML schema's words, as Route 53 returns them
                raise invalid(
                    f"Invalid XML ; cvc-complex-type.2.4.f: '{item}' can occur a maximum of '{most}' "
                    "times in the current sequence. This limit was exceeded. No child element is "
                    "expected at this point."
                )
            out[name] = items
        else:
            out[name] = _read(child, spec, name)
    return out


def require(doc: Mapping[str, Any], names: Sequence[str], where: str) -> None:
    for name in names:
        if not doc.get(name):
            raise invalid(f"Invalid XML ; {name} is required in {where}")
