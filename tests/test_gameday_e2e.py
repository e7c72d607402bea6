"""A short `enactor gameday` over real processes (issue 14): authd, the planner, three
enactors, our resolver, Unbound and a stub cache on loopback, clients sampling through each.

2025: authd goes empty (its exact record, confirmed by real dig), clients of every layer fail
and all of them recover after the operator's repair. Fixed: the same schedule, and no client
of any layer ever fails. Scaled (`speed` 8, 6 plans, TTLs of a few seconds, two clients per
layer) so both runs take about 90 s of CI time.
"""

from __future__ import annotations

import json
import shutil

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402

from enactor.drills.gameday import (
    LAYERS,  # noqa: E402
    Settings,
)
from enactor.drills.gameday_run import run_gameday  # noqa: E402
from tests.figure_checks import capture, outside_canvas  # noqa: E402
from tests.session_helpers import assert_session_empty, interrupt_once_busy  # noqa: E402

pytestmark = [pytest.mark.realtime, pytest.mark.slow]


def _settings(design: str) -> Settings:
    return Settings(design=design, speed=8.0, clients=2, rate=4.0, record_ttl=2, negative_ttl=3,
                    stub_negative_ttl=2, warmup=3.0, plans=6)


@pytest.fixture(autouse=True)
def _tools():
    for tool, package in (("dig", "bind9-dnsutils"), ("unbound", "unbound")):
        if shutil.which(tool) is None and not (tool == "unbound" and shutil.which("/usr/sbin/unbound")):
            pytest.skip(f"{tool} not installed (Debian package {package})")


def test_gameday_2025_every_layer_fails_and_recovers_after_the_repair(tmp_path, monkeypatch):
    saved = capture(monkeypatch)
    s = _settings("2025")
    png = tmp_path / "gameday-2025.png"
    res = run_gameday(s, png=str(png))
    doc = json.loads(json.dumps(res.to_json()))  # what --json prints
    # authd itself answered NOERROR / ANSWER 0, and real dig said so at each transition
    assert doc["authd_ever_empty"] and res.authd_spans
    assert doc["authd_transitions_checked_by_dig"] > 0 and doc["authd_empty_confirmed_by_dig"]
    kinds = [m.kind for m in res.marks]
    for kind in ("stale-flip", "deletion", "first-crash", "pause", "repair"):
        assert kind in kinds, kinds
    assert any(st["crashes"] for st in doc["enactors"].values())
    # the runbook's check after `enactor recover`: every endpoint answers, still paused
    assert len(doc["status_after_repair"]) == 2
    for row in doc["status_after_repair"]:
        assert row["active"] == f"plan-{s.plans:04d}" and row["lock"].startswith("PAUSED"), row
        assert all(n > 0 for n in row["answers"].values()), row
    for layer in LAYERS:
        r = res.results[layer]
        assert r.clients == s.clients and r.samples > 10 * s.clients, r
        assert r.failed_clients == s.clients and r.empty_samples > 0, r
        assert r.first_failure is not None and r.first_failure >= res.authd_spans[0][0] - 0.5, r
        assert r.recovered == s.clients, r  # every client got addresses again after the repair
        assert r.max_after_repair is not None
        # caches hold the empty answer for at most their TTLs past the repair (plus sampling)
        assert r.max_after_repair <= s.negative_ttl + s.stub_negative_ttl + s.record_ttl + 2.0, r
    # no cache: back with the records
    late = [(x.t, x.name) for x in res.samples if x.layer == "authd" and x.failed and x.t > res.t_repair]
    # both endpoint names went empty for every layer: the regional one, as AWS's summary says
    for layer, names in doc["layers_by_name"].items():
        assert set(names) == {"dynamodb.us-east-1.amazonaws.com.", "dynamodb.us-east-1.api.aws."}, layer
        for name, r in names.items():
            assert r["clients"] > 0 and r["failed_clients"] == r["clients"], (layer, name, r)
    assert res.results["authd"].max_after_repair <= 1.0, (res.t_repair, res.authd_spans, late)
    ((_, fig),) = [(p, f) for p, f in saved if str(p) == str(png)]
    assert outside_canvas(fig) == []


def test_gameday_fixed_no_client_ever_fails():
    s = _settings("fixed")
    res = run_gameday(s)
    assert not res.to_json()["authd_ever_empty"] and res.authd_spans == []
    assert "refused" in [m.kind for m in res.marks]  # the fenced flip said no to plan-0002
    for layer in LAYERS:
        r = res.results[layer]
        assert r.samples > 10 * s.clients, r
        assert (r.failed_clients, r.empty_samples, r.error_samples) == (0, 0, 0), r


def test_gameday_stopped_midway_stops_every_process(tmp_path):
    """Ctrl-C in the middle of the game day: one line, exit 0, and no authd, enactor,
    resolver or Unbound of it left running (everything it started was in its session)."""
    proc, err = interrupt_once_busy(["enactor", "gameday", "--verbose", "--clients", "1",
                                     "--png", str(tmp_path / "g.png")], tmp_path)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "enactor gameday: stopped on SIGINT"
    assert_session_empty(proc.pid)
