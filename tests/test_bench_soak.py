"""The soak's memory bound tells bounded caches filling (then flat) from a leak (bench/soak.py),
and the caches it found growing stay the sizes their comments give."""

from __future__ import annotations

from authd.dns import answer
from authd.dns.index import CACHE_LIMIT
from authd.model import records
from authd.model.records import RecordSet
from bench.soak import memory_verdict

MB = 1024


def samples(rss_mb, minutes: float = 10.0, every: float = 5.0):
    return [(t * every, int(rss_mb(t * every) * MB)) for t in range(int(minutes * 60 / every))]


def test_growth_into_a_cache_that_then_stays_flat_passes():
    # 50 MB rising to 80 MB over the first two minutes (caches filling), then flat
    v = memory_verdict(samples(lambda t: 50 + 30 * min(t, 120) / 120), 600, 180)
    assert v["memory_ok"] and v["rss_mb_warm"] == 80.0 and abs(v["rss_mb_per_min_last_third"]) < 0.01
    # the earlier measure (60 s against the end) would have failed the same run
    assert v["rss_growth_since_60s"] > 0.10


def test_a_steady_leak_fails_even_a_small_one():
    v = memory_verdict(samples(lambda t: 50 + 2 * t / 60), 600, 180)  # 2 MB a minute
    assert not v["memory_ok"] and 1.9 < v["rss_mb_per_min_last_third"] < 2.1
    assert v["rss_warm_at_s"] == 180


def test_the_warm_up_is_at_most_a_third_of_a_short_run():
    v = memory_verdict(samples(lambda t: 50.0, minutes=2), 120, 180)
    assert v["rss_warm_at_s"] == 40 and v["memory_ok"] and v["rss_growth"] == 0


def test_soa_texts_are_not_kept_with_the_values_that_repeat():
    records._cached_value.cache_clear()
    for serial in range(100):
        RecordSet("soak.test.", "SOA", 300, (f"ns.soak.test. h.soak.test. {serial} 1 1 1 1",))
    assert records._cached_value.cache_info().currsize == 0
    assert records._soa_value.cache_info().currsize <= 16
    RecordSet("soak.test.", "TXT", 300, ('"kept"',))
    assert records._cached_value.cache_info().currsize == 1
    assert records.canonical_value("A", "192.0.2.1") == "192.0.2.1"  # dotted quads: no entry
    assert records._cached_value.cache_info().currsize == 1


def test_compiled_soas_do_not_push_out_other_sets():
    answer._compiled_set.cache_clear()
    txt = RecordSet("soak.test.", "TXT", 300, ('"kept"',))
    first = answer._compiled(txt)
    for serial in range(200):
        answer._compiled(RecordSet("soak.test.", "SOA", 300, (f"ns.soak.test. h.soak.test. {serial} 1 1 1 1",)))
    assert answer._compiled(txt) is first
    assert answer._compiled_soa.cache_info().currsize <= 64


def test_cache_sizes_are_the_ones_documented():
    assert records.canonical_name.cache_info().maxsize == 1024
    assert records._cached_value.cache_info().maxsize == 512
    assert answer._owner.cache_info().maxsize == 1024
    assert answer._compiled_set.cache_info().maxsize == 1024
    assert CACHE_LIMIT == 25_000
