"""The change-batch XML fast path gives exactly what the generic conversion gives.

`authd.control.r53xml._scan_change_batch` reads botocore's exact serialisation without a tree and
leaves every other batch to the XML parser and `_generic_change_batch` (XML to the JSON
shape, then `changes_from_route53`).
Generated batches mix well-formed changes with the odd shapes a client could send; for each
the result of `parse_change_batch_xml` (fast path first) must equal the generic result, or
both must fail with the same error code and messages.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from authd.control import r53xml as X
from authd.model.records import AliasTarget, RecordSet
from authd.store.contract import Action, Change

NS = X.NS

# Mostly valid (so the fast path answers often), sometimes not (so it must hand back).
def mostly(good: list[str], bad: list[str], odds: int = 12) -> st.SearchStrategy[str]:
    # (hypothesis favours small integers and edges: the bad branch sits in the middle)
    return st.integers(0, odds).flatmap(
        lambda i: st.sampled_from(bad) if i == odds // 2 else st.sampled_from(good))


names = mostly(["a.t.", "B.t", "x\\052.t.", "lb-1.plan-0001.t.", "*.t."], ["", "bad..name."])
GOOD = {"A": ["192.0.2.1", " 192.0.2.2 ", "010.0.0.1"], "AAAA": ["2001:db8::1", "2001:DB8:0::2"],
        "TXT": ['"lock a"', "plain"], "a": ["192.0.2.3"]}
BAD = ["300.1.1.1", "", "2001:db8::1", "a&amp;b", "x]]>y", "a\r\nb", "\x01", "1.2.3.4 > 0", "é"]
ints = mostly(["60", " 300 ", "0", "255", "256", "-1"], ["x", "", "9999999999999999999999x"])
bools = st.sampled_from(["true", "false", "True", " TRUE ", "yes", ""])


def el(tag: str, inner: str) -> str:
    return f"<{tag}>{inner}</{tag}>"


@st.composite
def record_set_xml(draw: Any) -> str:
    rtype = draw(mostly(list(GOOD), ["NOPE", ""]))
    values = mostly(GOOD.get(rtype, ["x"]), BAD, odds=20)
    parts = [el("Name", draw(names)), el("Type", rtype)]
    if draw(st.booleans()):
        parts.append(el("SetIdentifier", draw(st.sampled_from(["lb1", "az1-lb2", ""]))))
        parts.append(el("Weight", draw(ints)))
    if draw(st.integers(0, 3)) == 0:
        inner = el("HostedZoneId", "Z0T") + el("DNSName", draw(names))
        if draw(st.booleans()):
            inner += el("EvaluateTargetHealth", draw(bools))
        parts.append(el("AliasTarget", inner))
    else:
        parts.append(el("TTL", draw(ints)))
        vals = draw(st.lists(values, max_size=3))
        parts.append(el("ResourceRecords", "".join(el("ResourceRecord", el("Value", v)) for v in vals)))
    odd = draw(st.integers(0, 60))
    if odd == 1:
        parts.append(el("HealthCheckId", "abc"))  # an element the fast path does not know
    elif odd == 2:
        parts.reverse()  # order does not matter to the generic conversion
    elif odd == 3:
        parts.pop(0)  # no Name
    elif odd == 4:
        parts.append("<TTL><Nested>1</Nested></TTL>")
    elif odd == 5:
        parts.append("<ResourceRecords><ResourceRecord/></ResourceRecords>")
    elif odd == 6:
        parts.append("<AliasTarget/>")
    elif odd == 7:
        parts.append(el("Name", "dup.t."))  # a repeated field: refused, never overwritten
    return el("ResourceRecordSet", "".join(parts))


@st.composite
def change_xml(draw: Any) -> str:
    action = el("Action", draw(mostly(["CREATE", "DELETE", "UPSERT", "upsert", " create "], ["MOVE", ""])))
    rrs = draw(record_set_xml())
    if draw(st.integers(0, 15)) == 0:
        return el("Change", rrs + action)
    return el("Change", action + rrs)


@st.composite
def batch_xml(draw: Any) -> bytes:
    changes = "".join(draw(st.lists(change_xml(), min_size=1, max_size=3)))
    batch = el("Changes", changes)
    if draw(st.booleans()):
        batch = el("Comment", draw(st.sampled_from(["", "flip to plan-0002", " x "]))) + batch
    extra = draw(st.sampled_from(["", "", "", "", "", "<Other>1</Other>"]))
    ns = draw(st.sampled_from([f' xmlns="{NS}"', f' xmlns="{NS}"', f' xmlns="{NS}"', "", ' xmlns="urn:other"']))
    decl = draw(st.sampled_from(["", "", '<?xml version="1.0" encoding="UTF-8"?>\n',
                                 "<?xml version='1.0' encoding='utf-8'?>", '<?xml version="1.0"?>']))
    tail = draw(st.sampled_from(["", "", "\n", " <!-- c -->"]))
    return f"{decl}<ChangeResourceRecordSetsRequest{ns}>{el('ChangeBatch', batch)}{extra}</ChangeResourceRecordSetsRequest>{tail}".encode()


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except X.BadRequest as exc:
        return ("error", exc.code, exc.messages)


@settings(max_examples=600, deadline=None)
@given(batch_xml())
def test_fast_path_matches_generic(body: bytes) -> None:
    def reference() -> tuple[str, list[Change]]:
        return X._generic_change_batch(X.parse_xml(body, "ChangeResourceRecordSetsRequest"))

    want = outcome(reference)
    assert outcome(X.parse_change_batch_xml, body) == want
    scanned = X._scan_change_batch(body)
    TAKEN[scanned is not None] += 1
    if scanned is not None:
        assert ("ok", scanned) == want


TAKEN = {True: 0, False: 0}


def test_the_generated_batches_exercise_both_paths() -> None:
    """Guards the property above against vacuity: it ran, and both paths were taken often."""
    test_fast_path_matches_generic()
    assert TAKEN[True] >= 15 and TAKEN[False] >= 100, TAKEN


def test_the_scanner_reads_authds_own_serialisation() -> None:
    """What authd's clients send (`record_set_xml`, with the XML declaration) is scanned;
    an alias in the batch hands the whole batch to the parser, with the same result."""
    sets = [
        RecordSet("h1.t.", "A", 60, ("192.0.2.1", "192.0.2.2")),
        RecordSet("w.t.", "A", 60, ("192.0.2.9",), set_identifier="az1-lb1", weight=10),
        RecordSet("_lock.t.", "TXT", 1, ('"enactor-1 plan-0002"',)),
        RecordSet("e.t.", "AAAA", alias=AliasTarget("plan-0002.t.", "Z0T", True)),
    ]
    actions = [Action.CREATE, Action.DELETE, Action.UPSERT, Action.CREATE]

    def body(n: int) -> bytes:
        changes = "".join(f"<Change><Action>{a.value}</Action>{X.record_set_xml(rs)}</Change>"
                          for a, rs in zip(actions[:n], sets[:n], strict=True))
        return (f'<?xml version="1.0" encoding="UTF-8"?><ChangeResourceRecordSetsRequest xmlns="{NS}">'
                f"<ChangeBatch><Comment>c</Comment><Changes>{changes}</Changes></ChangeBatch>"
                "</ChangeResourceRecordSetsRequest>").encode()

    want = [Change(a, rs) for a, rs in zip(actions, sets, strict=True)]
    assert X._scan_change_batch(body(3)) == ("c", want[:3])
    assert X._scan_change_batch(body(4)) is None
    assert X.parse_change_batch_xml(body(4)) == ("c", want)


def botocore_body(batch: dict) -> bytes:
    """The request body boto3 and the AWS CLI send, from botocore's own serializer."""
    import botocore.session

    client = botocore.session.get_session().create_client(
        "route53", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="test", aws_secret_access_key="test")
    sent: list[bytes] = []

    def capture(request: Any, **_: Any) -> None:
        sent.append(request.body)
        raise _Captured

    client.meta.events.register("before-send.route53", capture)
    with contextlib.suppress(_Captured):
        client.change_resource_record_sets(HostedZoneId="Z0T", ChangeBatch=batch)
    return sent[0]


class _Captured(Exception):
    pass


def test_botocore_batches_take_the_scanner_and_match_the_parser() -> None:
    batch = {"Comment": "flip to plan-0002", "Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": f"h{i}.t.", "Type": "A", "TTL": 60,
                                                   "ResourceRecords": [{"Value": f"192.0.2.{i}"}]}}
        for i in range(50)
    ] + [
        {"Action": "UPSERT", "ResourceRecordSet": {"Name": "_lock.t.", "Type": "TXT", "TTL": 1,
                                                   "ResourceRecords": [{"Value": '"enactor-1 plan-0002"'}]}},
        {"Action": "DELETE", "ResourceRecordSet": {"Name": "w.t.", "Type": "A", "SetIdentifier": "az1-lb1",
                                                   "Weight": 10, "TTL": 60,
                                                   "ResourceRecords": [{"Value": "192.0.2.1"}, {"Value": "192.0.2.2"}]}},
    ]}
    body = botocore_body(batch)
    scanned = X._scan_change_batch(body)
    assert scanned is not None and len(scanned[1]) == 52
    assert scanned == X._generic_change_batch(X.parse_xml(body))
    assert scanned == ("flip to plan-0002", X.changes_from_route53(batch)[1])
    # what botocore escapes (here `&` and `>`) is left to the parser, which decodes it
    odd = botocore_body({"Comment": "a & b", "Changes": batch["Changes"][:1]})
    assert X._scan_change_batch(odd) is None
    assert X.parse_change_batch_xml(odd)[0] == "a & b"
    alias = botocore_body({"Changes": [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": "e.t.", "Type": "A", "AliasTarget": {"HostedZoneId": "Z0T", "DNSName": "p.t.",
                                                      "EvaluateTargetHealth": False}}}]})
    assert X._scan_change_batch(alias) is None  # aliases go through the element walk
    assert X.parse_change_batch_xml(alias) == X._generic_change_batch(X.parse_xml(alias))


def test_character_data_the_parser_refuses_or_rewrites_is_left_to_it() -> None:
    """Each of these, as a TXT value, must give what the XML parser gives: an error for what
    XML forbids, the decoded or normalised text for the rest; the scanner must not take them."""
    for value in ["a\x01b", "a\x0bb", "x]]>y", "a\r\nb", "a&amp;b", "a&#65;b", "\ufffe", "tab\there"]:
        body = (f'<ChangeResourceRecordSetsRequest xmlns="{NS}"><ChangeBatch><Changes><Change>'
                f"<Action>CREATE</Action><ResourceRecordSet><Name>t.t.</Name><Type>TXT</Type><TTL>60</TTL>"
                f"<ResourceRecords><ResourceRecord><Value>{value}</Value></ResourceRecord></ResourceRecords>"
                "</ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>").encode()

        def reference(body: bytes = body) -> tuple[str, list[Change]]:
            return X._generic_change_batch(X.parse_xml(body, "ChangeResourceRecordSetsRequest"))

        assert outcome(X.parse_change_batch_xml, body) == outcome(reference), value
        assert X._scan_change_batch(body) is None, value
    # a tab is plain character data to the scanner (here in the comment); in a value, a raw
    # control character is refused by the value check (authd.model.r53values), on either path
    with_tab = body.replace(b"<Changes>", b"<Comment>tab\there</Comment><Changes>").replace(b"tab\there</Value>", b"x</Value>")
    assert X._scan_change_batch(with_tab) is not None
    assert X._scan_change_batch(with_tab)[0] == "tab\there"
