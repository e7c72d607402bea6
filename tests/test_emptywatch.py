"""The empty-answer window, measured exactly (issue 14, problem 8): authd's serving index says
when each watched name lost its last answer and when it got one back; the outage timeline
reports those times, and its dig samples confirm them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from authd.dns.emptywatch import EmptyWatch, Transition, parse_watch
from authd.store.contract import Action, Change
from enactor.checker.schedule import schedule_2025
from enactor.checker.sim import DnsView
from enactor.checker.testing import DUAL, LEGACY, seeded_store
from enactor.drills.outage import run_outage


def test_watch_reports_the_change_that_empties_and_the_one_that_repairs() -> None:
    store = seeded_store()
    view = DnsView(store)
    watch = EmptyWatch([(DUAL, "A"), (LEGACY, "A")])
    assert watch.check(view.index, 0.0, view.index.seq) == []  # answering: nothing to report
    zid = store.find_zone_by_name("api.aws.").id
    alias = store.get_record_sets(zid, DUAL, "A")
    store.change_batch(zid, [Change(Action.DELETE, rs) for rs in alias], "typo")
    view.answers(DUAL, "A")  # catch the index up
    got = watch.check(view.index, 5.0, view.index.seq)
    assert got == [Transition(5.0, DUAL, "A", True, view.index.seq)]
    assert watch.check(view.index, 6.0, view.index.seq) == []  # still empty: no new transition
    store.change_batch(zid, [Change(Action.CREATE, rs) for rs in alias], "repair")
    view.answers(DUAL, "A")
    back = watch.check(view.index, 7.5, view.index.seq)
    assert [(t.t, t.empty) for t in back] == [(7.5, False)]
    assert Transition.from_line(back[0].to_line()) == back[0]


def test_watch_names_parse() -> None:
    assert parse_watch("dynamodb.us-east-1.api.aws:aaaa") == (DUAL, "AAAA")
    with pytest.raises(ValueError, match="NAME:TYPE"):
        parse_watch("dynamodb.us-east-1.api.aws")


def _check_exact(summary: dict, report: str) -> None:
    exact = summary["exact_empty_windows"]
    assert set(exact) == {f"{DUAL} A", f"{DUAL} AAAA", f"{LEGACY} A"}
    for key, (w,) in exact.items():
        # the fixed design repairs the typo within a few steps: well under a second of schedule
        # time, where the 5 s dig samples could only say "5.0 s"
        assert w["end"] is not None and 0 < w["seconds"] < 1.0, (key, w)
    assert summary["samples_agree"] is True
    assert "exact: authd's serving index" in report and "dig samples confirm" in report


def test_inprocess_typo_window_is_exact_and_samples_confirm_it(tmp_path: Path) -> None:
    res = run_outage("fixed", schedule_2025(6, typo=True), inprocess=True)
    _check_exact(res.summary, res.report)


@pytest.mark.realtime
@pytest.mark.slow
def test_real_processes_report_the_same_exact_window(tmp_path: Path) -> None:
    if shutil.which("dig") is None:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")
    sched = schedule_2025(6, typo=True)
    real = run_outage("fixed", sched)
    _check_exact(real.summary, real.report)
    # a real dig right after each transition: 3 names went empty and came back
    assert real.summary["transitions_checked_by_dig"] == 6
    assert real.summary["transitions_confirmed_by_dig"] is True
    inproc = run_outage("fixed", sched, inprocess=True)
    assert real.summary["exact_empty_windows"] == inproc.summary["exact_empty_windows"]


def test_2025_run_reports_when_the_alias_dangled_and_dig_samples_agree() -> None:
    res = run_outage("2025", schedule_2025(6), inprocess=True)
    s = res.summary
    (w,) = s["exact_empty_windows"][f"{DUAL} A"]
    assert w["end"] is None  # nothing repairs it in the 2025 design
    first_empty = next(smp for smp in res_samples(res) if smp[1] == 0)
    assert w["start"].startswith(first_empty[0])  # the sample right after the cleaner
    assert s["samples_agree"] is True and s["samples"] > 5


def res_samples(res) -> list[tuple[str, int]]:
    """(time text, answer count for the dual-stack A) of every sample, from the report."""
    out = []
    for line in res.report.splitlines():
        if " INDEX " in line or " DIG " in line:
            count = int(line.split("dynamodb.us-east-1.api.aws A:")[1].split("ANSWER ")[1].split()[0])
            out.append((line.split()[0], count))
    return out
