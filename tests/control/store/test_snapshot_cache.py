"""The configuration cache catches up a snapshot read while writes went on."""

from __future__ import annotations

from uuid import uuid4

from pyrsistent import pmap

from control.model import Dataset
from control.store.snapshot import RECENT_CHANGES, Snapshot, SnapshotCache


def _dataset() -> Dataset:
    return Dataset(dataset_id=uuid4(), primary=uuid4())


def test_late_snapshot_is_brought_up_to_date() -> None:
    """A snapshot read at 5 and put after writes 5→6→7 were committed is cached at 7."""
    cache = SnapshotCache()
    first, second = _dataset(), _dataset()
    cache.advance(5, lambda s: s.with_dataset(first))
    cache.advance(6, lambda s: s.with_dataset(second))
    cache.put(Snapshot(5, pmap(), pmap()))
    assert cache.get(5) is None
    caught_up = cache.get(7)
    assert caught_up is not None
    assert set(caught_up.datasets) == {first.dataset_id, second.dataset_id}


def test_advance_applies_to_the_cached_snapshot() -> None:
    """A write from the cached generation moves the cache on, as before."""
    cache = SnapshotCache()
    cache.put(Snapshot(1, pmap(), pmap()))
    dataset = _dataset()
    cache.advance(1, lambda s: s.with_dataset(dataset))
    assert cache.get(2) is not None and dataset.dataset_id in cache.get(2).datasets  # type: ignore[union-attr]


def test_unknown_changes_leave_the_snapshot_where_it_was() -> None:
    """Without the change from its generation (another replica's write) a snapshot stays put."""
    cache = SnapshotCache()
    cache.advance(9, lambda s: s.with_dataset(_dataset()))
    cache.put(Snapshot(7, pmap(), pmap()))
    assert cache.get(7) is not None and cache.get(10) is None


def test_only_recent_changes_are_kept() -> None:
    """The oldest changes are forgotten past the limit."""
    cache = SnapshotCache()
    for generation in range(RECENT_CHANGES + 10):
        cache.advance(generation, lambda s: Snapshot(s.generation + 1, s.datasets, s.leases))
    cache.put(Snapshot(0, pmap(), pmap()))
    assert cache.get(0) is not None
    cache.put(Snapshot(10, pmap(), pmap()))
    assert cache.get(RECENT_CHANGES + 10) is not None
