"""A signed query to a server with no TSIG keys (the default) gets NOTAUTH/BADKEY.

RFC 8945 §5.2.1: a key the server does not know is BADKEY. With no keyring, `tsig.verify`
used to skip verification (`keyring=False`), call the query VALID, and then fail to sign the
answer with a key it lacked: authd logged a KeyError and sent nothing (found by
tests/test_fastudp.py's differential run, which sends such a query).
"""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.tsigkeyring

from authd.dns import tsig
from authd.dns.xfr import TransferService


def test_a_signed_query_without_keys_configured_gets_badkey() -> None:
    svc = TransferService(None, lambda wire, tcp: None, keyring=None)
    q = dns.message.make_query("www.example.test.", "A")
    q.use_tsig(dns.tsigkeyring.from_text({"stranger.": "c2VjcmV0c2VjcmV0c2VjcmV0"}),
               keyname="stranger.")
    assert svc.wants(q.to_wire())
    (wire,) = svc.respond(q.to_wire(), "127.0.0.1", tcp=False, now=1_700_000_000)
    r = dns.message.from_wire(wire, keyring=False)
    assert r.rcode() == dns.rcode.NOTAUTH and r.tsig[0].error == tsig.BADKEY
