"""
A cache of the whole configuration, keyed by generation.

:class:`~control.store.sql.SQLStore` reads the generation from the database
first and reuses the cached snapshot when it matches, so repeated listings do
not reload ten thousand rows. A write this process commits advances the
snapshot in place when the snapshot was at the generation the write started
from; any other change (another process writing, or writes committing out of
order) leaves a stale generation behind, which the next read reloads.

A write advances the snapshot only after it committed, so a reader may find
the database at a generation the snapshot is about to reach. The write
declares, before it commits, the generations it is committing
(:meth:`SnapshotCache.expect`), and such a reader waits for its advance
(:meth:`SnapshotCache.get`) instead of reading every dataset again: at
100,000 datasets each failover pass that met a group of creates committing
reloaded everything (seconds of CPU each, issue 16).

Each snapshot carries a :class:`NodeIndex` of its datasets (by primary, and the
few clones and ReadOnlyMany datasets), advanced with every write, so one node's
configuration costs the node's datasets, not the cluster's (issue 16).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from uuid import UUID

from attrs import Factory, field, frozen
from pyrsistent import PMap, PSet, pmap, pset

from control.changelog import ChangeLog
from control.model import Configuration, Dataset, Lease

_NONE: PSet = pset()


class Ids(AbstractSet[UUID]):
    """A persistent set of dataset ids: the ``frozenset`` built whole (cheap: in C) and the
    ids added and removed since, each a small :class:`PSet`.

    Turning a node's ``frozenset`` of thousands of ids into a :class:`PSet` on its
    first change cost 20-400 ms a node at 100,000 datasets (``pset`` builds its hash
    table in Python), paid by the first create on each node after a full load. Here
    a change costs a few microseconds from the first one on.
    """

    __slots__ = ("_base", "_added", "_removed")

    def __init__(self, base: frozenset[UUID] = frozenset(), added: PSet = _NONE,
                 removed: PSet = _NONE) -> None:
        self._base, self._added, self._removed = base, added, removed

    @classmethod
    def _from_iterable(cls, ids: Iterable[UUID]) -> Ids:  # type: ignore[override]
        return cls(frozenset(ids))

    def __contains__(self, key: object) -> bool:
        return key in self._added or (key in self._base and key not in self._removed)

    def __iter__(self) -> Iterator[UUID]:
        if not self._removed:
            yield from self._base
        else:
            yield from (i for i in self._base if i not in self._removed)
        yield from self._added

    def __len__(self) -> int:
        return len(self._base) - len(self._removed) + len(self._added)

    def __repr__(self) -> str:
        return f"Ids({set(self)!r})"

    def add(self, key: UUID) -> Ids:
        """These ids and ``key``."""
        if key in self:
            return self
        if key in self._removed:
            return Ids(self._base, self._added, self._removed.remove(key))
        return Ids(self._base, self._added.add(key), self._removed)

    def discard(self, key: UUID) -> Ids:
        """These ids without ``key``."""
        if key not in self:
            return self
        if key in self._added:
            return Ids(self._base, self._added.remove(key), self._removed)
        return Ids(self._base, self._added, self._removed.add(key))

    def union(self, other: Iterable[UUID]) -> frozenset[UUID]:
        """These ids and ``other``'s."""
        if not self._added and not self._removed:
            return self._base.union(other)
        return frozenset(self).union(other)


_EMPTY = Ids()


@frozen
class NodeIndex:
    """Which datasets each node is primary of, and which datasets are clones or are read.

    ``by_primary``: node uuid -> the ids of the datasets whose primary it is
    (deleted ones included); ``copies``: the ids of the datasets made from a
    source (clones and restores); ``read``: the ids of the datasets with readers.

    Each set of ids is an :class:`Ids`: :meth:`of` builds them from plain sets (60 ms
    at 100,000 datasets where ``pset`` took seconds) and :meth:`replaced` changes
    them in a few microseconds.
    """

    by_primary: PMap = pmap()
    copies: Ids = _EMPTY
    read: Ids = _EMPTY

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
        return cls(pmap({k: Ids(frozenset(v)) for k, v in by_primary.items()}),
                   Ids(frozenset(copies)), Ids(frozenset(read)))

    def replaced(self, old: Dataset | None, new: Dataset | None) -> NodeIndex:
        """The index once ``old`` (if any) is replaced by ``new`` (``None``: removed)."""
        if old is None and new is None:
            return self
        by_primary, copies, read = self.by_primary, self.copies, self.read
        if old is not None and (new is None or new.primary != old.primary):
            left = by_primary.get(old.primary, _EMPTY).discard(old.dataset_id)
            by_primary = by_primary.set(old.primary, left) if left else by_primary.discard(
                old.primary
            )
        if new is not None and (old is None or new.primary != old.primary):
            by_primary = by_primary.set(
                new.primary, by_primary.get(new.primary, _EMPTY).add(new.dataset_id)
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
        ids = self.index.by_primary.get(node_uuid, _EMPTY).union(also)
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

    def reaching(self, ids: Iterable[UUID]) -> list[Dataset]:
        """The datasets ``ids`` (deleted ones too) and those made from one of them, as
        :func:`control.store.queries.datasets_reaching` reads them at this generation."""
        wanted = frozenset(ids)
        datasets = self.datasets
        found = {i: datasets[i] for i in wanted if i in datasets}
        for i in self.index.copies:
            copy = datasets[i]
            assert copy.source is not None
            if copy.source.source_id in wanted:
                found[i] = copy
        return list(found.values())

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

SETTLE_WAIT = 30.0
"""The longest a reader waits for a committing write's advance (seconds; it takes
milliseconds: a bound against a bug, after which the reader reads everything again)."""


class SnapshotCache:
    """Holds at most one :class:`Snapshot`; safe to share between threads.

    It also remembers the last :data:`RECENT_CHANGES` committed changes by the
    generation each started from, so that a snapshot read before some of them
    (a listing of every dataset takes long, and writes go on meanwhile) is
    brought up to date when it is put, instead of being stale at once and
    read again in full by the next reader, for ever while writes go on.
    """

    def __init__(self, settle_wait: float = SETTLE_WAIT) -> None:
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._settle_wait = settle_wait
        self._snapshot: Snapshot | None = None
        self._changes: dict[int, Callable[[Snapshot], Snapshot]] = {}
        self._expected: dict[int, tuple[int, int]] = {}
        self._tokens = 0

    def get(self, generation: int) -> Snapshot | None:
        """The cached snapshot if it is at ``generation``, after waiting for the advance of
        a write of this process that is committing ``generation`` (:meth:`expect`)."""
        snapshot = self._snapshot
        if snapshot is not None and snapshot.generation == generation:
            return snapshot
        with self._settled:
            self._settled.wait_for(lambda: not self._awaited(generation), self._settle_wait)
            snapshot = self._snapshot
        return snapshot if snapshot is not None and snapshot.generation == generation else None

    def _awaited(self, generation: int) -> bool:
        """Whether committing writes may bring the cached snapshot to ``generation``: one
        commits it, and the snapshot is where one starts or within it (holding the lock)."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.generation >= generation:
            return False
        at, expected = snapshot.generation, self._expected.values()
        return any(b < generation <= a for b, a in expected) and any(
            b <= at <= a for b, a in expected
        )

    def expect(self, before: int, after: int) -> int:
        """Declare a write of this process moving the generation from ``before`` to
        ``after``, about to commit (call it in the write's transaction, before its
        commit); returns the token to :meth:`settle` once its changes are advanced."""
        with self._lock:
            self._tokens += 1
            self._expected[self._tokens] = (before, after)
            return self._tokens

    def settle(self, token: int) -> None:
        """The write of ``token`` advanced the snapshot, or failed: wake its readers."""
        with self._settled:
            self._expected.pop(token, None)
            self._settled.notify_all()

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
