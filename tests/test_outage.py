"""`enactor outage`: the 2025 schedule with real processes and real dig, and in-process.

The real-process runs start authd (DNS + control API), the planner and three enactors as
processes on ephemeral loopback ports and take ~20 s each on a quiet machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from enactor.checker.schedule import load_schedule, schedule_2025
from enactor.drills.outage import run_outage

REPO = Path(__file__).resolve().parent.parent
DUAL = "dynamodb.us-east-1.api.aws."


def need_dig() -> None:
    if shutil.which("dig") is None:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")


@pytest.mark.realtime
@pytest.mark.slow
def test_real_processes_2025_design_ends_with_noerror_and_zero_answers(tmp_path: Path) -> None:
    need_dig()
    res = run_outage("2025", schedule_2025(12), png=str(tmp_path / "t.png"))
    s = res.summary
    assert s["empty_at_end"], s
    for t in ("A", "AAAA"):
        assert s["final_answers"][f"{DUAL} {t}"] == 0
        assert s["final_rcodes"][f"{DUAL} {t}"] == "NOERROR"
        last = [text for _, k, text in res.digs if k == f"{DUAL} {t}"][-1]
        assert "status: NOERROR" in last and "ANSWER: 0" in last  # real dig said so
    # Before the race, real dig got answers.
    first = [text for _, k, text in res.digs if k == f"{DUAL} A"][0]
    assert "ANSWER: 1" in first
    # Every enactor crashed on the rollback update; none made progress.
    assert all(a["crashes"] >= 1 for a in s["enactors"].values()), s["enactors"]
    assert all("RollbackTargetMissing" in a["last_error"] for a in s["enactors"].values() if a["last_error"])
    assert s["final_active_plan"] == 2
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    # the exact windows, for the talk's name and for the regional endpoint AWS's summary names
    assert "EMPTY ANSWERS for dynamodb.us-east-1.api.aws A from" in res.report
    assert "EMPTY ANSWERS for dynamodb.us-east-1.amazonaws.com A from" in res.report
    assert s["final_answers"]["dynamodb.us-east-1.amazonaws.com. A"] == 0


@pytest.mark.realtime
@pytest.mark.slow
def test_real_processes_fixed_design_never_goes_empty(tmp_path: Path) -> None:
    need_dig()
    res = run_outage("fixed", schedule_2025(12), png=str(tmp_path / "t.png"))
    s = res.summary
    assert not s["ever_empty"], s["empty_answer_windows"]
    assert s["samples"] >= 20
    assert all("ANSWER: 1" in text for _, _, text in res.digs)
    assert s["final_active_plan"] == 13
    assert all(a["crashes"] == 0 and a["state"] == "IDLE" for a in s["enactors"].values())
    assert "refusing to go backwards" in res.report


@pytest.mark.parametrize("defects, typo", [("2025", False), ("fixed", False), ("2025", True), ("fixed", True)])
def test_inprocess_summary_and_png(tmp_path: Path, defects: str, typo: bool) -> None:
    res = run_outage(defects, schedule_2025(12, typo=typo), inprocess=True, png=str(tmp_path / "x.png"))
    s = res.summary
    assert s["empty_at_end"] is (defects == "2025")
    assert s["ever_empty"] is (defects == "2025" or typo)  # a typo empties the answers until repaired
    assert (tmp_path / "x.png").stat().st_size > 10_000
    json.dumps(s)  # machine-readable


def test_schedule_file_round_trip_and_cli_replay(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    out = subprocess.run([sys.executable, "-m", "enactor", "outage", "--write-schedule", str(f)],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    sched = load_schedule(f)
    assert sched.to_json() == schedule_2025(12).to_json()
    out = subprocess.run([sys.executable, "-m", "enactor", "outage", "--schedule", str(f), "--inprocess",
                          "--json", "--png", str(tmp_path / "p.png")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["empty_at_end"] is True


def test_bad_schedule_is_refused_with_its_path(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"schema": 1, "actors": ["enactor-a"], "steps": [{"do": "step", "actor": "enactor-z"}]}))
    out = subprocess.run([sys.executable, "-m", "enactor", "outage", "--schedule", str(f), "--inprocess"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "bad.json: $.steps[0].actor: 'enactor-z' is not in $.actors" in out.stderr


@pytest.mark.slow
def test_checker_counterexample_replays_in_process_and_against_real_processes(tmp_path: Path) -> None:
    """`enactor check` writes its shortest counterexample as a schedule; `enactor outage
    --schedule` replays it (defects and endpoints taken from the file) and shows the outage."""
    cx = tmp_path / "cx.json"
    out = subprocess.run([sys.executable, "-m", "enactor", "check", "--defects", "2025", "--quiet",
                          "--no-timeline", "--save", str(cx)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert cx.exists(), out.stdout + out.stderr
    sched = load_schedule(cx)
    res = run_outage(None, sched, inprocess=True)
    assert res.summary["defects"] == "2025" and res.summary["ever_empty"]
    if shutil.which("dig") is None:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")
    real = run_outage(None, sched)
    assert real.summary["ever_empty"], real.report
    assert any("ANSWER: 0" in text for _, k, text in real.digs if k == f"{DUAL} A")


@pytest.mark.realtime
@pytest.mark.slow
def test_real_enactor_killed_while_holding_the_lock_others_converge(tmp_path: Path) -> None:
    """SIGKILL enactor-a right after its build batch (it holds the lock, the tree is half
    done, nothing flipped); the lock expires, b and c take over and finish; a restarts with
    no memory, adopts nothing stale, and agrees. Real dig never comes back empty."""
    need_dig()
    from enactor.checker.schedule import Schedule

    steps = [
        {"do": "sample"}, {"do": "plan"},
        {"do": "step", "actor": "enactor-a", "until": "build"},
        {"do": "kill", "actor": "enactor-a"}, {"do": "sample"},
        {"do": "plan"},
        {"do": "run", "seconds": 45}, {"do": "sample"},
        {"do": "restart", "actor": "enactor-a"},
        {"do": "run", "seconds": 10}, {"do": "sample"},
    ]
    sched = Schedule(["enactor-a", "enactor-b", "enactor-c"], steps, "kill a holder mid-build",
                     extra={"lock_ttl": 10})
    res = run_outage("fixed", sched, png=str(tmp_path / "k.png"))
    s = res.summary
    assert not s["ever_empty"], res.report
    assert s["final_active_plan"] == 3
    assert all(text.count("ANSWER: 1") == 1 for _, _, text in res.digs)
    assert "KILL" in res.report and "took the lock (expired holder)" in res.report
    assert all(a["crashes"] == 0 for a in s["enactors"].values())
