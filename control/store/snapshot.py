"""
A cache of the whole configuration, keyed by generation.

:class:`~control.store.sql.SQLStore` reads the generation from the database
first and reuses the cached snapshot when it matches, so repeated listings do
not reload ten thousand rows. A write this process commits advances the
snapshot in place when the snapshot was at the generation the write started
from; any other change (another process writing, or writes committing out of
order) leaves a stale generation behind, which the next read reloads.

Each snapshot carries a :class:`NodeIndex` of its datasets (by primary, and the
few clones and ReadOnlyMany datasets), advanced with every write, so one node's
configuration costs the node's datasets, not the cluster's (issue 16).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from uuid import UUID

from attrs import Factory, field, frozen
from pyrsistent import PMap, PSet, pmap, pset

from control.changelog import ChangeLog
from control.model import Configuration, Dataset, Lease

_NONE: PSet = pset()


@frozen
class NodeIndex:
    """Which datasets each node is primary of, and which datasets are clones or are read.

    ``by_primary``: node uuid -> the ids of the datasets whose primary it is
    (deleted ones included); ``copies``: the ids of the datasets made from a
    source (clones and restores); ``read``: the ids of the datasets with readers.
    """

    by_primary: PMap = pmap()
    copies: PSet = _NONE
    read: PSet = _NONE

    @classmethod
    def of(cls, datasets: Iterable[Dataset]) -> NodeIndex:
        """The index of ``datasets``."""
        by_primary: dict[UUID, set[UUID]] = {}
        copies, read = set(), set()
        for d in datasets:
            by_primary.setdefault(d.primary, set()).add(d.dataset_id)
            if d.source is not None:
                copies.add(d.dataset_id)
            if d.readers:
                read.add(d.dataset_id)
        return cls(pmap({k: pset(v) for k, v in by_primary.items()}), pset(copies), pset(read))

    def replaced(self, old: Dataset | None, new: Dataset | None) -> NodeIndex:
        """The index once ``old`` (if any) is replaced by ``new`` (``None``: removed)."""
        if old is None and new is None:
            return self
        by_primary, copies, read = self.by_primary, self.copies, self.read
        if old is not None and (new is None or new.primary != old.primary):
            left = by_primary.get(old.primary, _NONE).discard(old.dataset_id)
            by_primary = by_primary.set(old.primary, left) if left else by_primary.discard(
                old.primary
            )
        if new is not None and (old is None or new.primary != old.primary):
            by_primary = by_primary.set(
                new.primary, by_primary.get(new.primary, _NONE).add(new.dataset_id)
            )
        key = (new if new is not None else old).dataset_id  # type: ignore[union-attr]
        copies = copies.add(key) if new is not None and new.source is not None else (
            copies.discard(key))
        read = read.add(key) if new is not None and new.readers else read.discard(key)
        return NodeIndex(by_primary, copies, read)


def _by_id(dataset: Dataset) -> UUID:
    """The sort key of datasets by id: UUIDs order as their strings do (fixed-width hex)."""
    return dataset.dataset_id


def _index_of(snapshot: Snapshot) -> NodeIndex:
    return NodeIndex.of(snapshot.datasets.values())


@frozen
class Snapshot:
    """The configuration at one generation, expired leases included, and which datasets
    the latest generations changed (a snapshot read whole starts its log empty).

    ``index`` is built from ``datasets`` when not given; the updates below
    advance it instead (``attrs.evolve`` keeps it: change ``datasets`` only
    through them).
    """

    generation: int
    datasets: PMap
    leases: PMap
    changes: ChangeLog = field(eq=False)
    index: NodeIndex = field(default=Factory(_index_of, takes_self=True), eq=False, repr=False)

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

    def datasets_for(self, node_uuid: UUID, also: Iterable[UUID]) -> list[Dataset]:
        """The datasets whose primary is ``node_uuid`` or whose id is in ``also``, by id."""
        ids = self.index.by_primary.get(node_uuid, _NONE).union(also)
        found = (self.datasets.get(i) for i in ids)
        return sorted((d for d in found if d is not None), key=_by_id)

    def copies(self) -> dict[UUID, Dataset]:
        """The datasets made from a source dataset or snapshot, with their source datasets."""
        found = {i: self.datasets[i] for i in self.index.copies}
        for copy in list(found.values()):
            assert copy.source is not None
            source = self.datasets.get(copy.source.source_id)
            if source is not None:
                found[source.dataset_id] = source
        return found

    def read(self) -> list[Dataset]:
        """The datasets that have readers (ReadOnlyMany)."""
        return [self.datasets[i] for i in self.index.read]

    def _indexed(self, dataset: Dataset) -> NodeIndex:
        return self.index.replaced(self.datasets.get(dataset.dataset_id), dataset)

    def with_dataset(self, dataset: Dataset) -> Snapshot:
        """The next generation, with ``dataset`` stored."""
        return Snapshot(self.generation + 1, self.datasets.set(dataset.dataset_id, dataset),
                        self.leases, self.changes.then([dataset.dataset_id]),
                        self._indexed(dataset))

    def with_lease(self, lease: Lease) -> Snapshot:
        """The next generation, with ``lease`` stored."""
        return Snapshot(self.generation + 1, self.datasets,
                        self.leases.set(lease.dataset_id, lease), self.changes.then(()),
                        self.index)

    def with_lease_and_dataset(self, lease: Lease, dataset: Dataset) -> Snapshot:
        """The next generation, with ``lease`` and ``dataset`` stored (one write)."""
        return Snapshot(self.generation + 1, self.datasets.set(dataset.dataset_id, dataset),
                        self.leases.set(lease.dataset_id, lease),
                        self.changes.then([dataset.dataset_id]), self._indexed(dataset))

    def without_lease(self, dataset_id: UUID) -> Snapshot:
        """The next generation, without the lease of ``dataset_id``."""
        return Snapshot(self.generation + 1, self.datasets, self.leases.discard(dataset_id),
                        self.changes.then(()), self.index)

    def touched(self) -> Snapshot:
        """The next generation, changing nothing it holds (a snapshot record was written)."""
        return Snapshot(self.generation + 1, self.datasets, self.leases, self.changes.then(()),
                        self.index)

    def without_datasets(self, dataset_ids: Iterable[UUID]) -> Snapshot:
        """The next generation, with ``dataset_ids`` and their leases purged."""
        ids = list(dataset_ids)
        datasets, leases = self.datasets.evolver(), self.leases.evolver()
        index = self.index
        for dataset_id in ids:
            index = index.replaced(self.datasets.get(dataset_id), None)
            datasets.remove(dataset_id)
            if dataset_id in self.leases:
                leases.remove(dataset_id)
        return Snapshot(self.generation + 1, datasets.persistent(), leases.persistent(),
                        self.changes.then(ids), index)


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
