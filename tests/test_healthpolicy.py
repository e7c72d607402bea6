"""The pure health-check policy (`authd.health.healthpolicy`) and configuration (`authd.health.healthcheck`):
property tests with hypothesis, Route 53's rules case by case."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import authd.health.healthcheck
import authd.health.healthpolicy
from authd.health import healthcheck as H
from authd.health import healthpolicy as P


def history(results: list[bool]) -> list[P.Observation]:
    return [P.Observation(at=float(i + 1), ok=ok, detail="Success" if ok else "Failure")
            for i, ok in enumerate(results)]


def statuses(results: list[bool], threshold: int) -> list[bool]:
    """The status after each result."""
    state, out = P.new_status(0.0), []
    for obs in history(results):
        state, _ = P.observe(state, obs, threshold)
        out.append(state.healthy)
    return out


results_st = st.lists(st.booleans(), max_size=60)
threshold_st = st.integers(min_value=1, max_value=10)


@given(results_st, threshold_st)
def test_a_change_needs_threshold_consecutive_contradicting_results(results, threshold):
    """Route 53: healthy -> unhealthy after FailureThreshold consecutive failures, and back
    after FailureThreshold consecutive successes; never otherwise."""
    seen = statuses(results, threshold)
    before = [True, *seen][:len(seen)]
    for i, (prev, now) in enumerate(zip(before, seen, strict=True)):
        if prev != now:
            assert i + 1 >= threshold
            assert results[i + 1 - threshold:i + 1] == [now] * threshold


@given(results_st, threshold_st)
def test_threshold_agreeing_results_decide_the_status(results, threshold):
    seen = statuses(results, threshold)
    for i in range(threshold - 1, len(results)):
        window = results[i + 1 - threshold:i + 1]
        if all(window) or not any(window):
            assert seen[i] == window[0]


@given(results_st)
def test_threshold_one_follows_the_last_result(results):
    assert statuses(results, 1) == results


@given(results_st, threshold_st)
def test_replay_is_the_fold_and_transitions_match_changes(results, threshold):
    state, transitions = P.new_status(0.0), []
    for obs in history(results):
        state, t = P.observe(state, obs, threshold)
        if t is not None:
            transitions.append(t)
            assert t.count == threshold and state.since == t.at
    assert P.replay(history(results), threshold).healthy == state.healthy
    seen = statuses(results, threshold)
    flips = sum(1 for a, b in zip([True, *seen], seen, strict=False) if a != b)
    assert len(transitions) == flips


def test_new_check_is_healthy_until_there_is_enough_data():
    state, t = P.observe(P.new_status(5.0), P.Observation(6.0, False, "Failure: refused"), 3)
    assert state.healthy and t is None and state.failures == 1
    state, t = P.observe(state, P.Observation(7.0, False, "Failure: refused"), 3)
    state, t = P.observe(state, P.Observation(8.0, False, "Failure: refused"), 3)
    assert not state.healthy and t == P.Transition(False, 8.0, 3, "Failure: refused")
    assert state.last_failure is not None and state.last_failure.at == 8.0


def test_a_success_resets_the_failure_streak():
    state = P.new_status(0.0)
    for at, ok in ((1, False), (2, False), (3, True), (4, False), (5, False)):
        state, _ = P.observe(state, P.Observation(at, ok, ""), 3)
    assert state.healthy and state.streak == 2


@given(st.booleans(), st.booleans(), st.booleans())
def test_effective_disabled_is_healthy_then_inverted_flips(measured, inverted, disabled):
    got = P.effective(measured, inverted=inverted, disabled=disabled)
    base = True if disabled else measured
    assert got == (base != inverted)


def test_disabled_and_inverted_is_down_as_octodns_relies_on():
    assert P.effective(True, inverted=True, disabled=True) is False
    assert P.effective(False, inverted=False, disabled=True) is True


@given(st.lists(st.sampled_from([True, False, None]), max_size=12), st.integers(0, 13))
def test_calculated_counts_healthy_children(children, threshold):
    got = P.calculated(children, threshold, inverted=False, disabled=False)
    assert got == (sum(1 for c in children if c) >= threshold)
    assert P.calculated(children, threshold, inverted=True, disabled=False) == (not got)
    assert P.calculated(children, 0, inverted=False, disabled=False) is True
    assert ("Success" if got else "Failure") in P.calculated_detail(children, threshold)


# --- configuration ---------------------------------------------------------------------------


def test_defaults_filled_as_route53_returns_them():
    cfg = H.parse_config({"Type": "HTTP", "IPAddress": "127.0.0.1"})
    assert cfg.to_doc() == {
        "IPAddress": "127.0.0.1", "Port": 80, "Type": "HTTP", "RequestInterval": 30,
        "FailureThreshold": 3, "MeasureLatency": False, "Inverted": False, "Disabled": False,
    }
    https = H.parse_config({"Type": "HTTPS", "FullyQualifiedDomainName": "localhost"})
    assert https.port == 443 and https.enable_sni is True
    assert H.HealthCheckConfig.from_doc(https.to_doc()) == https


def test_ipv6_is_stored_compressed():
    assert H.parse_config({"Type": "TCP", "IPAddress": "0:0:0:0:0:0:0:1", "Port": "1"}).ip_address == "::1"


@pytest.mark.parametrize(("raw", "fragment"), [
    ({}, "Type is required"),
    ({"Type": "FTP"}, "Type must be one of"),
    ({"Type": "CLOUDWATCH_METRIC"}, "CLOUDWATCH_METRIC are not supported"),
    ({"Type": "RECOVERY_CONTROL"}, "RECOVERY_CONTROL are not supported"),
    ({"Type": "TCP", "IPAddress": "127.0.0.1"}, "Port is required for TCP"),
    ({"Type": "TCP", "IPAddress": "127.0.0.1", "Port": "1", "ResourcePath": "/x"}, "ResourcePath is not valid for TCP"),
    ({"Type": "HTTP"}, "Either IPAddress or FullyQualifiedDomainName is required"),
    ({"Type": "HTTP", "IPAddress": "300.1.1.1"}, "Invalid IP address '300.1.1.1'"),
    ({"Type": "HTTP", "IPAddress": "127.0.0.1", "RequestInterval": "20"}, "RequestInterval must be 10 or 30"),
    ({"Type": "HTTP", "IPAddress": "127.0.0.1", "FailureThreshold": "11"}, "FailureThreshold must be between 1 and 10"),
    ({"Type": "HTTP", "IPAddress": "127.0.0.1", "Port": "0"}, "Port must be between 1 and 65535"),
    ({"Type": "HTTP_STR_MATCH", "IPAddress": "127.0.0.1"}, "SearchString is required for HTTP_STR_MATCH"),
    ({"Type": "HTTP", "IPAddress": "127.0.0.1", "SearchString": "x"}, "SearchString is valid only"),
    ({"Type": "HTTP", "IPAddress": "127.0.0.1", "ResourcePath": "health"}, "must begin with a slash"),
    ({"Type": "HTTP", "IPAddress": "127.0.0.1", "Inverted": "maybe"}, "Inverted must be true or false"),
    ({"Type": "HTTP", "IPAddress": "127.0.0.1", "HealthThreshold": "1"}, "valid only for CALCULATED"),
    ({"Type": "CALCULATED", "IPAddress": "127.0.0.1"}, "IPAddress is not valid for CALCULATED"),
    ({"Type": "CALCULATED", "RequestInterval": "10"}, "RequestInterval is not valid for CALCULATED"),
    ({"Type": "CALCULATED", "HealthThreshold": "257"}, "HealthThreshold must be between 0 and 256"),
    ({"Type": "CALCULATED", "ChildHealthChecks": ["a", "a"]}, "more than once"),
    ({"Type": "TCP", "IPAddress": "127.0.0.1", "Port": "1", "Regions": ["us-east-1"]}, "Regions is not supported by authd"),
    ({"Type": "TCP", "AlarmIdentifier": {"Region": "us-east-1", "Name": "a"}}, "AlarmIdentifier is not supported"),
    ({"Type": "TCP", "Colour": "red"}, "Unknown or unsupported element Colour"),
])
def test_refused_with_a_clear_message(raw, fragment):
    with pytest.raises(H.HealthCheckInputError) as err:
        H.parse_config(raw)
    assert err.value.code == "InvalidInput"
    assert fragment in "; ".join(err.value.messages)


def test_update_keeps_what_is_not_given_and_resets_what_is_named():
    cfg = H.parse_config({"Type": "HTTP", "IPAddress": "127.0.0.1", "ResourcePath": "/h",
                          "FullyQualifiedDomainName": "a.test", "FailureThreshold": "2"})
    new = H.parse_update(cfg, {"Port": "8080", "Inverted": "true"}, ["ResourcePath"])
    assert (new.port, new.inverted, new.resource_path, new.fqdn, new.failure_threshold) == \
        (8080, True, None, "a.test", 2)
    for raw, fragment in (({"RequestInterval": "10"}, "can't be changed"), ({"Type": "TCP"}, "can't be changed"),
                          ({"MeasureLatency": "true"}, "can't be changed")):
        with pytest.raises(H.HealthCheckInputError, match=fragment):
            H.parse_update(cfg, raw, [])
    with pytest.raises(H.HealthCheckInputError, match="not one of"):
        H.parse_update(cfg, {}, ["Port"])
    with pytest.raises(H.HealthCheckInputError, match="Either IPAddress or FullyQualifiedDomainName"):
        H.parse_update(H.parse_config({"Type": "HTTP", "FullyQualifiedDomainName": "a.test"}), {},
                       ["FullyQualifiedDomainName"])


def test_ids_are_readable_stable_and_short():
    a = H.health_check_id(7, "0000:A:www.example.com.:abc")
    assert a == H.health_check_id(7, "0000:A:www.example.com.:abc")
    assert a.startswith("hc-0007-") and len(a) <= 64 and H.id_number(a) == 7
    assert H.health_check_id(7, "other") != a
    assert H.id_number("3f2e-uuid-like") == 0


@pytest.mark.parametrize("module", [authd.health.healthpolicy, authd.health.healthcheck])
def test_pure_modules_import_no_io(module):
    tree = ast.parse(Path(module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"trio", "socket", "time", "asyncio", "httpx"}


# --- configuration: properties --------------------------------------------------------------

_text = st.text(alphabet="ab9/.: -\u00e9", max_size=12)
_member_values = {
    "Type": st.sampled_from([*H.TYPES, "CLOUDWATCH_METRIC", "FTP", ""]),
    "IPAddress": st.one_of(st.sampled_from(["127.0.0.1", "::1", "0:0:0:0:0:0:0:1", "10.0.0.1"]), _text),
    "Port": st.one_of(st.integers(-5, 70000).map(str), _text),
    "ResourcePath": st.one_of(st.sampled_from(["/", "/health", "x"]), _text),
    "FullyQualifiedDomainName": st.one_of(st.sampled_from(["localhost", "www.example.test"]), _text),
    "SearchString": st.one_of(st.just("ok"), _text),
    "RequestInterval": st.sampled_from(["10", "30", "20", "x"]),
    "FailureThreshold": st.integers(-1, 12).map(str),
    "MeasureLatency": st.sampled_from(["true", "false", "yes"]),
    "Inverted": st.sampled_from(["true", "false"]),
    "Disabled": st.sampled_from(["true", "false"]),
    "EnableSNI": st.sampled_from(["true", "false"]),
    "HealthThreshold": st.integers(-1, 300).map(str),
    "ChildHealthChecks": st.lists(st.sampled_from(["hc-0001-a", "hc-0002-b", "hc-0003-c"]), max_size=3),
}
raw_configs = st.fixed_dictionaries({}, optional=_member_values)


def _as_request(doc: dict) -> dict:
    """A stored/echoed config as the request would carry it (text members, lists as lists)."""
    return {k: v if isinstance(v, list) else (str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in doc.items()}


@given(raw_configs)
def test_any_input_is_accepted_or_refused_with_invalid_input(raw):
    try:
        cfg = H.parse_config(raw)
    except H.HealthCheckInputError as exc:
        assert exc.code == "InvalidInput" and exc.messages and all(exc.messages)
        return
    assert cfg.type in H.TYPES


_bools = st.sampled_from(["true", "false"])


@st.composite
def valid_configs(draw) -> dict:
    htype = draw(st.sampled_from(H.TYPES))
    raw: dict = {"Type": htype}
    opt = {"Inverted": _bools, "Disabled": _bools}
    if htype == "CALCULATED":
        opt |= {"HealthThreshold": st.integers(0, 256).map(str),
                "ChildHealthChecks": st.lists(st.sampled_from(["hc-0001-a", "hc-0002-b"]), unique=True)}
    else:
        target = draw(st.sampled_from(["ip", "fqdn", "both"]))
        if target in ("ip", "both"):
            raw["IPAddress"] = draw(st.sampled_from(["127.0.0.1", "::1", "0:0:0:0:0:0:0:1", "127.1.2.3"]))
        if target in ("fqdn", "both"):
            raw["FullyQualifiedDomainName"] = draw(st.sampled_from(["localhost", "www.example.test"]))
        if htype == "TCP":
            raw["Port"] = str(draw(st.integers(1, 65535)))
        else:
            opt |= {"Port": st.integers(1, 65535).map(str), "ResourcePath": st.sampled_from(["/", "/health", ""]),
                    "EnableSNI": _bools}
        if htype in H.STR_MATCH_TYPES:
            raw["SearchString"] = draw(st.sampled_from(["ok", "all good", "é"]))
        opt |= {"RequestInterval": st.sampled_from(["10", "30"]), "FailureThreshold": st.integers(1, 10).map(str),
                "MeasureLatency": _bools}
    raw |= draw(st.fixed_dictionaries({}, optional=opt))
    return raw


@given(valid_configs())
def test_the_echo_read_back_is_the_same_config(raw):
    """What Get/List return, sent again, makes the same check: idempotent CreateHealthCheck
    and clients that compare what they sent with what they read (octoDNS, Terraform) agree."""
    cfg = H.parse_config(raw)  # every generated config is valid
    again = H.parse_config(_as_request(cfg.to_doc()))
    assert again == cfg and again.to_doc() == cfg.to_doc()
    assert H.HealthCheckConfig.from_doc(cfg.to_doc()) == cfg
