"""The change-batch XML fast path gives exactly what the generic conversion gives.

`authd.r53xml._fast_change_batch` walks the elements straight to RecordSets and leaves every
odd batch to `_generic_change_batch` (XML to the JSON shape, then `changes_from_route53`).
Generated batches mix well-formed changes with the odd shapes a client could send; for each
the result of `parse_change_batch_xml` (fast path first) must equal the generic result, or
both must fail with the same error code and messages.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from authd import r53xml as X
from authd.records import AliasTarget, RecordSet
from authd.store import Action, Change

NS = X.NS

# Mostly valid (so the fast path answers often), sometimes not (so it must hand back).
def mostly(good: list[str], bad: list[str], odds: int = 12) -> st.SearchStrategy[str]:
    # (hypothesis favours small integers and edges: the bad branch sits in the middle)
    return st.integers(0, odds).flatmap(
        lambda i: st.sampled_from(bad) if i == odds // 2 else st.sampled_from(good))


names = mostly(["a.t.", "B.t", "x\\052.t.", "lb-1.plan-0001.t.", "*.t."], ["", "bad..name."])
GOOD = {"A": ["192.0.2.1", " 192.0.2.2 ", "010.0.0.1"], "AAAA": ["2001:db8::1", "2001:DB8:0::2"],
        "TXT": ['"lock a"', "plain"], "a": ["192.0.2.3"]}
BAD = ["300.1.1.1", "", "2001:db8::1"]
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
        parts.append(el("Name", "dup.t."))  # a repeated field: the last one wins
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
    ns = draw(st.sampled_from([f' xmlns="{NS}"', f' xmlns="{NS}"', "", ' xmlns="urn:other"']))
    return f"<ChangeResourceRecordSetsRequest{ns}>{el('ChangeBatch', batch)}{extra}</ChangeResourceRecordSetsRequest>".encode()


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except X.BadRequest as exc:
        return ("error", exc.code, exc.messages)


@settings(max_examples=600, deadline=None)
@given(batch_xml())
def test_fast_path_matches_generic(body: bytes) -> None:
    root = X.parse_xml(body)
    assert outcome(X.parse_change_batch_xml, body) == outcome(X._generic_change_batch, root)
    TAKEN[X._fast_change_batch(root) is not None] += 1


TAKEN = {True: 0, False: 0}


def test_the_generated_batches_exercise_both_paths() -> None:
    """Guards the property above against vacuity: it ran, and both paths were taken often."""
    test_fast_path_matches_generic()
    assert TAKEN[True] >= 100 and TAKEN[False] >= 100, TAKEN


def test_fast_path_answers_the_usual_batches() -> None:
    """The shapes the enactor and boto3 send are taken by the fast path, not handed back."""
    sets = [
        RecordSet("h1.t.", "A", 60, ("192.0.2.1", "192.0.2.2")),
        RecordSet("plan-0002.t.", "A", set_identifier="az1-lb1", weight=10,
                  alias=AliasTarget("az1-lb1.plan-0002.t.", "Z0T")),
        RecordSet("_lock.t.", "TXT", 1, ('"enactor-1 plan-0002"',)),
        RecordSet("e.t.", "AAAA", alias=AliasTarget("plan-0002.t.", "Z0T", True)),
    ]
    changes = "".join(
        f"<Change><Action>{a}</Action>{X.record_set_xml(rs)}</Change>"
        for a, rs in zip(["CREATE", "DELETE", "UPSERT", "CREATE"], sets, strict=True)
    )
    body = (f'<?xml version="1.0" encoding="UTF-8"?><ChangeResourceRecordSetsRequest xmlns="{NS}">'
            f"<ChangeBatch><Comment>c</Comment><Changes>{changes}</Changes></ChangeBatch>"
            "</ChangeResourceRecordSetsRequest>").encode()
    fast = X._fast_change_batch(X.parse_xml(body))
    assert fast == ("c", [Change(a, rs) for a, rs in zip(
        [Action.CREATE, Action.DELETE, Action.UPSERT, Action.CREATE], sets, strict=True)])
    assert fast == X._generic_change_batch(X.parse_xml(body))
