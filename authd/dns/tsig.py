"""TSIG (RFC 8945) for zone transfers and NOTIFY: keys, verification and error responses.

Pure core over dnspython's TSIG implementation (HMAC per RFC 8945 §4): nothing here reads a
socket. `authd serve --tsig-key NAME:ALGORITHM:SECRET` (or `--tsig-keyfile FILE` with BIND's
`key "NAME" { algorithm ...; secret "..."; };` blocks, as `tsig-keygen` and Knot's `keymgr -t`
print them) fills a `Keyring`.

`verify(wire, keyring)` parses a signed query and says how it went, as RFC 8945 §5.2 asks:
- an unknown key: NOTAUTH, TSIG error BADKEY, the response unsigned (§5.2.1);
- a bad MAC: NOTAUTH, BADSIG, unsigned (§5.2.2);
- a time outside the fudge: NOTAUTH, BADTIME, signed, with our time in Other Data (§5.2.3).
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.tsig

ALGORITHMS = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-md5": dns.tsig.HMAC_MD5,
}
BADSIG, BADKEY, BADTIME = 16, 17, 18  # RFC 8945 §4.5 TSIG error codes


class KeyError_(ValueError):  # noqa: N801 - not the builtin KeyError
    """A key definition that cannot be used; the message names the flag or file line."""


Keyring = dict[dns.name.Name, dns.tsig.Key]


def parse_key(text: str) -> dns.tsig.Key:
    """`NAME:ALGORITHM:BASE64SECRET` or `NAME:BASE64SECRET` (hmac-sha256)."""
    parts = text.split(":")
    if len(parts) == 2:
        name, alg, secret = parts[0], "hmac-sha256", parts[1]
    elif len(parts) == 3:
        name, alg, secret = parts
    else:
        raise KeyError_(f"--tsig-key {text!r}: expected NAME:ALGORITHM:SECRET")
    return _key(name, alg, secret, f"--tsig-key {name!r}")


def _key(name: str, alg: str, secret: str, where: str) -> dns.tsig.Key:
    algorithm = ALGORITHMS.get(alg.lower().rstrip("."))
    if algorithm is None:
        raise KeyError_(f"{where}: unknown algorithm {alg!r} (have: {', '.join(ALGORITHMS)})")
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyError_(f"{where}: the secret is not base64") from exc
    if not raw:
        raise KeyError_(f"{where}: the secret is empty")
    try:
        keyname = dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise KeyError_(f"{where}: bad key name {name!r}: {exc}") from exc
    return dns.tsig.Key(keyname, raw, algorithm)


_BLOCK = re.compile(
    r'key\s+"?(?P<name>[^"\s{]+)"?\s*\{(?P<body>[^}]*)\}\s*;', re.S
)


def parse_keyfile(path: str | Path) -> list[dns.tsig.Key]:
    """BIND-style key blocks. Raises KeyError_ naming the file and the line of a bad block."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise KeyError_(f"{p}: cannot read: {exc}") from exc
    keys = []
    for m in _BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        alg = re.search(r"algorithm\s+\"?([\w.-]+)\"?\s*;", m["body"])
        secret = re.search(r'secret\s+"([^"]+)"\s*;', m["body"])
        if alg is None or secret is None:
            raise KeyError_(f"{p}:{line}: key {m['name']!r} needs an algorithm and a secret")
        keys.append(_key(m["name"], alg[1], secret[1], f"{p}:{line}"))
    if not keys:
        raise KeyError_(f"{p}: no key blocks found")
    return keys


def keyring(keys: list[dns.tsig.Key]) -> Keyring:
    return {k.name: k for k in keys}


class Verdict(enum.Enum):
    UNSIGNED = "unsigned"  # no TSIG in the message
    VALID = "valid"
    BADKEY = "badkey"
    BADSIG = "badsig"
    BADTIME = "badtime"
    FORMERR = "formerr"  # the message (or its TSIG) cannot be parsed


@dataclass
class Checked:
    verdict: Verdict
    message: dns.message.Message | None  # parsed (verified when VALID)
    keyname: dns.name.Name | None = None


def has_tsig(wire: bytes) -> bool:
    """A cheap test that a message may end in a TSIG RR (type 250, class ANY): signed
    messages take the careful path, the rest never pay for parsing."""
    return len(wire) > 12 and wire[10:12] != b"\x00\x00" and b"\x00\xfa\x00\xff" in wire


def verify(wire: bytes, ring: Keyring) -> Checked:
    """Parse and verify a message's TSIG (RFC 8945 §5.2)."""
    try:
        return Checked(Verdict.VALID if has_tsig(wire) else Verdict.UNSIGNED,
                       dns.message.from_wire(wire, keyring=ring or {}))  # {}: no key is known
    except dns.message.UnknownTSIGKey:
        verdict = Verdict.BADKEY
    except dns.tsig.BadTime:
        verdict = Verdict.BADTIME
    except (dns.tsig.BadSignature, dns.tsig.PeerBadSignature):
        verdict = Verdict.BADSIG
    except dns.exception.DNSException:
        return Checked(Verdict.FORMERR, None)
    try:
        msg = dns.message.from_wire(wire, keyring=False)  # parsed, not verified
    except dns.exception.DNSException:
        return Checked(Verdict.FORMERR, None)
    return Checked(verdict, msg, msg.keyname)


def error_response(checked: Checked, ring: Keyring, now: int) -> bytes:
    """NOTAUTH with the TSIG error (RFC 8945 §5.2). BADKEY and BADSIG replies carry an
    unsigned TSIG RR (empty MAC); a BADTIME reply is signed and gives our time (§5.2.3)."""
    query = checked.message
    assert query is not None and query.tsig
    resp = dns.message.make_response(query)
    resp.set_rcode(dns.rcode.NOTAUTH)
    rd = query.tsig[0]
    if checked.verdict is Verdict.BADTIME and query.keyname in ring:
        resp.use_tsig(ring, keyname=query.keyname, tsig_error=BADTIME, original_id=query.id,
                      other_data=now.to_bytes(6, "big"), algorithm=rd.algorithm)
        resp.request_mac = query.mac
        return resp.to_wire()
    code = BADKEY if checked.verdict is Verdict.BADKEY else BADSIG
    body = resp.to_wire()
    owner = (query.keyname or dns.name.root).to_wire()
    rdata = (rd.algorithm.to_wire() + now.to_bytes(6, "big") + rd.fudge.to_bytes(2, "big")
             + b"\x00\x00" + query.id.to_bytes(2, "big") + code.to_bytes(2, "big") + b"\x00\x00")
    tsig_rr = owner + b"\x00\xfa\x00\xff\x00\x00\x00\x00" + len(rdata).to_bytes(2, "big") + rdata
    arcount = int.from_bytes(body[10:12], "big") + 1
    return body[:10] + arcount.to_bytes(2, "big") + body[12:] + tsig_rr


def sign_response(resp: dns.message.Message, query: dns.message.Message, ring: Keyring) -> None:
    """Make `resp` signed with the query's key, over the query's MAC (RFC 8945 §5.3)."""
    resp.use_tsig(ring, keyname=query.keyname, original_id=query.id,
                  algorithm=query.tsig[0].algorithm)
    resp.request_mac = query.mac
