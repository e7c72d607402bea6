"""A fast, line-aware reader of RFC 1035 master files (RFC 1035 §5.1, RFC 2308 §4 `$TTL`).

Pure core: text in, records out. It exists for two reasons. dnspython's zone reader costs
tens of microseconds per record, which makes a million-name zone take minutes; and it keeps no
line numbers, which every zone-level error message needs (`file:line: reason`, as Knot and NSD
print them).

The reader turns each line into `MasterRecord(line, owner, ttl, rtype, value)` with the owner
absolute and lower-case and the value in dnspython's canonical presentation form (absolute
names), so `RecordSet` accepts it unchanged. Common lines take a fast path: `str.split`, a
regular expression for plain names, and per-type canonicalisation for A, AAAA, NS, CNAME, PTR,
MX, SRV, TXT, CAA and SOA. Anything else (other types, quoted strings with escapes, escaped
names, TTLs with units inside rdata) is handed to dnspython's rdata parser, one record at a
time, with the line number kept. `tests/test_masterfile.py` checks the result against
dnspython's own zone reader on generated files.

`$INCLUDE` and `$GENERATE` are not read here: `NeedsFullReader` tells the caller to use
dnspython's reader for that file.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.ttl

from authd.dns.rdatawire import aaaa_canonical


@dataclass(frozen=True, slots=True)
class MasterRecord:
    line: int  # 1-based line of the record's first token
    owner: str  # absolute, lower-case presentation form
    ttl: int
    rtype: str  # mnemonic, upper-case ("A", "TYPE65534" for unknown ones)
    value: str  # canonical presentation form, absolute names


class MasterFileError(ValueError):
    """A line that cannot be read. `line` is 1-based; `str()` is the reason alone."""

    def __init__(self, line: int, reason: str):
        self.line, self.reason = line, reason
        super().__init__(reason)


class NeedsFullReader(Exception):
    """The file uses a directive this reader leaves to dnspython ($INCLUDE, $GENERATE)."""


# RFC 1035 §2.3.1 "preferred name syntax", widened to '_' (SRV, DKIM) and '*' as a whole first
# label (RFC 4592): such names need no escapes, so their canonical text is their lower case.
_PLAIN = re.compile(r"(?:\*\.)?(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?|\*\.?")
_QUAD = re.compile(
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
)
_UINT = re.compile(r"[0-9]{1,10}")
_CLASSES = {"IN", "CH", "CS", "HS", "NONE", "ANY"}
_SPECIAL = frozenset('"();\\')
_TXT_SAFE = re.compile(r'"[ !#-\[\]-~]*"')  # printable ASCII, no quote or backslash inside
_CAA_TAG = re.compile(r"[A-Za-z0-9]{1,255}")
_TYPES: dict[str, str] = {}  # type token as written -> mnemonic
_DIGITS = frozenset("0123456789")
_OCTET = {str(i): i for i in range(256)}  # the canonical decimal spellings of an octet


def _is_ttl(tok: str) -> bool:
    if tok.isdigit():
        return True
    if tok[0].isdigit() and tok[-1].lower() in "smhdw":
        try:
            dns.ttl.from_text(tok)
        except dns.exception.DNSException:
            return False
        return True
    return False


def _ttl(tok: str, line: int) -> int:
    try:
        return int(tok) if tok.isdigit() and len(tok) <= 10 else dns.ttl.from_text(tok)
    except dns.exception.DNSException as exc:
        raise MasterFileError(line, f"invalid TTL {tok!r}: {exc}") from exc


class _Names:
    """Relative-to-absolute name conversion for one $ORIGIN, cached per distinct text.

    Owners come out lower-case (RecordSet's canonical form); names inside rdata keep their case,
    the origin's included, as dnspython's to_text keeps it."""

    def __init__(self, origin: str):
        self.origin = origin  # absolute, case as written
        self.origin_name = dns.name.from_text(origin)
        self._cache: dict[str, str] = {}
        self._keep: dict[str, str] = {}

    def owner(self, tok: str, line: int) -> str:
        got = self._cache.get(tok)
        if got is None:
            got = self._convert(tok, line).lower() if "\\" not in tok else \
                dns.name.from_text(self._convert(tok, line)).canonicalize().to_text()
            if len(self._cache) < 1 << 16:  # owners rarely repeat far apart
                self._cache[tok] = got
        return got

    def target(self, tok: str, line: int) -> str:
        """A name inside rdata: absolute, case kept."""
        got = self._keep.get(tok)
        if got is None:
            got = self._convert(tok, line)
            if len(self._keep) < 1 << 16:
                self._keep[tok] = got
        return got

    def _convert(self, tok: str, line: int) -> str:
        if tok == "@":
            return self.origin
        if len(tok) <= 253 and _PLAIN.fullmatch(tok):
            if tok.endswith("."):
                return tok
            if len(tok) + len(self.origin) <= 254:
                return tok + "." + ("" if self.origin == "." else self.origin)
        try:
            name = dns.name.from_text(tok, self.origin_name)
        except dns.exception.DNSException as exc:
            raise MasterFileError(line, f"invalid name {tok!r}: {exc}") from exc
        return name.to_text()


def _fast_value(rtype: str, toks: list[str], names: _Names, line: int) -> str | None:
    """The canonical value for the common types when every token is simple, else None."""
    n = len(toks)
    if rtype == "A":
        return toks[0] if n == 1 and _QUAD.fullmatch(toks[0]) else None
    if rtype == "AAAA":
        if n != 1 or "." in toks[0] or "%" in toks[0]:
            return None
        if aaaa_canonical(toks[0]) is not None:
            return toks[0]  # written as dnspython prints it: nothing to convert
        try:
            addr = ipaddress.IPv6Address(toks[0])
        except ValueError:
            return None
        # addresses whose first 80 bits are zero may print with an embedded IPv4 address
        # (::ffff:a.b.c.d, ::a.b.c.d): dnspython decides those
        return addr.compressed if int(addr) >> 48 else None
    if rtype in ("CNAME", "NS", "PTR", "DNAME"):
        return names.target(toks[0], line) if n == 1 else None
    if rtype == "MX":
        if n == 2 and _UINT.fullmatch(toks[0]) and int(toks[0]) <= 0xFFFF:
            return f"{int(toks[0])} {names.target(toks[1], line)}"
        return None
    if rtype == "SRV":
        if n == 4 and all(_UINT.fullmatch(t) and int(t) <= 0xFFFF for t in toks[:3]):
            return f"{int(toks[0])} {int(toks[1])} {int(toks[2])} {names.target(toks[3], line)}"
        return None
    if rtype == "SOA":
        if n == 7 and all(_UINT.fullmatch(t) and int(t) <= 0xFFFFFFFF for t in toks[2:]):
            nums = " ".join(str(int(t)) for t in toks[2:])
            return f"{names.target(toks[0], line)} {names.target(toks[1], line)} {nums}"
        return None
    if rtype in ("TXT", "SPF"):
        out = []
        for t in toks:
            if t.startswith('"'):
                if not _TXT_SAFE.fullmatch(t) or len(t) > 257:
                    return None
                out.append(t)
            elif _SPECIAL.isdisjoint(t) and t.isprintable() and t.isascii() and len(t) <= 255:
                out.append(f'"{t}"')
            else:
                return None
        return " ".join(out) if out else None
    if rtype == "CAA":
        if (n == 3 and _UINT.fullmatch(toks[0]) and int(toks[0]) <= 255
                and _CAA_TAG.fullmatch(toks[1]) and _TXT_SAFE.fullmatch(toks[2])):
            return f"{int(toks[0])} {toks[1]} {toks[2]}"
        return None
    return None


def fast_canonical_value(rtype: str, text: str) -> str | None:
    """A value's canonical form when it is plainly well-formed (names relative to the root),
    else None and the caller asks dnspython. `authd.model.records.canonical_value` uses it, so the
    change API's 1,000-change batches and zone loading share the same fast path."""
    if _SPECIAL.isdisjoint(text) or rtype in ("TXT", "SPF", "CAA"):
        toks = text.split()
        if toks and (" ".join(toks) == text):  # one space between tokens, nothing odd
            try:
                return _fast_value(rtype, toks, _ROOT, 0)
            except MasterFileError:
                return None
    return None


def _slow_value(rtype: str, text: str, names: _Names, line: int) -> str:
    try:
        rdtype = dns.rdatatype.from_text(rtype)
        rd = dns.rdata.from_text(
            dns.rdataclass.IN, rdtype, text, origin=names.origin_name, relativize=False
        )
    except dns.exception.DNSException as exc:
        raise MasterFileError(line, f"invalid {rtype} record data {text!r}: {exc}") from exc
    return rd.to_text()


_ROOT = _Names(".")


def _joined(lines: list[str], i: int, raw: str, start: int) -> tuple[str, int]:
    """`raw` (line `start`) joined with the lines from `i` on until its parentheses balance,
    counting only those outside quotes and comments; and the index of the line after."""
    parts = [raw]
    depth = _paren_depth(raw)
    total = len(lines)
    while depth > 0 and i < total:
        parts.append(lines[i])
        depth += _paren_depth(lines[i])
        i += 1
    if depth != 0:
        raise MasterFileError(start, "unbalanced parentheses")
    return "\n".join(parts), i


def _paren_depth(line: str) -> int:
    depth, quoted, esc = 0, False, False
    for ch in line:
        if esc:
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == ";":
            break
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
    return depth


def _careful_tokens(line: str) -> list[str]:
    """Tokens of a line with quotes, escapes, parentheses or comments: quoted strings keep
    their quotes (and escapes) so they can be handed on as presentation text."""
    toks: list[str] = []
    cur: list[str] = []
    quoted = esc = comment = False
    for ch in line:
        if comment:  # a comment runs to the end of its physical line
            comment = ch != "\n"
        elif esc:
            cur.append(ch)
            esc = False
        elif ch == "\\":
            cur.append(ch)
            esc = True
        elif quoted:
            cur.append(ch)
            if ch == '"':
                quoted = False
        elif ch == '"':
            cur.append(ch)
            quoted = True
        elif ch == ";":
            comment = True
            if cur:
                toks.append("".join(cur))
                cur = []
        elif ch in " \t\r\n()":
            if cur:
                toks.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if quoted:
        raise ValueError("unterminated quoted string")
    if cur:
        toks.append("".join(cur))
    return toks


def read_master(text: str, origin: str) -> Iterator[MasterRecord]:
    """Every record of a master file, in file order.

    Args:
        text: the file's contents.
        origin: the zone's origin (absolute), the initial $ORIGIN.
    Raises:
        MasterFileError: with the line and the reason.
        NeedsFullReader: for $INCLUDE and $GENERATE.
    """
    for t in read_tuples(text, origin):
        yield MasterRecord(*t)


def read_tuples(text: str, origin: str) -> Iterator[tuple[int, str, int, str, str]]:
    """`read_master`'s records as plain (line, owner, ttl, type, value) tuples: a zone load
    makes a million of them, and a tuple costs a fraction of a dataclass."""
    for t in read_wired(text, origin):
        yield t[:5]


def read_wired(text: str, origin: str) -> Iterator[tuple[int, str, int, str, str, bytes | None]]:
    """`read_tuples` with a sixth field: an A or AAAA value's rdata wire form (RFC 1035
    §3.4.1, RFC 3596 §2.2) when the fast path read it, else None. The address is parsed here
    once, so a zone build (`authd.zonefiles.fastbuild`) does not parse it again."""
    names = _Names(dns.name.from_text(origin).to_text())
    default_ttl: int | None = None
    last_ttl: int | None = None
    owner: str | None = None
    last_first = ""  # the owner token of the last line that had one
    # logical lines: parentheses join physical lines (RFC 1035 §5.1); a line with a quote, a
    # backslash or a parenthesis takes the careful tokenizer. Read inline: a generator's step
    # per line cost a tenth of a million-line read
    lines = text.split("\n")
    total = len(lines)
    at = 0  # the next physical line's index (`i` is a token's, below)
    while at < total:
        body = lines[at]
        at += 1
        line = at
        if _SPECIAL.isdisjoint(body):
            toks = body.split()
        else:
            if "(" in body or ")" in body:
                body, at = _joined(lines, at, body, line)
            try:
                toks = _careful_tokens(body)
            except ValueError as exc:
                raise MasterFileError(line, str(exc)) from exc
        if not toks:
            continue
        first = toks[0]
        if first[0] == "$":
            directive = first.upper()
            if directive == "$ORIGIN" and len(toks) >= 2:
                names = _Names(names.target(toks[1], line))  # relative to the current origin
                last_first = ""  # the same token now names another owner
            elif directive == "$TTL" and len(toks) >= 2:
                default_ttl = _ttl(toks[1], line)
            elif directive in ("$INCLUDE", "$GENERATE"):
                raise NeedsFullReader(directive)
            else:
                raise MasterFileError(line, f"unknown or incomplete directive {body.strip()!r}")
            continue
        if body[0] in " \t":  # no owner: the previous one (RFC 1035 §5.1)
            if owner is None:
                raise MasterFileError(line, "a record with no owner name before any owner")
            i = 0
        else:
            if first != last_first:  # else the usual repeat: another record of the same owner
                owner = names.owner(first, line)
                last_first = first
            i = 1
        ttl: int | None = None
        n = len(toks)
        # [TTL] [class] type, with TTL and class in either order (RFC 2308 §4 allows both)
        for _ in range(2):
            if i >= n:
                break
            tok = toks[i]
            if tok == "IN":  # the usual spelling, first
                i += 1
            elif ttl is None and tok[0] in _DIGITS and _is_ttl(tok):
                ttl = _ttl(tok, line)
                i += 1
            elif tok.upper() in _CLASSES:
                if tok.upper() != "IN":
                    raise MasterFileError(line, f"only class IN is served, not {tok.upper()}")
                i += 1
            else:
                break
        if i >= n:
            raise MasterFileError(line, "missing record type")
        rtype = _TYPES.get(toks[i])
        if rtype is None:
            try:
                rtype = dns.rdatatype.to_text(dns.rdatatype.from_text(toks[i].upper()))
            except dns.exception.DNSException as exc:
                raise MasterFileError(line, f"unknown record type {toks[i]!r}") from exc
            if len(_TYPES) < 1024:
                _TYPES[toks[i]] = rtype
        rdata = toks[i + 1:]
        if not rdata:
            raise MasterFileError(line, f"{rtype} record with no data")
        if ttl is None:
            # RFC 2308 §4: $TTL; before it (RFC 1035 §5.1) the last TTL given; an SOA with
            # neither takes its MINIMUM, as dnspython does
            if default_ttl is not None:
                ttl = default_ttl
            elif last_ttl is not None:
                ttl = last_ttl
            elif rtype == "SOA" and len(rdata) == 7 and rdata[6].isdigit():
                ttl = int(rdata[6])
            else:
                raise MasterFileError(line, "no TTL given and no $TTL before it")
        last_ttl = ttl
        wire: bytes | None = None
        if rtype == "A" and len(rdata) == 1:
            # dotted quad: exactly the canonical decimal octets (`_QUAD`'s spellings)
            value = rdata[0]
            parts = value.split(".")
            if len(parts) == 4:
                octets = [_OCTET.get(p) for p in parts]
                if None not in octets:
                    wire = bytes(octets)  # type: ignore[arg-type]
        elif rtype == "AAAA" and len(rdata) == 1:
            value = rdata[0]
            wire = aaaa_canonical(value)  # written as dnspython prints it
        if wire is None:
            value = _fast_value(rtype, rdata, names, line)  # type: ignore[assignment]
            if value is None:
                value = _slow_value(rtype, " ".join(rdata), names, line)
        yield line, owner, ttl, rtype, value, wire


def tokenizer_reference(text: str, origin: str) -> list[tuple[str, int, str, str]]:
    """dnspython's reading of the same text, as (owner, ttl, type, value) in canonical form.

    For tests: the reference the fast reader is checked against."""
    import dns.zone

    zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
    out = []
    for name, node in zone.nodes.items():
        for rds in node.rdatasets:
            for rd in rds:
                out.append((name.canonicalize().to_text(), rds.ttl, dns.rdatatype.to_text(rds.rdtype),
                            rd.to_text()))
    return out

