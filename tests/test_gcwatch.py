"""`authd.gcwatch`: every collection is timed and counted by generation (issue 12)."""

from __future__ import annotations

import gc
import logging

from authd import gcwatch


def test_collections_are_counted_and_full_ones_logged(caplog):
    watch = gcwatch.install()
    try:
        with caplog.at_level(logging.INFO, logger="authd.gc"):
            gc.collect(0)
            gc.collect(2)
    finally:
        watch.uninstall()
    assert watch.counts[0] >= 1 and watch.counts[2] >= 1
    assert watch.total_ms[2] > 0 and watch.longest_ms >= watch.total_ms[2] / watch.counts[2]
    assert any("generation 2 collection took" in r.getMessage() for r in caplog.records)
    seen = watch.counts[2]
    gc.collect(2)
    assert watch.counts[2] == seen  # uninstalled: no longer called
    assert watch not in gc.callbacks
