"""Rdata wire forms of the common record types, straight from canonical presentation text.

Pure core: no I/O, no dnspython objects. Building a dnspython rdata object costs tens of
microseconds (its tokenizer, a `Name` per domain name, the immutable-object machinery), which
made loading a million-name zone take minutes. The values a record set holds are already in
dnspython's canonical presentation form (`authd.model.records`, `authd.zonefiles.masterfile`), so for the
common types (A, AAAA, CNAME, NS, PTR, MX, SRV, SOA, TXT, CAA) the wire form (RFC 1035 §3.3,
§3.4.1; RFC 3596 §2.2; RFC 2782; RFC 8659 §4.1) follows from the text with a few splits.

`encode(rdtype, values)` gives the texts and wires dnspython's RRset would hold for those
values (duplicates dropped the way the RRset's set semantics drop them: by the canonical
wire form of RFC 4034 §6.2, names lower-cased), or None when any value is outside the plain
shapes this module takes (escapes, non-LDH names, relative names, odd spacing): the caller
then asks dnspython, which also raises on a malformed value. `tests/test_rdatawire.py` checks
every fast type against dnspython's `to_wire` and `to_text` on generated values.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Iterable

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, CAA = 1, 2, 5, 6, 12, 15, 16, 28, 33, 257
FAST_TYPES = frozenset({A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, CAA})
NAME_TYPES = frozenset({NS, CNAME, PTR})

# absolute names of LDH labels (and `_`, `*`): no escapes, so each label's text is its octets
# (RFC 1035 §2.3.1, widened as in authd.zonefiles.masterfile); the root alone is "."
_NAME = re.compile(r"(?:[A-Za-z0-9_*-]{1,63}\.)+|\.")
_UINT = re.compile(r"0|[1-9][0-9]{0,9}")  # canonical decimal: no leading zeros
_QUAD = {str(i): i for i in range(256)}  # dotted-quad octets as dnspython prints them
_TXT_STRING = re.compile(r'[ !#-\[\]-~]{0,255}')  # printable ASCII without `"` or `\`
_CAA_TAG = re.compile(r"[A-Za-z0-9]{1,255}")
_CAA_VALUE = re.compile(r'[ !#-\[\]-~]*')  # as a TXT string, without the 255-octet limit


def name_wire(text: str) -> bytes | None:
    """An absolute plain name's uncompressed wire form (case kept), or None."""
    if len(text) > 254 or not _NAME.fullmatch(text):
        return None
    if text == ".":
        return b"\x00"
    out = bytearray()
    for label in text[:-1].split("."):
        out.append(len(label))
        out += label.encode()
    out.append(0)
    return bytes(out)


def _uint(text: str, limit: int) -> int | None:
    if not _UINT.fullmatch(text):
        return None
    n = int(text)
    return n if n <= limit else None


_G = r"(?:[1-9a-f][0-9a-f]{0,3}|0)"  # one group as RFC 5952 §4.1 writes it
_AAAA_SHAPE = re.compile(rf"{_G}(?::{_G}){{7}}|(?:{_G}(?::{_G}){{0,6}})?::(?:{_G}(?::{_G}){{0,6}})?")
_WORDS = struct.Struct("!8H")


def _zero_run(groups: list[str]) -> int:
    """The longest run of zero groups."""
    best = run = 0
    for g in groups:
        run = run + 1 if g == "0" else 0
        best = max(best, run)
    return best


def aaaa_canonical(text: str) -> bytes | None:
    """The 16 octets of an IPv6 address already in its canonical text (RFC 5952 §4: lower
    case, no leading zeros, the longest run of two or more zero groups as `::`, the first
    of equal runs), which is what dnspython and `ipaddress` print; None for any other text
    (then the caller parses it the slow way). Addresses whose first 80 bits are zero are
    left alone: dnspython prints some of them with an embedded IPv4 address.

    One regular expression checks each group's spelling and that `::` comes at most once,
    and the zero-run rule is looked at only when a zero group is written out: a zone load
    reads hundreds of thousands of these."""
    if not _AAAA_SHAPE.fullmatch(text):
        return None
    head, sep, tail = text.partition("::")
    if sep:
        h = head.split(":") if head else []
        t = tail.split(":") if tail else []
        gap = 8 - len(h) - len(t)
        if gap < 2:
            return None
        if "0" in h or "0" in t:
            if (h and h[-1] == "0") or (t and t[0] == "0"):
                return None  # a zero group beside `::` belongs in it
            # in front of the compressed run, no run as long; after it, none longer
            if _zero_run(h) >= gap or _zero_run(t) > gap:
                return None
        groups = h + ["0"] * gap + t
    else:
        groups = text.split(":")
        if "0" in groups and _zero_run(groups) >= 2:
            return None  # a run of two or more zero groups is written as `::`
    words = [int(g, 16) for g in groups]
    if not any(words[:5]):
        return None
    return _WORDS.pack(*words)


def _aaaa(text: str) -> tuple[str, bytes] | None:
    packed = aaaa_canonical(text)
    if packed is not None:
        return text, packed
    if "." in text or "%" in text:
        return None
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    packed = addr.packed
    # dnspython prints addresses whose first 80 bits are zero with an embedded IPv4 address
    # (::ffff:a.b.c.d); those stay with it
    if not int.from_bytes(packed[:10], "big"):
        return None
    return addr.compressed, packed


def one(rdtype: int, text: str) -> tuple[str, bytes, bytes] | None:
    """(canonical text, wire, duplicate key) of one value, or None to leave it to dnspython."""
    if rdtype == A:
        parts = text.split(".")
        if len(parts) != 4:
            return None
        try:
            w = bytes([_QUAD[p] for p in parts])
        except KeyError:
            return None
        return text, w, w
    if rdtype == AAAA:
        got = _aaaa(text)
        return None if got is None else (got[0], got[1], got[1])
    if rdtype in NAME_TYPES:
        w = name_wire(text)
        return None if w is None else (text, w, w.lower())
    toks = text.split(" ")
    n = len(toks)
    if rdtype == MX:
        if n != 2:
            return None
        pref, w = _uint(toks[0], 0xFFFF), name_wire(toks[1])
        if pref is None or w is None:
            return None
        w = pref.to_bytes(2, "big") + w
        return text, w, w[:2] + w[2:].lower()
    if rdtype == SRV:
        if n != 4:
            return None
        nums = [_uint(t, 0xFFFF) for t in toks[:3]]
        w = name_wire(toks[3])
        if None in nums or w is None:
            return None
        head = b"".join(v.to_bytes(2, "big") for v in nums)  # type: ignore[union-attr]
        return text, head + w, head + w.lower()
    if rdtype == SOA:
        if n != 7:
            return None
        m, r = name_wire(toks[0]), name_wire(toks[1])
        nums = [_uint(t, 0xFFFFFFFF) for t in toks[2:]]
        if m is None or r is None or None in nums:
            return None
        tail = b"".join(v.to_bytes(4, "big") for v in nums)  # type: ignore[union-attr]
        return text, m + r + tail, m.lower() + r.lower() + tail
    if rdtype == TXT:
        # canonical text: each string quoted, one space between (dnspython's to_text)
        if len(text) < 2 or text[0] != '"' or text[-1] != '"':
            return None
        out = bytearray()
        for s in text[1:-1].split('" "'):
            if not _TXT_STRING.fullmatch(s):
                return None
            out.append(len(s))
            out += s.encode()
        w = bytes(out)
        return text, w, w
    if rdtype == CAA:
        if n < 3:
            return None
        flags = _uint(toks[0], 255)
        tag = toks[1]
        value = text[len(toks[0]) + len(tag) + 2:]
        if (flags is None or not _CAA_TAG.fullmatch(tag) or len(value) < 2 or value[0] != '"'
                or value[-1] != '"' or not _CAA_VALUE.fullmatch(value[1:-1])):
            return None
        w = bytes([flags, len(tag)]) + tag.encode() + value[1:-1].encode()
        return text, w, w
    return None


def encode(rdtype: int, values: Iterable[str]) -> tuple[tuple[str, ...], tuple[bytes, ...]] | None:
    """Texts and wires of a record set's values as dnspython's RRset holds them (first of
    each duplicate kept, in order), or None if any value needs dnspython."""
    texts: list[str] = []
    wires: list[bytes] = []
    seen: set[bytes] = set()
    for v in values:
        got = one(rdtype, v)
        if got is None:
            return None
        text, w, dup = got
        if rdtype in _SINGLETONS:
            # dnspython's RRset keeps only the last record of a singleton type (a second CNAME
            # replaces the first); the zone checks and the change API refuse such sets anyway
            texts, wires = [text], [w]
            continue
        if dup in seen:
            continue
        seen.add(dup)
        texts.append(text)
        wires.append(w)
    if not texts:
        return None
    return tuple(texts), tuple(wires)


_SINGLETONS = frozenset({CNAME, SOA})  # of the fast types, those `dns.rdatatype.is_singleton`
