"""
A cache of the whole configuration, keyed by generation.

:class:`~control.store.sql.SQLStore` reads the generation from the database
first and reuses the cached snapshot when it matches, so repeated listings do
not reload ten thousand rows. A write this process commits advances the
snapshot in place when the snapshot was at the generation the write started
from; any other change (another process writing, or writes committing out of
order) leaves a stale generation behind, which the next read reloads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from uuid import UUID

from attrs import frozen
from pyrsistent import PMap

from control.model import Configuration, Dataset, Lease
from control.store.changelog import ChangeLog


@frozen
class Snapshot:
    """The configuration at one generation, expired leases included."""

    generation: int
    datasets: PMap
    leases: PMap
    touched: frozenset[UUID] | None = None
    """The datasets the write that made this snapshot from the previous generation
    changed (``None``: not known, as for a snapshot read whole). A change that makes
    a snapshot any other way than these methods leaves it ``None``."""

    def configuration(self, now: float) -> Configuration:
        """The configuration as of ``now``: expired leases left out."""
        leases = self.leases
        expired = [k for k, v in leases.items() if v.expired(now)]
        if expired:
            evolver = leases.evolver()
            for dataset_id in expired:
                evolver.remove(dataset_id)
            leases = evolver.persistent()
        return Configuration(generation=self.generation, datasets=self.datasets, leases=leases)

    def datasets_for(self, node_uuid: UUID, also: frozenset[UUID]) -> list[Dataset]:
        """The datasets whose primary is ``node_uuid`` or whose id is in ``also``."""
        return [d for d in self.datasets.values() if d.primary == node_uuid or d.dataset_id in also]

    def with_dataset(self, dataset: Dataset) -> Snapshot:
        """The next generation, with ``dataset`` stored."""
        return Snapshot(self.generation + 1, self.datasets.set(dataset.dataset_id, dataset),
                        self.leases, frozenset({dataset.dataset_id}))

    def with_lease(self, lease: Lease) -> Snapshot:
        """The next generation, with ``lease`` stored."""
        return Snapshot(self.generation + 1, self.datasets,
                        self.leases.set(lease.dataset_id, lease), frozenset())

    def without_lease(self, dataset_id: UUID) -> Snapshot:
        """The next generation, without the lease of ``dataset_id``."""
        return Snapshot(self.generation + 1, self.datasets, self.leases.discard(dataset_id),
                        frozenset())

    def without_datasets(self, dataset_ids: Iterable[UUID]) -> Snapshot:
        """The next generation, with ``dataset_ids`` and their leases purged."""
        ids = list(dataset_ids)
        datasets, leases = self.datasets.evolver(), self.leases.evolver()
        for dataset_id in ids:
            datasets.remove(dataset_id)
            if dataset_id in self.leases:
                leases.remove(dataset_id)
        return Snapshot(self.generation + 1, datasets.persistent(), leases.persistent(),
                        frozenset(ids))


class SnapshotCache:
    """Holds at most one :class:`Snapshot`; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self.changes = ChangeLog()
        """The datasets each generation this cache advanced to changed."""

    def get(self, generation: int) -> Snapshot | None:
        """The cached snapshot if it is at ``generation``."""
        snapshot = self._snapshot
        return snapshot if snapshot is not None and snapshot.generation == generation else None

    def put(self, snapshot: Snapshot) -> None:
        """Cache ``snapshot`` unless a newer one is already cached."""
        with self._lock:
            if self._snapshot is None or self._snapshot.generation <= snapshot.generation:
                self._snapshot = snapshot

    def advance(self, before: int, change: Callable[[Snapshot], Snapshot]) -> None:
        """Apply ``change`` (a committed write from ``before``) if the cache is at ``before``."""
        with self._lock:
            if self._snapshot is not None and self._snapshot.generation == before:
                self._snapshot = change(self._snapshot)
                if self._snapshot.touched is not None:
                    self.changes.record(self._snapshot.generation, self._snapshot.touched)
