"""`bench/_scale_insync.py` end to end on a tiny zone: a real `authd serve` with a store and the
change API, batches over HTTP with SigV4 timed to INSYNC, and the DNS checks after each batch,
which must catch a server that did not apply a batch."""

from __future__ import annotations

from pathlib import Path

from bench import _scale_insync
from bench.scale import ORIGIN, generate_zone


def tiny_zone(tmp_path: Path, names: int = 300) -> tuple[Path, Path]:
    zdir = tmp_path / "zones"
    zdir.mkdir()
    zfile = zdir / f"{ORIGIN}zone"
    zfile.write_text(generate_zone(names))
    return zdir, zfile


def test_batches_on_a_tiny_zone_reach_insync_and_answer_their_new_state(tmp_path):
    zdir, zfile = tiny_zone(tmp_path)
    result = _scale_insync.run(zdir, zfile, ORIGIN, tmp_path, batches=2, changes=100, limit=60,
                               warm_names=200)
    assert result.store_was_new and (tmp_path / "insync.sqlite3").exists()
    assert [b.action for b in result.batches] == ["CREATE", "DELETE", "UPSERT", "UPSERT"]
    assert not _scale_insync.failed(result), [b.wrong for b in result.batches]
    assert all(0 < b.insync_ms < 30_000 and b.cpu_s >= 0 for b in result.batches)
    summary = _scale_insync.summary(result)
    assert set(summary) == {"create/delete", "upsert"}
    assert summary["upsert"]["n"] == 2 and summary["create/delete"]["p99"] >= summary["create/delete"]["p50"]
    text = "\n".join(_scale_insync.report(result))
    assert text.startswith(_scale_insync.SECTION)
    assert "INSYNC p99 of a 100-change batch under 50 ms on the 300-name zone, upsert" in text
    assert "UPSERT of 50 existing A owners" in text  # an UPSERT counts twice (Route 53)
    assert str(tmp_path) not in text and "$WORK" in text
    # a big import's log is checkpointed and restarted before the change API opens
    # (`Seeding.run`, `SQLiteStore.reset_log(big_only=True)`; tests/test_checkpointer.py);
    # this one's is far under `LOG_LIMIT`, so it is left to the idle thread
    log = (tmp_path / "authd-insync.log").read_text()
    assert "store seeded:" in log and "checkpointed before the change API opens" not in log

    # the same store again: a restart on it (as `bench scale` reuses the authd-store load's)
    again = _scale_insync.run(zdir, zfile, ORIGIN, tmp_path, batches=2, changes=10, limit=60,
                              store=tmp_path / "insync.sqlite3", warm_names=0)
    assert not again.store_was_new and not _scale_insync.failed(again)


def test_a_server_that_does_not_apply_a_batch_fails_the_measurement(tmp_path, monkeypatch):
    zdir, zfile = tiny_zone(tmp_path)
    sent: list[int] = []

    def dropped(self, zone_id: str, body: bytes) -> int:
        sent.append(len(body))  # timed as if sent, never applied
        return 0

    monkeypatch.setattr(_scale_insync.Client, "change", dropped)
    result = _scale_insync.run(zdir, zfile, ORIGIN, tmp_path, batches=2, changes=20, limit=60,
                               warm_names=0)
    assert len(sent) == 6  # two warm-up rounds, two of each shape
    assert _scale_insync.failed(result)
    # every CREATE's and UPSERT's names answered the old state (a DELETE of names never
    # created finds them absent, as it should)
    assert all(b.wrong for b in result.batches if b.action != "DELETE")
    assert any("answered NXDOMAIN [], not 198.18." in w for b in result.batches for w in b.wrong)
    report = "\n".join(_scale_insync.report(result))
    assert "**not met**" in report and "wrong answers" in report


def test_bench_scale_runs_the_change_batches_alone(capsys):
    from bench import scale

    assert scale.main(["--names", "300", "--insync-only", "--insync-batches", "1", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "authd serve (store seeded)" in out and "upsert" in out and "WRONG" not in out
    assert "authd-store (" not in out  # no loading measurement, no query mixes
