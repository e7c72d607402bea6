"""Record values validated as Route 53 validates them, with Route 53's words.

Pure core. `records.canonical_value` parses a value with dnspython's master-file tokenizer,
which is made for zone files, not for one value: it ends the rdata at a `;` (a comment), at
a line break, and joins lines inside `( )`. So `192.0.2.1 ; x` and `192.0.2.1\\n garbage`
would be stored as `192.0.2.1`, silently. Route 53 refuses them (issue 11 section 4), and so
does `check_value`, before dnspython sees the text: no raw control character anywhere, no
`;`, `(` or `)` outside a quoted string, quotes balanced; TXT and SPF values are either one
bare word or quoted strings separated by spaces. `illegal` words dnspython's own refusals.

Messages have Route 53's shape, `FATAL problem: CODE (reason) encountered with 'value'`,
which `r53xml` wraps as `Invalid Resource Record: '...'`. These codes are Route 53's own,
seen in its responses: ARRDATAIllegalIPv4Address, ARRDATANotSingleField (an A value with a
space in it), AAAARRDATAIllegalIPv6Address, InvalidCharacterString, CharacterStringTooLong,
DomainLabelEmpty. For the other types Route 53's exact code is not public; authd says
`<TYPE>RRDATAIllegal...` with a reason naming the fields the type needs.
"""

from __future__ import annotations

import re

# (code, reason) when a value of this type cannot be parsed
_ILLEGAL: dict[str, tuple[str, str]] = {
    "A": ("ARRDATAIllegalIPv4Address", "Value is not a valid IPv4 address"),
    "AAAA": ("AAAARRDATAIllegalIPv6Address", "Value is not a valid IPv6 address"),
    "TXT": ("InvalidCharacterString", "Value should be enclosed in quotation marks"),
    "SPF": ("InvalidCharacterString", "Value should be enclosed in quotation marks"),
    "CNAME": ("CNAMERRDATAIllegalDomainName", "Value is not a valid domain name"),
    "NS": ("NSRRDATAIllegalDomainName", "Value is not a valid domain name"),
    "PTR": ("PTRRRDATAIllegalDomainName", "Value is not a valid domain name"),
    "MX": ("MXRRDATAIllegalValue", "Value should be a preference 0-65535 and a mail server name"),
    "SRV": ("SRVRRDATAIllegalValue", "Value should be priority, weight, port and a target name"),
    "CAA": ("CAARRDATAIllegalValue", "Value should be flags 0-255, a tag and a quoted value"),
    "NAPTR": ("NAPTRRRDATAIllegalValue",
              "Value should be order, preference, quoted flags, service and regexp, and a replacement"),
    "DS": ("DSRRDATAIllegalValue", "Value should be key tag, algorithm, digest type and a hexadecimal digest"),
}
_NAME_TYPES = frozenset({"CNAME", "NS", "PTR", "MX", "SRV", "NAPTR"})

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_TXT_QUOTED = re.compile(rf"{_QUOTED}(?:[ ]+{_QUOTED})*")
_TXT_BARE = re.compile(r'[^\s"]+')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def fatal(rtype: str, text: str, code: str | None = None, reason: str | None = None) -> str:
    """Route 53's problem text for a value of `rtype` it refuses."""
    default = _ILLEGAL.get(rtype, (f"{rtype}RRDATAIllegalValue", f"Value is not a valid {rtype} record"))
    return f"FATAL problem: {code or default[0]} ({reason or default[1]}) encountered with '{text}'"


def _unquoted_syntax(text: str) -> bool:
    """True if `text` has a `;`, `(` or `)` outside quotes, or an unclosed quote: master-file
    syntax (comments, line grouping) that has no place in one API value."""
    quoted = False
    i, end = 0, len(text)
    while i < end:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif not quoted and c in ";()":
            return True
        i += 1
    return quoted


def check_value(rtype: str, text: str) -> str | None:
    """None if dnspython may parse `text` as one `rtype` value, else Route 53's problem text."""
    if _CONTROL.search(text):
        if rtype == "A" and text.split() != [text]:
            return fatal(rtype, text, "ARRDATANotSingleField", "Value contains spaces")
        return fatal(rtype, text)
    if rtype == "A" and " " in text:
        return fatal(rtype, text, "ARRDATANotSingleField", "Value contains spaces")
    if rtype in ("TXT", "SPF"):
        if not (_TXT_QUOTED.fullmatch(text) or _TXT_BARE.fullmatch(text)):
            return fatal(rtype, text)
        return None
    if _unquoted_syntax(text):
        return fatal(rtype, text)
    return None


def illegal(rtype: str, text: str, error: Exception) -> str:
    """Route 53's problem text for a value dnspython refused with `error`."""
    reason = str(error)
    if rtype in ("TXT", "SPF") and "too long" in reason:
        return fatal(rtype, text, "CharacterStringTooLong", "Value is too long")
    if rtype in _NAME_TYPES:
        if "label is empty" in reason:
            return fatal(rtype, text, "DomainLabelEmpty", "Domain label is empty")
        if "label is too long" in reason.lower() or "name is too long" in reason.lower():
            return fatal(rtype, text, "DomainNameTooLong", reason.rstrip("."))
    return fatal(rtype, text)
