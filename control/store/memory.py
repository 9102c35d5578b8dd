"""
An in-memory :class:`~control.store.interface.Store`: the fake every test may use.

It keeps the same two counters as the SQL store and calls the same pure rules
from :mod:`control.rules` for every configuration write, so it refuses exactly
what the durable store refuses. One lock serialises every call, which makes
it safe to share between threads (conditional writes win a tag at most once).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from attrs import evolve
from pyrsistent import pmap

from control import classes as cl
from control import events as ev
from control import failover_events as fev
from control import failover_rules as fr
from control import readers as rd
from control import revocations as rv
from control import rules
from control import snapshot_events as sev
from control import snapshots as snap
from control.classes import StorageClass
from control.errors import NotFound, ShoalError
from control.events import EventQuery, EventRetention
from control.model import (
    ClusterState,
    Configuration,
    Dataset,
    DatasetSnapshot,
    Event,
    Fence,
    Lease,
    Node,
    NodeState,
    Versions,
)
from control.reach import changed_datasets, dataset_changes, state_reach
from control.revocations import Revocation
from control.store.interface import (
    Created,
    NewDataset,
    NewMove,
    NodeDatasets,
    Renewal,
    ReportAnswer,
    Reported,
    StateReach,
)
from control.store.rows import listing_fragment


def _present(events: list[Event | None]) -> list[Event]:
    return [e for e in events if e is not None]


class MemoryStore:
    """A thread-safe, non-durable store holding everything in dictionaries."""

    def __init__(self, retention: EventRetention | None = None) -> None:
        self._retention = retention if retention is not None else EventRetention()
        self._events: list[Event] = []
        self._counts: dict[UUID, int] = {}  # events per dataset in _events
        self._oldest_at = float("inf")  # the earliest ``at`` in _events
        self._last_event_id = 0
        self._lock = threading.RLock()
        self._generation = 0
        self._state_version = 0
        self._datasets: dict[UUID, Dataset] = {}
        self._leases: dict[UUID, Lease] = {}
        self._nodes: dict[UUID, Node] = {}
        self._reports: dict[UUID, NodeState] = {}
        self._snapshots: dict[UUID, DatasetSnapshot] = {}
        self._classes: dict[str, StorageClass] = {}
        self._revocations: dict[int, Revocation] = {}

    # -- reads ---------------------------------------------------------------

    def versions(self) -> Versions:
        """The current configuration generation and state version."""
        with self._lock:
            return Versions(configuration=self._generation, state=self._state_version)

    def configuration(self, now: float) -> Configuration:
        """The whole configuration; leases that expired by ``now`` are left out."""
        with self._lock:
            leases = {k: v for k, v in self._leases.items() if not v.expired(now)}
            return Configuration(
                generation=self._generation, datasets=pmap(self._datasets), leases=pmap(leases)
            )

    def cached_configuration(self, now: float) -> Configuration | None:
        """The configuration: always at hand."""
        return self.configuration(now)

    def dataset_listing(self) -> tuple[int, bytes]:
        """``(generation, listing)``: every dataset's v1 listing item, by id, encoded."""
        with self._lock:
            ordered = sorted(self._datasets.values(), key=lambda d: str(d.dataset_id))
            generation = self._generation
        items = ",".join([listing_fragment(d) for d in ordered])
        return generation, f"[{items}]".encode()

    def dataset(self, dataset_id: UUID) -> Dataset | None:
        """One dataset, deleted or not, or ``None``."""
        with self._lock:
            return self._datasets.get(dataset_id)

    def datasets_of(self, dataset_ids: Iterable[UUID]) -> dict[UUID, Dataset | None]:
        """Each of ``dataset_ids``, deleted or not, or ``None``."""
        with self._lock:
            return {i: self._datasets.get(i) for i in dataset_ids}

    def datasets_for_node(
        self, node_uuid: UUID, also: frozenset[UUID]
    ) -> tuple[int, list[Dataset]]:
        """``(generation, datasets)`` whose primary is ``node_uuid`` or whose id is in ``also``."""
        with self._lock:
            found = [
                d for d in self._datasets.values() if d.primary == node_uuid or d.dataset_id in also
            ]
            return self._generation, found

    def node_datasets(self, node_uuid: UUID, also: frozenset[UUID]) -> NodeDatasets:
        """What one node's configuration is made of (a pass over every dataset)."""
        with self._lock:
            everything = self._datasets
            generation, found = self.datasets_for_node(node_uuid, also)
            copies = {i: d for i, d in everything.items() if d.source is not None}
            for copy in list(copies.values()):
                assert copy.source is not None
                source = everything.get(copy.source.source_id)
                if source is not None:
                    copies[source.dataset_id] = source
            return NodeDatasets(
                generation,
                sorted(found, key=lambda d: str(d.dataset_id)),
                copies,
                [d for d in everything.values() if d.readers],
                frozenset(n.uuid for n in self._nodes.values() if n.fence is not None),
                pmap(everything),
                pmap(self._leases),
                [s for s in self._snapshots.values() if s.deleted or not s.ready],
            )

    def nodes(self) -> list[Node]:
        """Every registered node."""
        with self._lock:
            return list(self._nodes.values())

    def node_by_era(self, era: str) -> Node | None:
        """The node whose current era is ``era``, or ``None``."""
        with self._lock:
            return next((n for n in self._nodes.values() if n.era == era), None)

    def cluster_state(self) -> ClusterState:
        """Registered nodes and their latest reports."""
        with self._lock:
            return ClusterState(
                version=self._state_version, nodes=pmap(self._nodes), reports=pmap(self._reports)
            )

    def cluster_state_of(self, node_uuids: frozenset[UUID]) -> ClusterState:
        """:meth:`cluster_state` (every node's liveness is current here)."""
        return self.cluster_state()

    def placement_inputs(
        self, nodes: bool
    ) -> tuple[list[StorageClass], ClusterState, list[Node] | None]:
        """The classes, the cluster state and (with ``nodes``) every node, read together."""
        with self._lock:
            return self.classes(), self.cluster_state(), self.nodes() if nodes else None

    # -- configuration writes ------------------------------------------------

    def _bump(self) -> int:
        self._generation += 1
        return self._generation

    def create_dataset(
        self, dataset: Dataset, if_tag: str | None, *, now: float = 0.0, actor: str | None = None
    ) -> tuple[Dataset, int]:
        """Store a new dataset; returns it and the new generation."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            stored = rules.create_dataset(
                self._datasets.get(dataset.dataset_id),
                dataset.primary in self._nodes,
                dataset,
                self._named(dataset.name),
            )
            if stored.source is not None:
                snap.check_source(stored.source, self._source(stored), stored)
            self._datasets[stored.dataset_id] = stored
            made = ev.dataset_created if stored.source is None else sev.dataset_from_source
            self.append_events([made(stored, now, actor)])
            return stored, self._bump()

    def create_datasets(self, creates: Sequence[NewDataset]) -> list[Created]:
        """Several creates, in order, each answered alone (:meth:`Store.create_datasets`)."""
        answers: list[Created] = []
        with self._lock:
            for new in creates:
                try:
                    answers.append(
                        self.create_dataset(new.dataset, new.if_tag, now=new.now, actor=new.actor)
                    )
                except ShoalError as refusal:
                    answers.append(refusal)
        return answers

    def _source(self, dataset: Dataset) -> DatasetSnapshot | Dataset | None:
        assert dataset.source is not None
        found: dict = self._datasets if dataset.source.kind.value == "dataset" else self._snapshots
        return found.get(dataset.source.source_id)

    def resize_dataset(
        self,
        dataset_id: UUID,
        maximum_size: int,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
    ) -> tuple[Dataset, int]:
        """Grow a dataset; the same size returns it without a new generation."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            before = self._datasets.get(dataset_id)
            stored = snap.resize_dataset(before, dataset_id, maximum_size)
            if stored == before:
                return stored, self._generation
            assert before is not None
            self._datasets[dataset_id] = stored
            self.append_events([sev.dataset_resized(before, stored, now, actor)])
            return stored, self._bump()

    # -- snapshots -------------------------------------------------------------

    def snapshots(self, dataset_id: UUID | None = None) -> list[DatasetSnapshot]:
        """Every snapshot record (of ``dataset_id`` only, if given)."""
        with self._lock:
            found = self._snapshots.values()
            return [s for s in found if dataset_id is None or s.dataset_id == dataset_id]

    def snapshot(self, snapshot_id: UUID) -> DatasetSnapshot | None:
        """One snapshot record, or ``None``."""
        with self._lock:
            return self._snapshots.get(snapshot_id)

    def create_snapshot(
        self, snapshot: DatasetSnapshot, if_tag: str | None, *, now: float,
        actor: str | None = None,
    ) -> tuple[DatasetSnapshot, bool, int]:
        """Record a snapshot, or return the live one of that name of the same dataset."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            named = next(
                (s for s in self._snapshots.values() if s.name == snapshot.name and not s.deleted),
                None,
            )
            stored, created = snap.create_snapshot(
                self._datasets.get(snapshot.dataset_id), named, snapshot
            )
            if not created:
                return stored, False, self._generation
            self._snapshots[stored.snapshot_id] = stored
            self.append_events([sev.snapshot_created(stored, now, actor)])
            return stored, True, self._bump()

    def delete_snapshot(
        self, snapshot_id: UUID, if_tag: str | None, now: float, *, actor: str | None = None
    ) -> tuple[DatasetSnapshot, int]:
        """Mark a snapshot deleted; a deleted one is returned without a new generation."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            existing = self._snapshots.get(snapshot_id)
            pending = snap.restoring(snapshot_id, self._datasets.values(), self._reports.values())
            stored = snap.delete_snapshot(existing, snapshot_id, self._generation + 1, pending)
            if stored == existing:
                return stored, self._generation
            self._snapshots[snapshot_id] = stored
            self.append_events([sev.snapshot_deleted(stored, now, actor)])
            return stored, self._bump()

    def _holder(self, dataset_id: UUID) -> str | None:
        lease = self._leases.get(dataset_id)
        return rules.holder_name(lease, None if lease is None else self._nodes.get(lease.node_uuid))

    def _named(self, name: str | None) -> Dataset | None:
        if name is None:
            return None
        return next(
            (
                d
                for d in self._datasets.values()
                if d.name == name and not d.deleted and not d.released
            ),
            None,
        )

    def move_dataset(
        self,
        dataset_id: UUID,
        primary: UUID,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
    ) -> tuple[Dataset, int]:
        """Give a dataset a new primary; returns it and the new generation."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            before = self._datasets.get(dataset_id)
            stored = rules.move_dataset(
                before,
                dataset_id,
                primary,
                primary in self._nodes,
                self._leases.get(dataset_id),
                now,
                self._holder(dataset_id),
            )
            self._datasets[dataset_id] = stored
            assert before is not None
            self.append_events(_present([ev.dataset_moved(before, stored, now, actor)]))
            return stored, self._bump()

    def move_datasets(self, moves: Sequence[NewMove]) -> list[Created]:
        """Several moves, in order, each answered alone (:meth:`Store.move_datasets`)."""
        answers: list[Created] = []
        with self._lock:
            for new in moves:
                try:
                    answers.append(self.move_dataset(
                        new.dataset_id, new.primary, new.if_tag, new.now, actor=new.actor
                    ))
                except ShoalError as refusal:
                    answers.append(refusal)
        return answers

    def delete_dataset(
        self, dataset_id: UUID, if_tag: str | None, now: float, *, actor: str | None = None
    ) -> tuple[Dataset, int]:
        """Mark a dataset deleted; an already deleted one is returned without a new generation."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            existing = self._datasets.get(dataset_id)
            if existing is not None and existing.released and not existing.deleted:
                reports = self._reports.values()
                reporters = [r.node_uuid for r in reports if dataset_id in r.datasets]
                stored = rules.delete_released(existing, reporters, self._generation + 1)
                self._datasets[dataset_id] = stored
                self.append_events([ev.dataset_deleted(stored, now, actor)])
                return stored, self._bump()
            clones = snap.cloning(dataset_id, self._datasets.values(), self._reports.values())
            snap.check_not_cloning(dataset_id, clones)
            stored = rules.delete_dataset(
                existing,
                dataset_id,
                self._leases.get(dataset_id),
                self._generation + 1,
                now,
                self._holder(dataset_id),
            )
            if stored == existing:
                return stored, self._generation
            self._datasets[dataset_id] = stored
            self.append_events([ev.dataset_deleted(stored, now, actor)])
            return stored, self._bump()

    def release_dataset(
        self, dataset_id: UUID, if_tag: str | None, now: float, *, actor: str | None = None
    ) -> tuple[Dataset, int]:
        """Release a dataset: no node, its volume kept."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            existing = self._datasets.get(dataset_id)
            stored = rules.release_dataset(
                existing, dataset_id, self._leases.get(dataset_id), now, self._holder(dataset_id)
            )
            if stored == existing:
                return stored, self._generation
            assert existing is not None
            self._datasets[dataset_id] = stored
            self.append_events([ev.dataset_released(existing, now, actor)])
            return stored, self._bump()

    def adopt_dataset(
        self,
        dataset_id: UUID,
        primary: UUID,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
    ) -> tuple[Dataset, int]:
        """Make a released dataset live again on ``primary``."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            existing = self._datasets.get(dataset_id)
            name = None if existing is None else existing.name
            stored = rules.adopt_released(
                existing, dataset_id, primary, primary in self._nodes, self._named(name)
            )
            self._datasets[dataset_id] = stored
            self.append_events([ev.dataset_adopted(stored, now, actor)])
            return stored, self._bump()

    def set_reader(
        self,
        dataset_id: UUID,
        node_uuid: UUID,
        reading: bool,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
    ) -> tuple[Dataset, int]:
        """Add ``node_uuid`` to a ReadOnlyMany dataset's readers (``reading``), or remove it."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            existing = self._datasets.get(dataset_id)
            if reading:
                stored = rd.add_reader(existing, dataset_id, node_uuid, node_uuid in self._nodes)
            else:
                stored = rd.remove_reader(existing, dataset_id, node_uuid)
            if stored == existing:
                return stored, self._generation
            self._datasets[dataset_id] = stored
            self.append_events([ev.reader_changed(stored, node_uuid, reading, now, actor)])
            return stored, self._bump()

    def acquire_lease(
        self,
        lease: Lease,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
        move: bool = False,
    ) -> tuple[Lease, bool, int]:
        """Create or renew a lease (and, with ``move``, make its node the primary); returns
        it, whether it is new, and the new generation."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            before = self._datasets.get(lease.dataset_id)
            existing = self._leases.get(lease.dataset_id)
            holder = self._holder(lease.dataset_id)
            if move:
                stored, created, moved = rules.lease_and_move(
                    before, existing, lease, now, lease.node_uuid in self._nodes, holder
                )
            else:
                stored, created = rules.acquire_lease(before, existing, lease, now, holder)
            self._leases[stored.dataset_id] = stored
            if created:
                self.append_events([ev.lease_taken(stored, now, actor)])
            if move:
                assert before is not None
                self._datasets[lease.dataset_id] = moved
                self.append_events(_present([ev.dataset_moved(before, moved, now, actor)]))
            return stored, created, self._bump()

    def release_lease(
        self, dataset_id: UUID, if_tag: str | None, now: float, *, actor: str | None = None
    ) -> tuple[Lease, int]:
        """Remove a dataset's lease; returns the lease released and the new generation."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            released = rules.release_lease(self._leases.get(dataset_id), dataset_id, now)
            del self._leases[dataset_id]
            self.append_events([ev.lease_released(released, now, actor)])
            return released, self._bump()

    def destroy_orphan(
        self, blockdevice_id: str, if_tag: str | None, *, now: float = 0.0, actor: str | None = None
    ) -> tuple[Dataset, int]:
        """Record a deleted dataset owning an orphaned volume; returns it and the generation."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            node, orphan = rules.find_orphan(blockdevice_id, self._reports.values())
            assert orphan.dataset_id is not None
            existing = self._datasets.get(orphan.dataset_id)
            stored = rules.adopt_orphan(node, orphan, existing, self._generation + 1)
            if stored == existing:
                return stored, self._generation
            self._datasets[stored.dataset_id] = stored
            self.append_events([ev.dataset_deleted(stored, now, actor)])
            return stored, self._bump()

    # -- state writes --------------------------------------------------------

    # -- storage classes ---------------------------------------------------------

    def classes(self) -> list[StorageClass]:
        """Every storage class, by name."""
        with self._lock:
            return sorted(self._classes.values(), key=lambda c: c.name)

    def storage_class(self, name: str) -> StorageClass | None:
        """One storage class, or ``None``."""
        with self._lock:
            return self._classes.get(name)

    def _put_class(self, stored: StorageClass) -> None:
        for other in cl.unset_other_defaults(stored, self._classes.values()):
            self._classes[other.name] = other
        self._classes[stored.name] = stored

    def create_class(
        self, cls: StorageClass, *, now: float, actor: str | None = None
    ) -> tuple[StorageClass, bool]:
        """Store a new class, or answer the same one again."""
        with self._lock:
            stored, created = cl.create_class(self._classes.get(cls.name), cls)
            if created:
                self._put_class(stored)
                self.append_events([cl.class_event("class_created", stored, now, actor)])
            return stored, created

    def update_class(
        self, name: str, changes: Mapping[str, Any], *, now: float, actor: str | None = None
    ) -> StorageClass:
        """Change a class's mutable fields."""
        with self._lock:
            stored = cl.update_class(self._classes.get(name), name, changes)
            if stored != self._classes[name]:
                self._put_class(stored)
                self.append_events([cl.class_event("class_updated", stored, now, actor)])
            return stored

    def delete_class(self, name: str, *, now: float, actor: str | None = None) -> StorageClass:
        """Remove a class no live dataset names."""
        with self._lock:
            users = sum(
                1 for d in self._datasets.values() if d.storage_class == name and not d.deleted
            )
            doomed = cl.delete_class(self._classes.get(name), name, users)
            del self._classes[name]
            self.append_events([cl.class_event("class_deleted", doomed, now, actor)])
            return doomed

    def register_node(self, node: Node) -> Node:
        """Create or update a node; the state version moves only if what it registers changed."""
        with self._lock:
            old = self._nodes.get(node.uuid)
            stored = rules.register_node(old, node)
            if old is None or not old.same_registration(stored) or old.fence != stored.fence:
                self._state_version += 1
            self._nodes[node.uuid] = stored
            return stored

    def report_state(self, report: NodeState, identity: str | None = None) -> bool:
        """Record a node's report, mark it seen, and purge what deletion allows."""
        with self._lock:
            node = self._nodes.get(report.node_uuid)
            if node is None:
                raise NotFound(
                    f"Node {report.node_uuid} has not registered; its agent must register first."
                )
            old = self._reports.get(report.node_uuid)
            rules.check_report(node, old, report, self._generation, identity)
            changed = old is None or not old.same_observation(report)
            if changed:
                self._state_version += 1
                at = report.reported_at if report.reported_at is not None else 0.0
                self.append_events(ev.report_events(old, report, at))
            self._reports[report.node_uuid] = report
            if report.reported_at is not None:
                self._nodes[node.uuid] = evolve(node, last_seen=report.reported_at)
            self._purge()
            return changed

    def renew_report(self, node_uuid: UUID, identity: str | None, at: float) -> Versions | None:
        """Never: every report goes to :meth:`report_states` (:meth:`Store.renew_report`)."""
        return None

    renews_by_reading = False
    """Never (:attr:`Store.renews_by_reading`)."""

    def renew_reports(self, asked: Sequence[Renewal]) -> list[Versions | None]:
        """Never: ``None`` for each (:meth:`Store.renew_reports`)."""
        return [None] * len(asked)

    def report_states(self, reports: Sequence[Reported]) -> list[ReportAnswer]:
        """Several reports, in order, each answered alone (:meth:`Store.report_states`)."""
        return self.report_states_reaching(reports)[0]

    def report_states_reaching(
        self, reports: Sequence[Reported]
    ) -> tuple[list[ReportAnswer], StateReach | None]:
        """:meth:`report_states`, and whom the state versions it wrote concern."""
        answers: list[ReportAnswer] = []
        changes: dict[UUID, frozenset[UUID] | None] = {}
        with self._lock:
            first = self._state_version + 1
            for report, identity in reports:
                old = self._reports.get(report.node_uuid)
                try:
                    changed = self.report_state(report, identity)
                except ShoalError as refusal:
                    answers.append(refusal)
                    continue
                answers.append(changed)
                if changed:
                    uuid = report.node_uuid
                    found = dataset_changes(old, report)
                    known = changes.get(uuid, frozenset())
                    changes[uuid] = None if found is None or known is None else known | found
            if self._state_version < first:
                return answers, None
            ids = changed_datasets(changes)
            concerns = None if ids is None else state_reach(changes, ids, [
                d for d in self._datasets.values()
                if d.dataset_id in ids or (d.source is not None and d.source.source_id in ids)
            ])
            if concerns is None:
                return answers, None
            return answers, StateReach(first, self._state_version, concerns, self._generation)

    def _purge(self) -> None:
        reports = list(self._reports.values())
        eras = {uuid: node.era for uuid, node in self._nodes.items()}
        snapshots_changed = self._settle_snapshots(reports, eras)
        doomed = [
            d.dataset_id
            for d in self._datasets.values()
            if d.deleted and rules.purgeable(d, reports, eras)
        ]
        for dataset_id in doomed:
            del self._datasets[dataset_id]
            self._leases.pop(dataset_id, None)
        if doomed or snapshots_changed:
            self._bump()

    def _settle_snapshots(self, reports: list[NodeState], eras: dict[UUID, str | None]) -> bool:
        """Mark ready what nodes report made, forget deleted ones gone; whether any changed."""
        ready = snap.seen_ready(self._snapshots.values(), reports)
        for made in ready:
            self._snapshots[made.snapshot_id] = made
        self.append_events(sev.ready_events(ready, reports))
        gone = [
            s.snapshot_id
            for s in self._snapshots.values()
            if snap.purgeable(s, reports, eras, self._primary_of(s.dataset_id))
        ]
        for snapshot_id in gone:
            del self._snapshots[snapshot_id]
        return bool(ready or gone)

    def _primary_of(self, dataset_id: UUID) -> UUID | None:
        dataset = self._datasets.get(dataset_id)
        return None if dataset is None else dataset.primary
    # -- fencing, draining, failover ---------------------------------------------

    def set_failover(
        self,
        dataset_id: UUID,
        enabled: bool | None,
        grace: float | None,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
    ) -> tuple[Dataset, int]:
        """Set a dataset's failover options; returns it and the generation."""
        with self._lock:
            rules.check_tag(self._generation, if_tag)
            existing = self._datasets.get(dataset_id)
            stored = fr.set_failover(existing, dataset_id, enabled, grace)
            if stored == existing:
                return stored, self._generation
            self._datasets[dataset_id] = stored
            self.append_events([fev.failover_set(stored, now, actor)])
            return stored, self._bump()

    def _put_node(self, node: Node, event: Event) -> None:
        self._nodes[node.uuid] = node
        self._state_version += 1
        self.append_events([event])

    def fence_node(
        self, node_uuid: UUID, fence: Fence, *, silent_since: float | None = None
    ) -> tuple[Node, bool]:
        """Fence a node as the rule decides; returns it and whether it changed."""
        with self._lock:
            existing = self._nodes.get(node_uuid)
            stored = fr.fence(existing, node_uuid, fence, silent_since)
            if stored == existing:
                return stored, False
            self._put_node(stored, fev.node_fenced(stored, fence))
            return stored, True

    def unfence_node(
        self,
        node_uuid: UUID,
        now: float,
        *,
        actor: str | None,
        reason: str,
        only_if: Fence | None = None,
    ) -> tuple[Node, bool]:
        """Lift a node's fence; returns it and whether it changed."""
        with self._lock:
            existing = self._nodes.get(node_uuid)
            stored = fr.unfence(existing, node_uuid, only_if)
            if stored == existing:
                return stored, False
            self._put_node(stored, fev.node_unfenced(stored, now, actor, reason))
            return stored, True

    def set_draining(
        self, node_uuid: UUID, draining: bool, now: float, *, actor: str | None = None
    ) -> tuple[Node, bool]:
        """Mark a node draining or not; returns it and whether it changed."""
        with self._lock:
            existing = self._nodes.get(node_uuid)
            stored = fr.set_draining(existing, node_uuid, draining)
            if stored == existing:
                return stored, False
            self._put_node(stored, fev.node_draining(stored, now, actor, draining))
            return stored, True

    def fail_over(
        self,
        dataset_id: UUID,
        from_node: UUID,
        to_node: UUID,
        now: float,
        *,
        actor: str | None,
        reason: str,
        kind: str = "failed_over",
    ) -> Dataset | None:
        """Move a dataset off ``from_node`` if the rule allows; returns it or ``None``."""
        with self._lock:
            before = self._datasets.get(dataset_id)
            lease = self._leases.get(dataset_id)
            stored = fr.fail_over(
                before, lease, self._nodes.get(from_node), self._nodes.get(to_node), now, kind
            )
            if stored is None:
                return None
            assert before is not None
            found = []
            origin = self._nodes.get(from_node)
            doomed = fr.release_node_lease(lease, origin, now) if kind == fr.FAILED_OVER else None
            if doomed is not None:
                del self._leases[dataset_id]
                found.append(ev.lease_released(doomed, now, actor, reason))
            self._datasets[dataset_id] = stored
            found.append(fev.failed_over(before, stored, now, actor, reason, kind))
            self.append_events(found)
            self._bump()
            return stored

    def release_node_lease(
        self, dataset_id: UUID, node_uuid: UUID, now: float, *, actor: str | None, reason: str
    ) -> Lease | None:
        """Release the dataset's lease if ``node_uuid`` still holds it; returns it or ``None``."""
        with self._lock:
            doomed = fr.release_node_lease(
                self._leases.get(dataset_id), self._nodes.get(node_uuid), now
            )
            if doomed is None:
                return None
            del self._leases[dataset_id]
            self.append_events([ev.lease_released(doomed, now, actor, reason)])
            self._bump()
            return doomed

    # -- events ----------------------------------------------------------------

    def revocations(self) -> list[Revocation]:
        """Every revoked certificate, oldest first."""
        with self._lock:
            return sorted(self._revocations.values(), key=lambda r: (r.at, r.serial))

    def revoke_certificate(self, revocation: Revocation) -> tuple[Revocation, bool]:
        """Record a revoked certificate, once."""
        with self._lock:
            kept, new = rv.revoke(self._revocations.get(revocation.serial), revocation)
            if new:
                self._revocations[kept.serial] = kept
                self.append_events([rv.revoked_event(kept)])
            return kept, new

    def append_events(self, events: Sequence[Event]) -> list[Event]:
        """Record ``events`` with increasing ids and prune; returns them with their ids."""
        with self._lock:
            stored = []
            for event in events:
                self._last_event_id += 1
                stored.append(evolve(event, event_id=self._last_event_id))
            self._events.extend(stored)
            for event in stored:
                self._oldest_at = min(self._oldest_at, event.at)
                if event.dataset_id is not None:
                    self._counts[event.dataset_id] = self._counts.get(event.dataset_id, 0) + 1
            if stored:
                self._prune(stored)
            return stored

    def _prune(self, added: list[Event]) -> None:
        keep = self._retention.per_dataset
        cutoff = max(e.at for e in added) - self._retention.max_age
        touched = {e.dataset_id for e in added if e.dataset_id is not None}
        if self._oldest_at >= cutoff and all(self._counts[d] <= keep for d in touched):
            return  # nothing is too old, and no dataset has too many: the scan drops nothing
        counts: dict[UUID, int] = {}
        kept: list[Event] = []
        for event in reversed(self._events):
            newest = event.event_id == self._last_event_id
            if event.at < cutoff and not newest:
                continue
            if event.dataset_id is not None:
                counts[event.dataset_id] = counts.get(event.dataset_id, 0) + 1
                if counts[event.dataset_id] > keep and not newest:
                    continue
            kept.append(event)
        self._events = kept[::-1]
        self._counts = {}
        for event in self._events:
            if event.dataset_id is not None:
                self._counts[event.dataset_id] = self._counts.get(event.dataset_id, 0) + 1
        self._oldest_at = min((e.at for e in self._events), default=float("inf"))

    def events(self, query: EventQuery) -> list[Event]:
        """The events ``query`` asks for, oldest first."""
        with self._lock:
            found = [e for e in self._events if query.matches(e)]
            if query.since is None:
                return found[-query.limit :] if query.limit > 0 else []
            after = [e for e in found if e.event_id is not None and e.event_id > query.since]
            return after[: query.limit]

    def flush_seen(self) -> int:
        """Nothing to write: every heartbeat is already where reads find it."""
        return 0

    def close(self) -> None:
        """Nothing to release."""
