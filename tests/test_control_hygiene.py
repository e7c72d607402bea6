"""Change-API input hygiene (issue 10, change-API parts; issue 11 section 4).

Each reproducer from the issues is a test here that failed on the code before the fix:
nested XML (a 500 with a RecursionError), a forged log line from `%0A` in a path, a body
swapped under an `UNSIGNED-PAYLOAD` signature, `%2F` routed as `/`, double-escaped names,
values silently cut at `;` or a newline, and request elements silently dropped.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
from botocore import serialize
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import get_session
from hypothesis import given, settings
from hypothesis import strategies as st

from authd.cli.main import main
from authd.control import r53xml as X
from authd.control.app import ControlAPI
from authd.control.r53xml import split_messages
from authd.logsafe import SafeFormatter, escape_controls, setup_logging
from authd.store.memstore import MemoryStore
from authd.store.sqlstore import SQLiteStore
from authd.zonefiles.seed import seed_store
from authd.zonefiles.zonefile import load_zone_dir
from tests.control_helpers import client, running

ROOT = Path(__file__).resolve().parent.parent
ZONES = ROOT / "zones"
API = "/2013-04-01"


@pytest.fixture
def api():
    store = MemoryStore()
    seed_store(store, load_zone_dir(ZONES))
    with running(ControlAPI(store)) as url:
        yield url, client(url), store


def signed(url: str, method: str, path: str, body: bytes = b"", auth: type[SigV4Auth] = SigV4Auth,
           headers: dict[str, str] | None = None) -> httpx.Response:
    req = AWSRequest(method=method, url=url + path, data=body, headers={"Content-Type": "text/xml", **(headers or {})})
    auth(Credentials("test", "test"), "route53", "us-east-1").add_auth(req)
    return httpx.request(method, url + path, content=body, headers=dict(req.headers))


def error_of(resp: httpx.Response) -> tuple[int, str, str]:
    from xml.etree import ElementTree as ET

    root = ET.fromstring(resp.content)
    ns = {"r": X.NS}
    return resp.status_code, root.findtext("r:Error/r:Code", namespaces=ns), root.findtext("r:Error/r:Message", namespaces=ns)


def rrset(name: str, value: str = "192.0.2.1", rtype: str = "A") -> dict[str, Any]:
    return {"Name": name, "Type": rtype, "TTL": 60, "ResourceRecords": [{"Value": value}]}


def change(action: str, rrs: dict[str, Any]) -> dict[str, Any]:
    return {"Changes": [{"Action": action, "ResourceRecordSet": rrs}]}


def names_in(store: MemoryStore) -> set[str]:
    return {rs.name for rs in store.record_sets("Z0API0AWS")}


# --- 1. XML depth and size --------------------------------------------------------------------


def _nested(levels: int) -> bytes:
    return (f'<ChangeResourceRecordSetsRequest xmlns="{X.NS}"><ChangeBatch>'.encode() + b"<a>" * levels
            + b"</a>" * levels + b"</ChangeBatch></ChangeResourceRecordSetsRequest>")


def test_nested_xml_is_a_400_invalid_input_not_a_500(api):
    url, _, store = api
    before = names_in(store)
    for path, body in [
        (f"{API}/hostedzone/Z0API0AWS/rrset", _nested(1000)),
        (f"{API}/hostedzone", f'<CreateHostedZoneRequest xmlns="{X.NS}">'.encode() + b"<x>" * 1000
         + b"</x>" * 1000 + b"</CreateHostedZoneRequest>"),
        (f"{API}/hostedzone/Z0API0AWS", f'<UpdateHostedZoneCommentRequest xmlns="{X.NS}"><Comment>'.encode()
         + b"<c>" * 5000 + b"</c>" * 5000 + b"</Comment></UpdateHostedZoneCommentRequest>"),
    ]:
        status, code, message = error_of(signed(url, "POST", path, body))
        assert (status, code) == (400, "InvalidInput"), message
        assert "RecursionError" not in message
    assert names_in(store) == before


def test_the_body_cap_is_invalid_input_too(tmp_path):
    store = MemoryStore()
    seed_store(store, load_zone_dir(ZONES))
    with running(ControlAPI(store, max_body=10_000)) as url:
        declared = httpx.post(f"{url}{API}/hostedzone/Z0API0AWS/rrset", content=b"<" * 20_000)
        streamed = httpx.post(f"{url}{API}/hostedzone/Z0API0AWS/rrset",
                              content=(b"<" * 4096 for _ in range(5)))  # chunked: no Content-Length
    for resp in (declared, streamed):
        status, code, message = error_of(resp)
        assert (status, code) == (400, "InvalidInput") and "exceeds the limit of 10000 bytes" in message


async def test_a_body_that_stalls_is_answered_at_the_deadline(autojump_clock):
    """A client that sends half a body and goes quiet gets RequestTimeout (400) once
    `body_deadline` has passed, and the request never reaches the store."""
    store = MemoryStore()
    seed_store(store, load_zone_dir(ZONES))
    app = ControlAPI(store)
    seq = store.seq
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": b"<ChangeResourceRecordSetsRequest", "more_body": True}]

    async def receive() -> dict[str, Any]:
        if chunks:
            return chunks.pop()
        await trio.sleep_forever()  # the client stalls
        raise AssertionError

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": f"{API}/hostedzone/Z0API0AWS/rrset",
             "raw_path": f"{API}/hostedzone/Z0API0AWS/rrset".encode(), "query_string": b"",
             "headers": [(b"content-length", b"1000")], "client": ("127.0.0.1", 1)}
    start = trio.current_time()
    await app(scope, receive, send)
    assert trio.current_time() - start == pytest.approx(app.body_deadline)
    assert sent[0]["status"] == 400 and b"<Code>RequestTimeout</Code>" in sent[1]["body"]
    assert store.seq == seq


def test_depth_and_element_caps_hold_for_any_reader():
    deep = b"<r>" + b"<a>" * (X.MAX_DEPTH + 1) + b"</a>" * (X.MAX_DEPTH + 1) + b"</r>"
    with pytest.raises(X.BadRequest, match="nested more than") as info:
        X.parse_xml(deep)  # no schema: the depth walk alone
    assert info.value.code == "InvalidInput"
    X.parse_xml(b"<r>" + b"<a>" * (X.MAX_DEPTH - 1) + b"</a>" * (X.MAX_DEPTH - 1) + b"</r>")  # at the cap: fine
    wide = b"<r>" + b"<a/>" * (X.MAX_ELEMENTS + 1) + b"</r>"
    with pytest.raises(X.BadRequest, match=f"more than {X.MAX_ELEMENTS}"):
        X.parse_xml(wide)


def test_a_full_batch_is_well_inside_the_caps():
    """The caps must be well above a real request: 1,000 changes with every field we read."""
    changes = [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": f"n{i}.api.aws.", "Type": "A", "SetIdentifier": f"s{i}", "Weight": 1, "TTL": 60,
        "ResourceRecords": [{"Value": "192.0.2.1"}]}} for i in range(1000)]
    body = _serialise("ChangeResourceRecordSets", {"HostedZoneId": "Z0API0AWS", "ChangeBatch": {"Changes": changes}})
    tree = X.parse_xml(body, "ChangeResourceRecordSetsRequest")
    assert sum(1 for _ in tree.iter()) * 3 < X.MAX_ELEMENTS
    assert len(X.parse_change_batch_xml(body)[1]) == 1000


# --- 2. control characters in log lines --------------------------------------------------------


def test_safe_formatter_makes_one_escaped_line_per_record():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(SafeFormatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test.logsafe")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("refused %s", "/x\r\nINFO forged\x1b[31m\x9b\\")
        try:
            raise ValueError("bad\nline")
        except ValueError:
            log.exception("failed on %s", "a\nb")
    finally:
        log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0] == "WARNING refused /x\\r\\nINFO forged\\x1b[31m\\x9b\\\\"
    assert len(lines) == 2 and lines[1].startswith("ERROR failed on a\\nb | Traceback")
    assert "ValueError: bad\\nline" in lines[1]
    assert escape_controls("plain text") == "plain text"


def test_setup_logging_replaces_its_own_handler():
    root = logging.getLogger()
    # a command an earlier test ran may have left its own handler: setup_logging replaces it too
    before = [h for h in root.handlers if not getattr(h, "_authd_safe", False)]
    first = setup_logging("INFO", stream=io.StringIO())
    second = setup_logging("INFO", stream=io.StringIO())
    try:
        assert first not in root.handlers and second in root.handlers
        assert len(root.handlers) == len(before) + 1
    finally:
        root.removeHandler(second)


def test_every_entry_point_installs_the_safe_formatter():
    """One place escapes: no package configures logging any other way, and each command-line
    entry point calls `setup_logging` (authd's subprocess test below shows it end to end)."""
    for package in ("authd", "enactor", "resolver", "bench"):
        for path in (ROOT / package).glob("*.py"):
            assert "logging.basicConfig(" not in path.read_text(), path
    for cli in ("authd/cli/main.py", "enactor/cli.py", "resolver/cli.py"):
        assert "setup_logging(" in (ROOT / cli).read_text(), cli


def _raw_http(url: str, request: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.realtime
def test_crlf_and_esc_in_a_request_make_exactly_one_escaped_log_line(tmp_path):
    """The reproducer: `%0A` in a URL path (and CR, LF, ESC in the query and a header)
    wrote a forged line into `authd serve`'s log without credentials."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "authd", "serve", "--zones", str(ZONES), "--listen", "127.0.0.1:0",
         "--control", "127.0.0.1:0", "--store", ":memory:"],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "control API (Route 53 2013-04-01) on " in line:
                url = line.rsplit(" on ", 1)[1].strip()
                break
        else:
            raise AssertionError(f"authd did not start (exit {proc.wait()})")
        forged = b"%0D%0A2026-01-01T00:00:00%20authd.control%5B1%5D%20INFO%20FORGED-PATH%1B%5B2J"
        reply = _raw_http(url, b"GET " + API.encode() + b"/hostedzone/" + forged
                          + b"?q=%0AFORGED-QUERY%1B HTTP/1.1\r\nHost: x\r\n"
                          + b"User-Agent: ua\x1b[2J\x9bFORGED-HEADER\r\nConnection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 403")
        # a signed request whose decoded zone id holds a real line feed reaches a log call too
        r53_url = f"{url}{API}/hostedzone/Z%0AFORGED-ID%1B/rrset"
        body = _serialise("ChangeResourceRecordSets", {"HostedZoneId": "Z", "ChangeBatch": change("CREATE", rrset("a.api.aws."))})
        req = AWSRequest(method="POST", url=r53_url, data=body)
        SigV4Auth(Credentials("test", "test"), "route53", "us-east-1").add_auth(req)
        assert httpx.post(r53_url, content=body, headers=dict(req.headers)).status_code == 404
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=30)
    lines = rest.splitlines()
    assert not [ln for ln in lines if ln.startswith(("2026-01-01", "FORGED", "\x1b"))], lines
    refused = [ln for ln in lines if "FORGED-PATH" in ln]
    assert len(refused) == 1, lines
    assert "control: refused GET" in refused[0] and "FORGED-QUERY" in refused[0] and "FORGED-HEADER" in refused[0]
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for ln in lines for c in ln), lines
    assert "ua\\x1b[2J\\x9bFORGED-HEADER" in refused[0]
    rejected = [ln for ln in lines if "FORGED-ID" in ln]
    assert len(rejected) == 1 and "Z\\nFORGED-ID\\x1b" in rejected[0], lines


# --- 3. SigV4 payload hash -----------------------------------------------------------------------


class UnsignedPayload(SigV4Auth):
    """What an attacker's signer does: sign `UNSIGNED-PAYLOAD` instead of the body's hash."""

    def payload(self, request: Any) -> str:
        return "UNSIGNED-PAYLOAD"

    def add_auth(self, request: Any) -> None:
        request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
        super().add_auth(request)


def test_unsigned_payload_cannot_carry_a_swapped_body(api):
    url, _, store = api
    body = _serialise("ChangeResourceRecordSets", {"HostedZoneId": "Z0API0AWS",
                                                   "ChangeBatch": change("CREATE", rrset("swapped.api.aws."))})
    resp = signed(url, "POST", f"{API}/hostedzone/Z0API0AWS/rrset", body, auth=UnsignedPayload)
    status, code, message = error_of(resp)
    assert (status, code) == (403, "SignatureDoesNotMatch")
    assert message.startswith("The request signature we calculated does not match")
    assert "swapped.api.aws." not in names_in(store)


def test_a_claimed_hash_that_is_not_the_bodys_is_refused(api):
    url, _, store = api
    body = _serialise("ChangeResourceRecordSets", {"HostedZoneId": "Z0API0AWS",
                                                   "ChangeBatch": change("CREATE", rrset("claimed.api.aws."))})
    other = hashlib.sha256(b"something else").hexdigest()
    resp = signed(url, "POST", f"{API}/hostedzone/Z0API0AWS/rrset", body, headers={"X-Amz-Content-SHA256": other})
    assert error_of(resp)[:2] == (403, "SignatureDoesNotMatch")
    # the same request with the body's true hash, signed, is accepted: botocore's own way
    true = hashlib.sha256(body).hexdigest()
    ok = signed(url, "POST", f"{API}/hostedzone/Z0API0AWS/rrset", body, headers={"X-Amz-Content-SHA256": true})
    assert ok.status_code == 200 and "claimed.api.aws." in names_in(store)


# --- 4. raw-path routing -------------------------------------------------------------------------


def test_percent_2f_is_not_a_path_separator(api):
    url, r53, _ = api
    assert r53.list_resource_record_sets(HostedZoneId="Z0API0AWS")["ResourceRecordSets"]
    # decoded, this would be ListResourceRecordSets on Z0API0AWS: a route, and a 200
    status, code, message = error_of(signed(url, "GET", f"{API}/hostedzone/Z0API0AWS%2Frrset"))
    assert (status, code, message) == (404, "NoSuchHostedZone", "No hosted zone found with ID: Z0API0AWS/rrset")
    status, code, _ = error_of(signed(url, "GET", f"{API}/hostedzone/%2Fhostedzone%2FZ0API0AWS/rrset"))
    assert (status, code) == (404, "NoSuchHostedZone")
    status, code, _ = error_of(signed(url, "GET", f"{API}/change/C1%2F..%2F..%2Fhostedzone"))
    assert (status, code) == (404, "NoSuchChange")
    status, code, message = error_of(signed(url, "GET", f"{API}/hostedzone/{'Z' * 33}"))
    assert (status, code) == (400, "InvalidInput") and "length less than or equal to 32" in message
    # an encoded character that is not a separator is decoded as usual
    assert signed(url, "GET", f"{API}/hostedzone/Z0API0%41WS").status_code == 200


# --- 5. names as Route 53 prints them ------------------------------------------------------------


ODD_NAMES = [
    # (what the client sends, what Route 53 lists)
    ("*.names.api.aws.", "\\052.names.api.aws."),
    ("\\052.star.api.aws.", "\\052.star.api.aws."),
    ("a b.names.api.aws.", "a\\040b.names.api.aws."),
    ("a\\134b.names.api.aws.", "a\\134b.names.api.aws."),
    ("x\\056y.names.api.aws.", "x\\056y.names.api.aws."),
    ("x\\012y.names.api.aws.", "x\\012y.names.api.aws."),
    ("caf\\351.names.api.aws.", "caf\\351.names.api.aws."),
    ("UP\\101.names.api.aws.", "upa.names.api.aws."),
]


def test_odd_names_round_trip_as_route53_prints_them(api):
    _, r53, store = api
    for sent, listed in ODD_NAMES:
        r53.change_resource_record_sets(HostedZoneId="Z0API0AWS", ChangeBatch=change("CREATE", rrset(sent)))
        page = r53.list_resource_record_sets(HostedZoneId="Z0API0AWS", StartRecordName=listed, StartRecordType="A",
                                             MaxItems="1")
        assert page["ResourceRecordSets"][0]["Name"] == listed, sent
        # what was listed names the same set: DELETE with it succeeds
        r53.change_resource_record_sets(HostedZoneId="Z0API0AWS", ChangeBatch=change("DELETE", rrset(listed)))
    assert not {n for n in names_in(store) if "names" in n or "star" in n}
    # zone names use the same octal escapes
    made = r53.create_hosted_zone(Name="x\\052y.test.", CallerReference="octal")["HostedZone"]
    assert made["Name"] == "x\\052y.test."
    assert r53.list_hosted_zones_by_name(DNSName="x\\052y.test.")["HostedZones"][0]["Id"] == made["Id"]
    # a dot inside a label is one label, not two
    r53.change_resource_record_sets(HostedZoneId="Z0API0AWS", ChangeBatch=change("CREATE", rrset("x\\056y.api.aws.")))
    assert "x\\.y.api.aws." in names_in(store) and "x.y.api.aws." not in names_in(store)


# --- 6. values as Route 53 validates them --------------------------------------------------------


BAD_VALUES = [
    ("A", "192.0.2.1\n garbage", "ARRDATANotSingleField (Value contains spaces)"),
    ("A", "192.0.2.1 ; x", "ARRDATANotSingleField (Value contains spaces)"),
    ("A", "192.0.2.1;x", "ARRDATAIllegalIPv4Address (Value is not a valid IPv4 address)"),
    ("A", "192.0.2.300", "ARRDATAIllegalIPv4Address (Value is not a valid IPv4 address)"),
    ("AAAA", "2001:db8::1 ; x", "AAAARRDATAIllegalIPv6Address (Value is not a valid IPv6 address)"),
    ("AAAA", "2001:db8::1\nx", "AAAARRDATAIllegalIPv6Address (Value is not a valid IPv6 address)"),
    ("TXT", '"a" ; b', "InvalidCharacterString (Value should be enclosed in quotation marks)"),
    ("TXT", "two words", "InvalidCharacterString (Value should be enclosed in quotation marks)"),
    ("TXT", '"a\nb"', "InvalidCharacterString (Value should be enclosed in quotation marks)"),
    ("TXT", '"' + "x" * 256 + '"', "CharacterStringTooLong (Value is too long)"),
    ("SPF", '"v=spf1 -all" ; x', "InvalidCharacterString (Value should be enclosed in quotation marks)"),
    ("CNAME", "a..b.", "DomainLabelEmpty (Domain label is empty)"),
    ("CNAME", "t.api.aws. ; x", "CNAMERRDATAIllegalDomainName"),
    ("NS", "ns1.x.\nns2.x.", "NSRRDATAIllegalDomainName"),
    ("PTR", "p.x. junk", "PTRRRDATAIllegalDomainName"),
    ("MX", "10 mx.x. ; x", "MXRRDATAIllegalValue"),
    ("MX", "( 10 mx.x. )", "MXRRDATAIllegalValue"),
    ("SRV", "1 2 3 t.x.\n4", "SRVRRDATAIllegalValue"),
    ("CAA", '0 issue "ca.x" ; x', "CAARRDATAIllegalValue"),
    ("NAPTR", '100 10 "u" "E2U+sip" "!^.*$!sip:x@x!" . ; x', "NAPTRRRDATAIllegalValue"),
    ("DS", "12345 13 2 zz", "DSRRDATAIllegalValue"),
]
GOOD_VALUES = [
    ("A", "192.0.2.1", "192.0.2.1"),
    ("TXT", '"v=spf1 include:x ~all"', '"v=spf1 include:x ~all"'),
    ("TXT", '"a ; b" "c"', '"a ; b" "c"'),
    ("SPF", '"v=spf1 -all"', '"v=spf1 -all"'),
    ("CAA", '0 issue "ca.example"', '0 issue "ca.example"'),
    ("CAA", '0 issue "ca.example; account=1"', '0 issue "ca.example; account=1"'),  # `;` quoted: data
    ("TXT", '"say \\"hi\\""', '"say \\"hi\\""'),
    ("MX", "10 mx.example.", "10 mx.example."),
    ("SRV", "1 2 443 t.example.", "1 2 443 t.example."),
    ("NAPTR", '100 10 "u" "E2U+sip" "!^.*$!sip:x@x!" .', '100 10 "u" "E2U+sip" "!^.*$!sip:x@x!" .'),
    ("DS", "12345 13 2 " + "ab" * 32, "12345 13 2 " + "ab" * 32),
    ("CNAME", "t.example.", "t.example."),
]


def test_values_route53_refuses_are_refused_with_its_words(api):
    _, r53, store = api
    before = store.record_sets("Z0API0AWS")
    for i, (rtype, value, problem) in enumerate(BAD_VALUES):
        with pytest.raises(r53.exceptions.InvalidChangeBatch) as info:
            r53.change_resource_record_sets(
                HostedZoneId="Z0API0AWS", ChangeBatch=change("CREATE", rrset(f"v{i}.api.aws.", value, rtype)))
        messages = split_messages(info.value.response["Error"]["Message"])
        assert len(messages) == 1, messages
        assert messages[0].startswith(f"Invalid Resource Record: 'FATAL problem: {problem}"), (value, messages)
        assert messages[0].endswith(f" encountered with '{value}''"), messages
    assert store.record_sets("Z0API0AWS") == before


def test_valid_values_are_kept_as_route53_keeps_them(api):
    _, r53, _ = api
    for i, (rtype, value, stored) in enumerate(GOOD_VALUES):
        r53.change_resource_record_sets(
            HostedZoneId="Z0API0AWS", ChangeBatch=change("CREATE", rrset(f"g{i}.api.aws.", value, rtype)))
        got = r53.list_resource_record_sets(HostedZoneId="Z0API0AWS", StartRecordName=f"g{i}.api.aws.",
                                            StartRecordType=rtype, MaxItems="1")["ResourceRecordSets"][0]
        assert [rr["Value"] for rr in got["ResourceRecords"]] == [stored]


# --- 7. unknown and unimplemented elements -------------------------------------------------------


MODEL = get_session().get_service_model("route53")
SERIALIZER = serialize.create_serializer("rest-xml", include_validation=False)
# The operations whose request bodies authd reads, with a minimal valid request each, the
# request element, and the parser the API calls.
BODIES: dict[str, tuple[dict[str, Any], str, Any]] = {
    "CreateHostedZone": ({"Name": "hygiene.test", "CallerReference": "r-1"}, "CreateHostedZoneRequest",
                         X.parse_create_zone_xml),
    "ChangeResourceRecordSets": ({"HostedZoneId": "Z0API0AWS", "ChangeBatch": change("CREATE", rrset("h.api.aws."))},
                                 "ChangeResourceRecordSetsRequest", X.parse_change_batch_xml),
    "UpdateHostedZoneComment": ({"Id": "Z0API0AWS", "Comment": "c"}, "UpdateHostedZoneCommentRequest",
                                X.parse_update_comment_xml),
}


def _serialise(operation: str, params: dict[str, Any]) -> bytes:
    return SERIALIZER.serialize_to_request(params, MODEL.operation_model(operation))["body"]


def _sample(shape: Any) -> Any:
    """A small value botocore will serialise for `shape` (validity is not the point)."""
    if shape.type_name == "structure":
        return {}
    if shape.type_name == "list":
        return [_sample(shape.member)]
    if shape.type_name in ("integer", "long"):
        return 1
    if shape.type_name == "boolean":
        return True
    if shape.enum:
        return shape.enum[0]
    return "x"


def _unimplemented(shape: Any, element: str, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str, Any]]:
    """Every body member under `shape` that `X.IMPLEMENTED` does not list: (path, name, shape)."""
    out = []
    if shape.type_name == "list":
        (item_element,) = X.IMPLEMENTED[element]
        return _unimplemented(shape.member, X.IMPLEMENTED[element][item_element] or "", (*path, 0))
    for name, member in shape.members.items():
        if member.serialization.get("location"):  # a URI or query member, not a body element
            continue
        xml_name = member.serialization.get("name", name)
        implemented = X.IMPLEMENTED.get(element, {})
        if xml_name not in implemented:
            out.append(((*path, name), xml_name, member))
        elif implemented[xml_name] is not None:
            out += _unimplemented(member, implemented[xml_name], (*path, name))
    return out


def _with(params: Any, path: tuple[Any, ...], value: Any) -> Any:
    params = copy.deepcopy(params)
    node = params
    for key in path[:-1]:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})
    node[path[-1]] = value
    return params


CASES = [(op, path, xml_name, member) for op, (base, root, _) in BODIES.items()
         for path, xml_name, member in _unimplemented(MODEL.operation_model(op).input_shape, root, ())]


def test_the_walk_finds_the_members_the_issue_names():
    found = {(op, name) for op, _, name, _ in CASES}
    assert {("CreateHostedZone", "VPC"), ("ChangeResourceRecordSets", "TrafficPolicyInstanceId")} <= found
    assert ("CreateHostedZone", "PrivateZone") not in found  # read: false is fine, true refused
    assert ("ChangeResourceRecordSets", "ResourceRecord") not in found


@pytest.mark.parametrize(("operation", "path", "xml_name", "member"), CASES,
                         ids=[f"{c[0]}:{'.'.join(map(str, c[1]))}" for c in CASES])
def test_every_member_not_implemented_is_refused_by_name(operation, path, xml_name, member):
    base, _, parse = BODIES[operation]
    body = _serialise(operation, _with(base, path, _sample(member)))
    assert f"<{xml_name}".encode() in body, body  # botocore did send it
    parse(_serialise(operation, base))  # the base request alone is fine
    with pytest.raises(X.BadRequest) as info:
        parse(body)
    assert info.value.code == "InvalidInput"
    assert f"starting with element '{xml_name}'" in info.value.messages[0]


def test_unknown_elements_anywhere_and_repeats_are_refused(api):
    url, r53, store = api
    before = names_in(store)
    base = _serialise("ChangeResourceRecordSets", BODIES["ChangeResourceRecordSets"][0])
    for odd, name in [
        (base.replace(b"<TTL>", b"<Bogus>1</Bogus><TTL>"), "Bogus"),
        (base.replace(b"</Value>", b"</Value><Note>x</Note>"), "Note"),
        (base.replace(b"<Changes>", b"<Extra/><Changes>"), "Extra"),
        (base.replace(b"</Name>", b"</Name><Name>other.api.aws.</Name>"), "Name"),
    ]:
        status, code, message = error_of(signed(url, "POST", f"{API}/hostedzone/Z0API0AWS/rrset", odd))
        assert (status, code) == (400, "InvalidInput") and f"element '{name}'" in message, message
    assert names_in(store) == before
    zones = len(r53.list_hosted_zones()["HostedZones"])
    for params, name in [
        ({"VPC": {"VPCRegion": "us-east-1", "VPCId": "vpc-1"}}, "VPC"),
        ({"HostedZoneConfig": {"Comment": "c", "HostedZoneTier": "ADVANCED"}}, "HostedZoneTier"),
    ]:
        body = _serialise("CreateHostedZone", {"Name": "hygiene.test", "CallerReference": name, **params})
        status, code, message = error_of(signed(url, "POST", f"{API}/hostedzone", body))
        assert (status, code) == (400, "InvalidInput") and f"element '{name}'" in message, message
    with pytest.raises(r53.exceptions.InvalidInput, match="element 'PrivateZone' true is not supported"):
        r53.create_hosted_zone(Name="hygiene.test", CallerReference="p", HostedZoneConfig={"PrivateZone": True})
    assert len(r53.list_hosted_zones()["HostedZones"]) == zones


def test_authd_change_refuses_a_json_field_it_does_not_implement(tmp_path, capsys):
    """`authd change --batch file.json` (the aws cli's JSON shape) drops nothing either."""
    db = tmp_path / "authd.db"
    store = SQLiteStore(db)
    seed_store(store, load_zone_dir(ZONES))
    seq = store.seq
    store.close()
    batch = tmp_path / "b.json"
    batch.write_text(json.dumps(change("CREATE", {**rrset("hc.api.aws."), "SetIdentifier": "a", "Weight": 1,
                                                  "TrafficPolicyInstanceId": "tp-1"})))
    assert main(["change", "--zone", "api.aws", "--batch", str(batch), "--store", str(db)]) == 1
    assert "unknown or unsupported field 'TrafficPolicyInstanceId'" in capsys.readouterr().err
    store = SQLiteStore(db)
    assert store.seq == seq
    store.close()


def test_the_json_change_batch_refuses_unknown_fields_too():
    ok = change("CREATE", rrset("j.api.aws."))
    X.refuse_unimplemented_json(ok, "ChangeBatch")
    odd = change("CREATE", {**rrset("j.api.aws."), "TrafficPolicyInstanceId": "tp-1"})
    with pytest.raises(X.BadRequest, match="'TrafficPolicyInstanceId' in ChangeBatch.Changes\\[0\\].ResourceRecordSet"):
        X.refuse_unimplemented_json(odd, "ChangeBatch")


# --- no request body is a 500 ----------------------------------------------------------------------


_TAGS = sorted({n for children in X.IMPLEMENTED.values() for n in children} | {"Bogus", "a"})
_TEXTS = st.sampled_from(["", "x", "60", "192.0.2.1", "CREATE", "a.api.aws.", "true", '"t ; x"', "\\052.x.",
                          "1 2 3", "&amp;", "&#10;", "\u00e9", "-1", "99999999999999999999"])


def _trees(depth: int) -> st.SearchStrategy[str]:
    leaf = st.builds(lambda t, x: f"<{t}>{x}</{t}>", st.sampled_from(_TAGS), _TEXTS)
    if depth == 0:
        return leaf
    node = st.builds(lambda t, kids: f"<{t}>{''.join(kids)}</{t}>", st.sampled_from(_TAGS),
                     st.lists(_trees(depth - 1), max_size=4))
    return st.one_of(leaf, node)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(BODIES)), _trees(6))
def test_any_element_tree_is_parsed_or_refused_never_crashes(operation, inner):
    _, root, parse = BODIES[operation]
    body = f'<{root} xmlns="{X.NS}">{inner}</{root}>'.encode()
    try:
        parse(body)
    except X.BadRequest as exc:
        assert exc.code in ("InvalidInput", "InvalidChangeBatch") and exc.messages
