"""Fuzzing the file parsers (issue 10: a harness for each parser): zone files in RFC 1035 and
Route 53 JSON form, and plan files. Whatever the bytes, each parser returns its result or
raises its own error type with a reason (ZoneLoadError, PlanError), never anything else, so
`authd serve` and the enactor refuse a bad file with a clear line instead of a traceback.

Two kinds of input: the shipped files mutated as text (characters that matter to the syntax
inserted, lines duplicated or cut), and, for the JSON files, the parsed document mutated as a
structure (a leaf replaced by another type, a huge number, deep nesting, a key dropped).
The change XML has its own fuzz in tests/test_r53xml_fastpath.py; DNS wire in test_fuzz.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authd.zonefiles.zonefile import LoadedZone, ZoneLoadError, parse_master, parse_route53_json
from enactor.plan import Plan, PlanError, loads_plan
from enactor.planner import default_capacity, next_plan

ZONES = Path(__file__).resolve().parent.parent / "zones"
MASTER = (ZONES / "example.test.zone").read_text()
R53 = (ZONES / "api.aws.json").read_text()
PLAN = next_plan(default_capacity(), None, 0.0).dumps()  # type: ignore[union-attr]

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIGNIFICANT = ["(", ")", '"', ";", "$", "\\", " ", "\t", "\n", "@", "*", ".", "\\0", "\\999",
               "$ORIGIN .", "$TTL x", "$INCLUDE /etc/passwd", "$GENERATE 1-2 a A 1.2.3.4",
               "IN", "CH", "TYPE65535", "\\# 2 00", "\x00", "é", "{", "}", "[", "]", ",", ":",
               "1e999", "-1", "null", "9" * 40]


@st.composite
def text_mutations(draw: st.DrawFn, text: str) -> str:
    """`text` with a few edits: syntax characters inserted, spans cut, lines duplicated."""
    out = text
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(out)))
        kind = draw(st.sampled_from(["insert", "insert", "cut", "dup-line", "random"]))
        if kind == "insert":
            out = out[:i] + draw(st.sampled_from(SIGNIFICANT)) + out[i:]
        elif kind == "cut":
            out = out[:i] + out[i + draw(st.integers(1, 40)):]
        elif kind == "dup-line":
            start = out.rfind("\n", 0, i) + 1
            end = out.find("\n", i)
            line = out[start:end if end != -1 else len(out)]
            out = out[:start] + line + "\n" + out[start:]
        else:
            out = out[:i] + draw(st.text(max_size=8)) + out[i:]
    return out


LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(),
                   st.text(max_size=10), st.sampled_from(["", "0", "300", "A", "..", "x" * 300]))


@st.composite
def json_mutations(draw: st.DrawFn, text: str) -> str:
    """The JSON document with one to three structural edits, dumped again."""
    doc = json.loads(text)
    for _ in range(draw(st.integers(1, 3))):
        # Walk to a random container, then replace, drop or deepen one of its members.
        node: Any = doc
        for _ in range(draw(st.integers(0, 6))):
            kids = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
            kids = [k for k in kids if isinstance(k, dict | list)]
            if not kids:
                break
            node = draw(st.sampled_from(kids))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            continue
        key = draw(st.sampled_from(keys))
        kind = draw(st.sampled_from(["replace", "replace", "drop", "deep", "empty"]))
        if kind == "replace":
            node[key] = draw(LEAVES)
        elif kind == "drop":
            del node[key]
        elif kind == "deep":
            deep: Any = node[key]
            for _ in range(draw(st.sampled_from([2, 50, 900]))):
                deep = [deep]
            node[key] = deep
        else:
            node[key] = {} if isinstance(node[key], dict) else []
    try:
        return json.dumps(doc)
    except (ValueError, RecursionError):
        return text[: len(text) // 2]  # unserialisable: a cut document instead


@FUZZ
@given(text_mutations(MASTER))
def test_zone_file_parser_returns_a_zone_or_a_zone_error(text: str) -> None:
    try:
        zone = parse_master(text, "example.test.zone", "example.test.")
    except ZoneLoadError as exc:
        assert str(exc)  # a reason an operator can read
        return
    assert isinstance(zone, LoadedZone)


@FUZZ
@given(st.one_of(text_mutations(R53), json_mutations(R53)))
def test_route53_json_parser_returns_a_zone_or_a_zone_error(text: str) -> None:
    try:
        zone = parse_route53_json(text, "api.aws.json", "api.aws.")
    except ZoneLoadError as exc:
        assert str(exc)
        return
    assert isinstance(zone, LoadedZone)


@FUZZ
@given(st.one_of(text_mutations(PLAN), json_mutations(PLAN)))
def test_plan_parser_returns_a_plan_or_a_plan_error(text: str) -> None:
    try:
        plan = loads_plan(text, "plan-0001.json")
    except PlanError as exc:
        assert str(exc)
        return
    assert isinstance(plan, Plan)
