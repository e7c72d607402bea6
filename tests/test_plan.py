"""Plans: strict parsing with the file and JSON path at fault, and the plan store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enactor.checker.testing import plan_n
from enactor.plan import PlanError, PlanStore, loads_plan, parse_plan, tree_of


def doc() -> dict:
    return plan_n(1).to_json()


def test_round_trip() -> None:
    p = plan_n(7)
    assert loads_plan(p.dumps()) == p
    assert p.label == "plan-0007"


@pytest.mark.parametrize(
    "mutate, path, reason",
    [
        (lambda d: d.update(schema=2), "$.schema", "unknown schema version 2"),
        (lambda d: d["endpoints"][0]["load_balancers"][2].update(weight=300), "$.endpoints[0].load_balancers[2].weight", "must be an integer 0..255, got 300"),
        (lambda d: d["endpoints"][0]["load_balancers"][0].update(weight=True), "$.endpoints[0].load_balancers[0].weight", "got true"),
        (lambda d: d["endpoints"][0]["load_balancers"][1].update(ipv6="2001:db8::zz"), "$.endpoints[0].load_balancers[1].ipv6", "must be an IPv6 address"),
        (lambda d: d["endpoints"][1]["load_balancers"][0].update(ipv6="2001:db8::1"), "$.endpoints[1].load_balancers[0].ipv6", "IPv4-only"),
        (lambda d: d["endpoints"][0]["load_balancers"][0].update(colour="red"), "$.endpoints[0].load_balancers[0].colour", "unknown field"),
        (lambda d: d["endpoints"][0]["load_balancers"][1].update(name="az1-lb1"), "$.endpoints[0].load_balancers[1].name", "listed twice"),
        (lambda d: d["endpoints"][0]["load_balancers"][1].update(name="AZ 1"), "$.endpoints[0].load_balancers[1].name", "DNS label"),
        (lambda d: d["endpoints"][0].update(zone="example.com."), "$.endpoints[0].name", "not below its zone"),
        (lambda d: d.update(plan=0), "$.plan", "must be an integer"),
        (lambda d: d.update(created="yesterday"), "$.created", "ISO 8601"),
        (lambda d: d.pop("endpoints"), "$.endpoints", "missing"),
        (lambda d: d.update(endpoints=[]), "$.endpoints", "non-empty list"),
    ],
)
def test_bad_plans_name_the_path(mutate, path: str, reason: str) -> None:
    d = doc()
    mutate(d)
    with pytest.raises(PlanError) as e:
        parse_plan(d, "plans/plan-0145.json")
    assert e.value.path == path
    assert reason in e.value.reason
    assert str(e.value).startswith(f"plans/plan-0145.json: {path}: ")


def test_exact_message_from_the_issue() -> None:
    d = doc()
    d["endpoints"][0]["load_balancers"][2]["weight"] = 300
    with pytest.raises(PlanError) as e:
        parse_plan(d, "plans/plan-0145.json")
    assert str(e.value) == (
        "plans/plan-0145.json: $.endpoints[0].load_balancers[2].weight: must be an integer 0..255, got 300"
    )


def test_not_json() -> None:
    with pytest.raises(PlanError, match=r"x.json: \$: not JSON"):
        loads_plan("{", "x.json")


def test_store_history_latest_and_immutability(tmp_path: Path) -> None:
    store = PlanStore(tmp_path / "plans")
    assert store.latest() is None
    for n in (1, 2, 3):
        store.put(plan_n(n))
    assert store.numbers() == [1, 2, 3]
    assert store.latest() == plan_n(3)
    assert store.get(2) == plan_n(2)
    assert store.get(9) is None
    assert [p.number for p in store.history()] == [1, 2, 3]
    assert (tmp_path / "plans" / "plan-0002.json").exists()
    store.put(plan_n(2))  # identical: idempotent
    with pytest.raises(PlanError, match="immutable"):
        store.put(plan_n(3).__class__(2, 0.0, plan_n(3).endpoints))
    assert not [p for p in (tmp_path / "plans").iterdir() if p.name.startswith(".")]


def test_store_refuses_a_bad_newest_plan(tmp_path: Path) -> None:
    store = PlanStore(tmp_path)
    store.put(plan_n(1))
    d = plan_n(2).to_json()
    d["endpoints"][0]["load_balancers"][0]["weight"] = -1
    (tmp_path / "plan-0002.json").write_text(json.dumps(d))
    with pytest.raises(PlanError, match=r"plan-0002.json: \$.endpoints\[0\].load_balancers\[0\].weight"):
        store.latest()
    # and a file whose number disagrees with its name
    (tmp_path / "plan-0003.json").write_text(plan_n(4).dumps())
    with pytest.raises(PlanError, match="file name says 3"):
        store.get(3)


def test_tree_names() -> None:
    e = "dynamodb.us-east-1.api.aws."
    assert tree_of(f"plan-0145.{e}", e) == 145
    assert tree_of(f"az1-lb1.plan-0145.{e}", e) == 145
    assert tree_of(e, e) is None
    assert tree_of("plan-0145.other.api.aws.", e) is None
