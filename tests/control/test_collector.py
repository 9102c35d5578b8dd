"""The control service's garbage collector settings (:mod:`control.collector`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from control import collector


@pytest.fixture
def restored() -> Iterator[None]:
    """Puts the collector's thresholds back and unfreezes what a test froze."""
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_tune_makes_young_collections_rarer(restored: None) -> None:
    """Young collections run :data:`~control.collector.YOUNG` allocations apart; the older
    generations keep their thresholds."""
    gc.set_threshold(700, 10, 10)
    collector.tune()
    assert gc.get_threshold() == (collector.YOUNG, 10, 10)


def test_freeze_leaves_what_is_alive_out_of_collections(restored: None) -> None:
    """What is alive when the service is warm is frozen; what comes later is collected."""
    kept = [[index] for index in range(1000)]
    collector.freeze()
    assert gc.get_freeze_count() >= len(kept)
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
