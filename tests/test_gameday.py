"""`enactor gameday`'s pure core (issue 14): per-client windows, per-layer table, the
decisive events, and a figure that fits its canvas. No sockets, no processes."""

from __future__ import annotations

import ast
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from enactor.drills import gameday as gd  # noqa: E402
from enactor.drills.timeline import Event  # noqa: E402
from resolver.outage import Outcome  # noqa: E402
from tests.figure_checks import capture, outside_canvas  # noqa: E402

A, E, X = Outcome.ADDRESSES, Outcome.EMPTY, Outcome.ERROR


def _hist(layer: str, client: int, outcomes: str, period: float = 1.0) -> list[gd.ClientSample]:
    code = {"a": A, "e": E, "x": X}
    return [gd.ClientSample(i * period, layer, client, gd.NAMES[client % 2], code[c])
            for i, c in enumerate(outcomes)]


def test_the_core_imports_neither_trio_socket_nor_time():
    tree = ast.parse(Path(gd.__file__).read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not names & {"trio", "socket", "time"}


def test_kept_failing_is_first_good_answer_after_the_last_failure_minus_the_repair():
    h = _hist("resolver", 0, "aaeeexeeaaa")  # last failure at 7, first good after it at 8
    assert gd.kept_failing(h, t_repair=5.0) == 3.0
    assert gd.kept_failing(h, t_repair=9.0) == 0.0  # it had recovered before the repair
    assert gd.kept_failing(_hist("resolver", 0, "aaaa"), 1.0) is None  # never failed
    assert gd.kept_failing(_hist("resolver", 0, "aaee"), 1.0) is None  # never came back


def test_analyse_per_layer():
    samples = (_hist("authd", 0, "aaeeeaaa") + _hist("authd", 1, "aaeeaaaa")
               + _hist("stub", 0, "aaaeeeeeee") + _hist("stub", 1, "aaaaaaaaaa"))
    res = gd.analyse(samples, t_repair=4.5, layers=("authd", "stub"))
    a, s = res["authd"], res["stub"]
    assert (a.clients, a.failed_clients, a.recovered) == (2, 2, 2)
    assert (a.first_failure, a.last_failure) == (2.0, 4.0)
    assert a.max_after_repair == 0.5 and a.median_after_repair == 0.25  # back at 5 and at 4
    assert (s.failed_clients, s.recovered, s.empty_samples, s.max_after_repair) == (1, 1, 7, None)
    text = gd.table(res, 4.5)
    assert "straight at authd" in text and "1/2" in text
    by = gd.analyse_by_name(samples, 4.5, ("authd", "stub"))
    # client 0 asks the regional amazonaws.com name, client 1 the api.aws one
    assert by["stub"]["dynamodb.us-east-1.amazonaws.com."].failed_clients == 1
    assert by["stub"]["dynamodb.us-east-1.api.aws."].failed_clients == 0
    assert by["authd"]["dynamodb.us-east-1.api.aws."].max_after_repair == 0.0
    rows = gd.table(res, 4.5, by).splitlines()
    assert rows[-2].startswith("  dynamodb.us-east-1.amazonaws.com ")


def test_failing_share_steps_with_each_clients_latest_answer():
    samples = _hist("unbound", 0, "aex") + _hist("unbound", 1, "aaa")
    empty, error = gd.failing_share(samples, "unbound", [0.5, 1.5, 2.5])
    assert empty == [0.0, 0.5, 0.0]
    assert error == [0.0, 0.0, 0.5]


EVENTS = [
    Event(1.0, "enactor-a", "flip", "dynamodb.us-east-1.api.aws. A/AAAA: plan-0011 -> plan-0012 (rollback -> plan-0011)"),
    Event(2.0, "enactor-c", "flip", "dynamodb.us-east-1.api.aws. A/AAAA: plan-0012 -> plan-0002 (rollback -> plan-0012)"),
    Event(3.0, "enactor-a", "clean", "deleted plan-0002 (older than plan-0011) of dynamodb.us-east-1.api.aws."),
    Event(3.0, "authd", "empty", "dynamodb.us-east-1.api.aws. A"),
    Event(4.0, "enactor-a", "crash", "crashed (RollbackTargetMissing)"),
    Event(5.0, "enactor-b", "crash", "crashed (RollbackTargetMissing)"),
    Event(9.0, "operator", "pause", "operator: enactor pause"),
    Event(9.5, "operator", "repair", "operator: enactor recover --plan 12"),
    Event(9.5, "authd", "back", "dynamodb.us-east-1.api.aws. A"),
]


def test_decisive_marks_and_authd_windows():
    marks = gd.decisive_marks(EVENTS, lambda t: 10 + t)  # schedule time -> game-day seconds
    assert [(m.t, m.kind) for m in marks] == [
        (12.0, "stale-flip"), (13.0, "deletion"), (14.0, "first-crash"), (15.0, "crash"),
        (19.0, "pause"), (19.5, "repair")]
    assert "plan-0002" in marks[0].text and "enactor-c" in marks[0].text
    assert gd.authd_windows(EVENTS, lambda t: 10 + t, end=30.0) == [(13.0, 19.5)]
    assert gd.authd_windows(EVENTS[:4], lambda t: t, end=30.0) == [(3.0, 30.0)]  # never back


def test_the_figure_fits_its_canvas_and_names_every_mark(tmp_path, monkeypatch):
    saved = capture(monkeypatch)
    samples = []
    for layer in gd.LAYERS:
        for c in range(4):
            samples += _hist(layer, c, "a" * 20 + "e" * (18 + 3 * c) + "x" + "a" * 12, 0.5)
    marks = gd.decisive_marks(EVENTS, lambda t: 10 + t)
    marks.append(gd.Mark(27.5, "repair", "operator: enactor recover --plan 12 (a long label near the end)"))
    res = gd.analyse(samples, 19.5)
    png = tmp_path / "gameday-2025.png"
    gd.write_png(str(png), samples, marks, res, [(13.0, 19.5)], 28.0, "enactor gameday --design 2025",
                 gd.headline("2025", res, True))
    ((_, fig),) = saved
    assert png.stat().st_size > 20_000
    assert outside_canvas(fig) == []
    texts = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    for m in marks:
        assert m.text in texts or m.kind == "crash"  # later crashes: a marker each
    legend = {t.get_text() for lg in fig.legends for t in lg.get_texts()}
    assert {"stale flip", "cleaner deletion", "first crash", "operator's repair on authd",
            "an enactor crashes again (the crash loop)",
            "share of clients getting an empty answer"} <= legend
    assert any(t.startswith("The 2025 defects: authd answers empty") for t in texts)


def test_bad_flags_are_one_line_and_exit_2():
    import subprocess
    import sys

    for argv, want in ((["--layers", "authd,bogus"], "--layers: unknown layer bogus"),
                       (["--speed", "0"], "--speed, --clients and --rate must be positive"),
                       (["--plans", "3"], "--plans must be at least 4")):
        out = subprocess.run([sys.executable, "-m", "enactor", "gameday", *argv],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"enactor gameday: {want}"), out.stderr


def test_a_flat_figure_says_no_client_failed(tmp_path, monkeypatch):
    saved = capture(monkeypatch)
    samples = [s for layer in gd.LAYERS for c in range(2) for s in _hist(layer, c, "a" * 30, 0.5)]
    res = gd.analyse(samples, 10.0)
    marks = [gd.Mark(5.0, "refused", "stale flip refused (enactor-c): it would go backwards"),
             gd.Mark(10.0, "repair", "operator: enactor recover --plan 13")]
    gd.write_png(str(tmp_path / "gameday-fixed.png"), samples, marks, res, [], 15.0,
                 "enactor gameday --design fixed", gd.headline("fixed", res, False))
    ((_, fig),) = saved
    texts = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    assert texts.count("no failure: 60 answers, every one with addresses") == len(gd.LAYERS)
    assert "The fixed design: the same schedule, and no client of any layer ever failed" in texts
    assert outside_canvas(fig) == []
