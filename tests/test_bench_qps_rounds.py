"""bench/_scale_qps.py's rounds: the median per cell, its spread, ratios of medians, the
servers' order per round (the parts that need no server)."""

from bench._scale_qps import (
    MIN_PASS,
    MIXES,
    MixResult,
    median_pass,
    notes,
    pass_seconds,
    report,
    server_order,
    table,
)
from bench.dns import Result


def res(mix: str, server: str, completed: int, cpu: float, qps: float = 1000.0) -> Result:
    return Result(mix, server, f"dnsperf {server} {mix}", qps=qps, completed=completed,
                  cpu_s=cpu, server_cmd=f"serve {server}")


def cell(mix: str, server: str, values: list[int]) -> MixResult:
    passes = [res(mix, server, v, 1.0, qps=v / 2) for v in values]
    return MixResult(mix, server, median_pass(passes), passes)


def test_median_spread_and_the_median_pass():
    r = cell("cached", "authd", [300, 100, 200])
    assert r.per_cpu_second == 200
    assert r.result.per_cpu_second == 200  # readers of .result see the median pass
    assert r.spread == (100, 300)
    assert r.qps == 100
    even = cell("cached", "nsd", [100, 400, 200, 300])
    assert even.per_cpu_second == 250  # the exact median
    assert even.result.per_cpu_second == 200  # the lower middle pass
    one = MixResult("cached", "knot", res("cached", "knot", 50, 1.0))
    assert one.passes == [one.result] and one.spread == (50, 50)


def test_pass_seconds_shares_the_duration_out_with_a_floor():
    assert pass_seconds(30, 3) == 10
    assert pass_seconds(10, 3) == 3.3
    assert pass_seconds(6, 3) == MIN_PASS
    assert pass_seconds(20, 3) == 6.7
    assert pass_seconds(10, 1) == 10


def test_the_order_rotates_so_each_server_goes_first_in_turn():
    servers = ["authd", "nsd", "knot"]
    orders = [server_order(servers, r) for r in range(3)]
    assert [o[0] for o in orders] == servers
    assert all(sorted(o) == sorted(servers) for o in orders)
    assert server_order(["authd", "nsd"], 1) == ["nsd", "authd"]


def test_report_shows_medians_spreads_and_ratios_of_medians():
    results = []
    for mix in MIXES:
        results.append(cell(mix, "authd", [80, 90, 160]))  # mean 110, median 90
        results.append(cell(mix, "nsd", [100, 120, 100]))  # median 100
    lines = report(results, 1000, 9)
    row = next(line for line in lines if line.startswith("| realistic mix |"))
    assert "| 90 (80-160) | 100 (100-120) | 0.90x |" in row
    goal = next(line for line in lines if "realistic mix ≥" in line)
    assert goal.startswith("- met") and "0.90×" in goal and "0.67×-1.60×" in goal
    assert any("3 rounds, each a 3 s pass" in line for line in lines)
    shown = table(results, 1000, 9)
    assert shown.startswith("| mix |") and "Goals (issue 12):" in shown
    assert "Commands" not in shown
    # the notes read the medians too
    text = " ".join(notes(results, [("recvfrom", 50.0), ("C mmsg", 180.0)], None))
    assert "authd's cached answers (90)" in text and "0.90× NSD" in text
