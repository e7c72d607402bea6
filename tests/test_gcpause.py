"""`authd.gcpause`: the cyclic collector waits while a big zone loads, and comes back after."""

from __future__ import annotations

import gc

import pytest

from authd import gcpause


def test_paused_disables_and_restores_the_collector():
    assert gc.isenabled()
    with gcpause.paused(10):
        assert not gc.isenabled()
        with gcpause.paused(10):  # nested: the outer one decides
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_still_restores_it():
    with pytest.raises(ValueError), gcpause.paused(0):
        raise ValueError("bad zone")
    assert gc.isenabled()


def test_a_big_load_freezes_what_it_built():
    gc.unfreeze()
    before = gc.get_freeze_count()
    with gcpause.paused(gcpause.BIG - 1):
        kept = [[i] for i in range(100)]
    assert gc.get_freeze_count() == before  # small: nothing frozen
    with gcpause.paused(gcpause.BIG):
        kept += [[i] for i in range(100)]
    assert gc.get_freeze_count() >= before + 200
    gc.unfreeze()
