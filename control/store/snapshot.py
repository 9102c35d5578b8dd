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

from attrs import field, frozen
from pyrsistent import PMap

from control.changelog import ChangeLog
from control.model import Configuration, Dataset, Lease


@frozen
class Snapshot:
    """The configuration at one generation, expired leases included, and which datasets
    the latest generations changed (a snapshot read whole starts its log empty)."""

    generation: int
    datasets: PMap
    leases: PMap
    changes: ChangeLog = field(eq=False)

    @changes.default
    def _read_whole(self) -> ChangeLog:
        return ChangeLog.starting(self.generation)

    def configuration(self, now: float) -> Configuration:
        """The configuration as of ``now``: expired leases left out."""
        leases = self.leases
        expired = [k for k, v in leases.items() if v.expired(now)]
        if expired:
            evolver = leases.evolver()
            for dataset_id in expired:
                evolver.remove(dataset_id)
            leases = evolver.persistent()
        return Configuration(generation=self.generation, datasets=self.datasets, leases=leases,
                             changes=self.changes)

    def datasets_for(self, node_uuid: UUID, also: frozenset[UUID]) -> list[Dataset]:
        """The datasets whose primary is ``node_uuid`` or whose id is in ``also``."""
        return [d for d in self.datasets.values() if d.primary == node_uuid or d.dataset_id in also]

    def with_dataset(self, dataset: Dataset) -> Snapshot:
        """The next generation, with ``dataset`` stored."""
        return Snapshot(self.generation + 1, self.datasets.set(dataset.dataset_id, dataset),
                        self.leases, self.changes.then([dataset.dataset_id]))

    def with_lease(self, lease: Lease) -> Snapshot:
        """The next generation, with ``lease`` stored."""
        return Snapshot(self.generation + 1, self.datasets,
                        self.leases.set(lease.dataset_id, lease), self.changes.then(()))

    def with_lease_and_dataset(self, lease: Lease, dataset: Dataset) -> Snapshot:
        """The next generation, with ``lease`` and ``dataset`` stored (one write)."""
        return Snapshot(self.generation + 1, self.datasets.set(dataset.dataset_id, dataset),
                        self.leases.set(lease.dataset_id, lease))

    def without_lease(self, dataset_id: UUID) -> Snapshot:
        """The next generation, without the lease of ``dataset_id``."""
        return Snapshot(self.generation + 1, self.datasets, self.leases.discard(dataset_id),
                        self.changes.then(()))

    def touched(self) -> Snapshot:
        """The next generation, changing nothing it holds (a snapshot record was written)."""
        return Snapshot(self.generation + 1, self.datasets, self.leases, self.changes.then(()))

    def without_datasets(self, dataset_ids: Iterable[UUID]) -> Snapshot:
        """The next generation, with ``dataset_ids`` and their leases purged."""
        ids = list(dataset_ids)
        datasets, leases = self.datasets.evolver(), self.leases.evolver()
        for dataset_id in ids:
            datasets.remove(dataset_id)
            if dataset_id in self.leases:
                leases.remove(dataset_id)
        return Snapshot(self.generation + 1, datasets.persistent(), leases.persistent(),
                        self.changes.then(ids))


RECENT_CHANGES = 1024
"""How many committed changes :class:`SnapshotCache` keeps to bring a late snapshot up to date."""


class SnapshotCache:
    """Holds at most one :class:`Snapshot`; safe to share between threads.

    It also remembers the last :data:`RECENT_CHANGES` committed changes by the
    generation each started from, so that a snapshot read before some of them
    (a listing of every dataset takes long, and writes go on meanwhile) is
    brought up to date when it is put, instead of being stale at once and
    read again in full by the next reader, for ever while writes go on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._changes: dict[int, Callable[[Snapshot], Snapshot]] = {}

    def get(self, generation: int) -> Snapshot | None:
        """The cached snapshot if it is at ``generation``."""
        snapshot = self._snapshot
        return snapshot if snapshot is not None and snapshot.generation == generation else None

    def put(self, snapshot: Snapshot) -> None:
        """Cache ``snapshot`` (with the changes since it, if known) unless a newer one is cached."""
        with self._lock:
            snapshot = self._forward(snapshot)
            if self._snapshot is None or self._snapshot.generation <= snapshot.generation:
                self._snapshot = snapshot

    def advance(self, before: int, change: Callable[[Snapshot], Snapshot]) -> None:
        """Apply ``change`` (a committed write from ``before``) if the cache is at ``before``."""
        with self._lock:
            self._changes[before] = change
            while len(self._changes) > RECENT_CHANGES:
                del self._changes[next(iter(self._changes))]
            if self._snapshot is not None and self._snapshot.generation == before:
                self._snapshot = self._forward(self._snapshot)

    def _forward(self, snapshot: Snapshot) -> Snapshot:
        """``snapshot`` with every remembered change from its generation on applied."""
        change = self._changes.get(snapshot.generation)
        while change is not None:
            before, snapshot = snapshot.generation, change(snapshot)
            if snapshot.generation <= before:  # every change moves on by one; never loop
                break
            change = self._changes.get(snapshot.generation)
        return snapshot
