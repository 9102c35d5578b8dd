"""
The store seam: durable desired state and the latest actual state.

Implementations are *blocking*: callers on the reactor thread go through
:class:`control.store.threaded.ThreadedStore`, which runs every call in a
thread pool. Every implementation passes ``tests/control/store/conformance.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from attrs import frozen

from control.classes import StorageClass
from control.errors import ShoalError
from control.events import EventQuery
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
from control.revocations import Revocation


@frozen
class NewDataset:
    """One create of a group (:meth:`Store.create_datasets`): what
    :meth:`Store.create_dataset` takes."""

    dataset: Dataset
    if_tag: str | None = None
    now: float = 0.0
    actor: str | None = None


Created = tuple[Dataset, int] | ShoalError | Exception
"""The answer to one :class:`NewDataset`: the dataset stored and its generation, or
the refusal, or (a bug) the exception that failed it alone."""

@frozen
class NewMove:
    """One move of a group (:meth:`Store.move_datasets`): what :meth:`Store.move_dataset`
    takes."""

    dataset_id: UUID
    primary: UUID
    if_tag: str | None = None
    now: float = 0.0
    actor: str | None = None


Reported = tuple[NodeState, str | None]
"""One report of a group (:meth:`Store.report_states`): the report and the identity that
sent it, as :meth:`Store.report_state` takes them."""

ReportAnswer = bool | ShoalError
"""The answer to one :data:`Reported`: whether its observation changed, or its refusal."""

Renewal = tuple[UUID, str | None, float]
"""A repeated heartbeat to renew (:meth:`Store.renew_reports`): the node, the identity that
sent it, and when it was received."""


@frozen
class StateReach:
    """Whom the state versions ``first`` to ``last`` (those a group of reports wrote,
    :meth:`Store.report_states_reaching`) concern: node uuids and dataset ids
    (:func:`control.reach.state_reach`), with the datasets as configured at ``generation``."""

    first: int
    last: int
    concerns: frozenset[UUID]
    generation: int


@frozen
class NodeDatasets:
    """The datasets one node's configuration is made of, read at one generation.

    ``datasets``: those whose primary is the node or whose id it asked about,
    ordered by id; ``copies``: every dataset made from a source (clone or
    restore) and every such source dataset, by id; ``read``: every dataset
    that has readers (ReadOnlyMany); ``fenced``: the nodes fenced now;
    ``everything``: every dataset, by id; ``leases``: every lease, by dataset id
    (expired ones included); ``unsettled``: the snapshot records not ready yet or
    deleted. All at ``generation``: a node's configuration is one call (issue 16).
    """

    generation: int
    datasets: list[Dataset]
    copies: Mapping[UUID, Dataset]
    read: list[Dataset]
    fenced: frozenset[UUID]
    everything: Mapping[UUID, Dataset]
    leases: Mapping[UUID, Lease]
    unsettled: list[DatasetSnapshot]


@runtime_checkable
class Store(Protocol):
    """
    Desired configuration plus reported cluster state.

    Writes to the configuration are each one transaction: they check
    ``if_tag`` (raising :class:`~control.errors.PreconditionFailed` on
    mismatch), apply the pure rule from :mod:`control.rules` (which raises
    :class:`~control.errors.NotFound`, :class:`~control.errors.Conflict`,
    :class:`~control.errors.NotAllowed` or
    :class:`~control.errors.InvalidRequest`), persist the result and bump the
    configuration generation by one. A refused write changes nothing.
    Concurrent conditional writers are serialised, so a tag is won at most once.

    State writes (node registration, reports) bump the state version only when
    what they record changed; they leave the configuration generation alone,
    so agents reporting do not invalidate operators' conditional writes, except
    when a report lets deleted datasets be purged (see :meth:`report_state`).

    ``now`` is seconds since the epoch, supplied by the caller's clock.

    Every write that changes something records its events (:mod:`control.events`)
    in the same transaction: configuration writes with ``actor`` (who asked),
    reports by comparing them with the node's previous one. The history is
    pruned on each write to the store's :class:`~control.events.EventRetention`.
    Implementations raise :class:`~control.errors.Unavailable` when their
    database cannot be reached.
    """

    def versions(self) -> Versions:
        """The current configuration generation and state version (cheap)."""
        ...

    def configuration(self, now: float) -> Configuration:
        """The whole configuration; leases that expired by ``now`` are left out."""
        ...

    def cached_configuration(self, now: float) -> Configuration | None:
        """:meth:`configuration` if the store holds it at hand (cheap), else ``None``: the SQL
        store's snapshot is not loaded yet (a restart) or another replica wrote since."""
        ...

    def dataset_listing(self) -> tuple[int, bytes]:
        """``(generation, listing)``: the JSON array of every dataset (deleted ones included)
        as ``GET /v1/configuration/datasets`` lists them (:func:`control.wire.dataset_to_json`,
        compact, ordered by id), at ``generation``, without building the configuration (the
        SQL store joins the items stored with the rows)."""
        ...

    def dataset(self, dataset_id: UUID) -> Dataset | None:
        """One dataset, deleted or not, or ``None``."""
        ...

    def datasets_of(self, dataset_ids: Iterable[UUID]) -> dict[UUID, Dataset | None]:
        """Each of ``dataset_ids`` as :meth:`dataset` answers it, all read at one generation
        (one trip, where a group of moves made one per move)."""
        ...

    def datasets_for_node(
        self, node_uuid: UUID, also: frozenset[UUID]
    ) -> tuple[int, list[Dataset]]:
        """``(generation, datasets)`` whose primary is ``node_uuid`` or whose id is in ``also``."""
        ...

    def node_datasets(self, node_uuid: UUID, also: frozenset[UUID]) -> NodeDatasets:
        """What one node's configuration is made of (:class:`NodeDatasets`), at one generation.

        Costs the node's datasets, not the cluster's, where the store can (issue 16).
        """
        ...

    def create_dataset(
        self, dataset: Dataset, if_tag: str | None, *, now: float = 0.0, actor: str | None = None
    ) -> tuple[Dataset, int]:
        """Store a new dataset; returns it and the new generation.

        A dataset with a ``source`` (a restore or a clone) is checked against
        that source by :func:`control.snapshots.check_source` (404 unknown,
        409 deleted or a snapshot not ready, 400 smaller than the source) and
        recorded with a ``restored`` or ``cloned`` event instead of ``created``.
        """
        ...

    def create_datasets(self, creates: Sequence[NewDataset]) -> list[Created]:
        """Several :meth:`create_dataset`, in order, as if one after another (group commit).

        Each is answered alone, in order: the dataset stored and its
        generation, or the :class:`~control.errors.ShoalError` refusing it
        (which changes nothing, and does not stop the others). A later create
        sees the earlier ones (their generations, names and ids); their events
        are in the same order. Those stored are committed together, before
        this returns; a failure of the database
        (:class:`~control.errors.Unavailable`) raises and stores none.
        """
        ...

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
        ...

    def move_datasets(self, moves: Sequence[NewMove]) -> list[Created]:
        """Several :meth:`move_dataset`, in order, as if one after another (group commit).

        Each is answered alone, in order, as :meth:`create_datasets` answers its creates:
        the dataset stored and its generation, or the refusal (which changes nothing and
        does not stop the others). A later move sees the earlier ones (their generations
        and primaries); their events are in the same order. Those stored are committed
        together; a failure of the database raises and stores none.
        """
        ...

    def delete_dataset(
        self, dataset_id: UUID, if_tag: str | None, now: float, *, actor: str | None = None
    ) -> tuple[Dataset, int]:
        """Mark a dataset deleted; returns it and the new generation.

        Deleting an already deleted dataset succeeds without a new generation.
        """
        ...

    def release_dataset(
        self, dataset_id: UUID, if_tag: str | None, now: float, *, actor: str | None = None
    ) -> tuple[Dataset, int]:
        """Release a dataset (its class retains volumes): :func:`control.rules.release_dataset`
        decides; event ``released``. A released one is returned without a new generation."""
        ...

    def adopt_dataset(
        self,
        dataset_id: UUID,
        primary: UUID,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
    ) -> tuple[Dataset, int]:
        """Make a released dataset live again on ``primary`` (:func:`control.rules.
        adopt_released`); event ``adopted``. Deleting a released dataset has the first node
        reporting its volume destroy it (:func:`control.rules.delete_released`)."""
        ...

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
        """Add a reader to a ReadOnlyMany dataset, or remove one (:mod:`control.readers`);
        returns the dataset and the generation (unchanged when nothing changed)."""
        ...

    def acquire_lease(
        self,
        lease: Lease,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
        move: bool = False,
    ) -> tuple[Lease, bool, int]:
        """Create or renew a lease; returns it, whether it is new, and the generation.

        With ``move``, the lease's node also becomes the dataset's primary in the same
        write (one generation; :func:`control.rules.lease_and_move`): the refusals of both
        a lease and a move apply, and neither is made unless both can be."""
        ...

    def release_lease(
        self, dataset_id: UUID, if_tag: str | None, now: float, *, actor: str | None = None
    ) -> tuple[Lease, int]:
        """Remove a dataset's lease; returns the lease released and the new generation."""
        ...

    def destroy_orphan(
        self, blockdevice_id: str, if_tag: str | None, *, now: float = 0.0, actor: str | None = None
    ) -> tuple[Dataset, int]:
        """Have an orphaned volume destroyed; returns the record made and the new generation.

        Records the orphan's dataset as deleted (primary: the first node, by
        uuid, reporting the orphan; see :func:`control.rules.adopt_orphan`), so
        the ordinary deletion destroys it. ``NotFound`` when no node reports
        ``blockdevice_id`` as an orphan, ``Conflict`` when its dataset is live
        or it names none. A record already deleted is returned without a new
        generation. Event ``deleted`` (by ``actor``) when a record is made.
        """
        ...

    def resize_dataset(
        self,
        dataset_id: UUID,
        maximum_size: int,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
    ) -> tuple[Dataset, int]:
        """Grow a dataset (:func:`control.snapshots.resize_dataset` decides); returns it and
        the generation. The same size returns it without a new generation."""
        ...

    def snapshots(self, dataset_id: UUID | None = None) -> list[DatasetSnapshot]:
        """Every snapshot record (of ``dataset_id`` only, if given), deleted ones included."""
        ...

    def snapshot(self, snapshot_id: UUID) -> DatasetSnapshot | None:
        """One snapshot record, deleted or not, or ``None``."""
        ...

    def create_snapshot(
        self, snapshot: DatasetSnapshot, if_tag: str | None, *, now: float,
        actor: str | None = None,
    ) -> tuple[DatasetSnapshot, bool, int]:
        """Record a snapshot of ``snapshot.dataset_id`` named ``snapshot.name``; returns it,
        whether it is new, and the generation.

        ``snapshot.node``, ``size``, ``ready`` and ``filesystem`` are ignored:
        :func:`control.snapshots.create_snapshot` fills them, and decides: the same name of the
        same dataset returns the live snapshot of that name (not new, no new
        generation); another dataset's name is a ``Conflict``; an unknown
        dataset ``NotFound``, a deleted one ``Conflict``.
        """
        ...

    def delete_snapshot(
        self, snapshot_id: UUID, if_tag: str | None, now: float, *, actor: str | None = None
    ) -> tuple[DatasetSnapshot, int]:
        """Mark a snapshot deleted (its node destroys it); returns it and the generation.

        Deleting a deleted snapshot returns it without a new generation;
        ``NotFound`` for an unknown one. Datasets restored from it are untouched.
        """
        ...

    # -- storage classes (docs/placement.md; rules in control.classes) --------------

    def classes(self) -> list[StorageClass]:
        """Every storage class, by name."""
        ...

    def storage_class(self, name: str) -> StorageClass | None:
        """One storage class, or ``None``."""
        ...

    def create_class(
        self, cls: StorageClass, *, now: float, actor: str | None = None
    ) -> tuple[StorageClass, bool]:
        """Store a new class (:func:`control.classes.create_class` decides); returns it and
        whether it is new. The same name and settings again is answered with the stored
        class; other settings under that name are a ``Conflict``. A new default class
        takes the default from the previous one. Event ``class_created``."""
        ...

    def update_class(
        self, name: str, changes: Mapping[str, Any], *, now: float, actor: str | None = None
    ) -> StorageClass:
        """Change a class's mutable fields (:func:`control.classes.update_class`: others
        are an ``InvalidRequest``, an unknown class ``NotFound``). Event ``class_updated``."""
        ...

    def delete_class(
        self, name: str, *, now: float, actor: str | None = None
    ) -> StorageClass:
        """Remove a class no live dataset names (else ``Conflict``); ``NotFound`` for an
        unknown one. Event ``class_deleted``."""
        ...

    def register_node(self, node: Node) -> Node:
        """Create or update a node by uuid (host, era, labels, last_seen, mount_root);
        returns the node as stored.

        :func:`control.rules.register_node` decides: it refuses a mount root
        that is not a normalised directory other than ``/`` (``InvalidRequest``)
        and a registration with another certificate than the one recorded in
        ``identity`` (:class:`~control.errors.Forbidden`); one without a
        certificate keeps the recorded identity.
        """
        ...

    def nodes(self) -> list[Node]:
        """Every registered node."""
        ...

    def node_by_era(self, era: str) -> Node | None:
        """The node whose current era is ``era``, or ``None``."""
        ...

    def report_state(self, report: NodeState, identity: str | None = None) -> bool:
        """Record a node's latest report and mark the node seen at ``report.reported_at``.

        Returns whether the observation changed. Also purges deleted datasets
        that :func:`control.rules.purgeable` allows (a configuration write,
        which bumps the generation), marks ready the snapshots a node now
        reports (:func:`control.snapshots.seen_ready`, with ``snapshot_ready``
        events) and purges the deleted snapshots
        :func:`control.snapshots.purgeable` allows, bumping the generation once
        if any of these changed. Raises :class:`~control.errors.NotFound`
        for a node that has not registered, and whatever
        :func:`control.rules.check_report` refuses (another certificate than
        ``identity`` registered the node, a stale era or generation, a path
        outside the node's mount root); a refused report records nothing.
        """
        ...

    def report_states(self, reports: Sequence[Reported]) -> list[ReportAnswer]:
        """Several :meth:`report_state`, in order, as if one after another (group commit).

        Each is answered alone, in order: whether its observation changed, or
        the :class:`~control.errors.ShoalError` refusing it (which records
        nothing and does not stop the others); a later report of the same node
        is judged against the earlier one. Those recorded are committed
        together before this returns, and the purges and settling a report
        allows are done once for the group; a failure of the database
        (:class:`~control.errors.Unavailable`) raises and records none.
        A report that repeats its node's last observation may be kept in
        memory with the heartbeats (:meth:`flush_seen`) instead of written.
        """
        ...

    def report_states_reaching(
        self, reports: Sequence[Reported]
    ) -> tuple[list[ReportAnswer], StateReach | None]:
        """:meth:`report_states`, and whom the state versions it wrote concern
        (:func:`control.reach.state_reach`, with the datasets as configured in the same
        transaction): ``None`` when it wrote none, or when they concern everyone."""
        ...

    # -- fencing, draining, failover (docs/failover.md; rules in control.failover_rules) --

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
        """Set a dataset's failover options (a configuration write); returns it and the
        generation (unchanged, with no event, when the options already were so)."""
        ...

    def fence_node(
        self, node_uuid: UUID, fence: Fence, *, silent_since: float | None = None
    ) -> tuple[Node, bool]:
        """Fence a node as :func:`control.failover_rules.fence` decides; returns the node
        and whether it changed (a state write; event ``node_fenced``). ``NotFound``
        for an unknown node."""
        ...

    def unfence_node(
        self,
        node_uuid: UUID,
        now: float,
        *,
        actor: str | None,
        reason: str,
        only_if: Fence | None = None,
    ) -> tuple[Node, bool]:
        """Lift a node's fence (``only_if``: only that fence); returns the node and whether
        it changed (event ``node_unfenced``). ``NotFound`` for an unknown node."""
        ...

    def set_draining(
        self, node_uuid: UUID, draining: bool, now: float, *, actor: str | None = None
    ) -> tuple[Node, bool]:
        """Mark a node draining or not; returns the node and whether it changed
        (events ``node_draining``, ``node_drain_stopped``). ``NotFound`` for an unknown node."""
        ...

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
        """Move a dataset from ``from_node`` to ``to_node`` (epoch + 1) if
        :func:`control.failover_rules.fail_over` allows: ``kind`` ``failed_over`` off a
        fenced node (releasing its lease on the dataset), ``moved`` off a draining one.
        One configuration write with its events; ``None`` when nothing changed."""
        ...

    def release_node_lease(
        self, dataset_id: UUID, node_uuid: UUID, now: float, *, actor: str | None, reason: str
    ) -> Lease | None:
        """Release the dataset's lease if ``node_uuid`` is fenced and still holds it (a
        configuration write, event ``lease_released`` with ``reason``); returns it, or
        ``None`` if nothing changed."""
        ...

    def revocations(self) -> list[Revocation]:
        """Every revoked certificate, oldest first (:mod:`control.revocations`)."""
        ...

    def revoke_certificate(self, revocation: Revocation) -> tuple[Revocation, bool]:
        """Record a revoked certificate; returns the record kept and whether it is new.

        Revoking a serial again answers the first record and changes nothing
        (:func:`control.revocations.revoke`). Event ``certificate_revoked``."""
        ...

    def append_events(self, events: Sequence[Event]) -> list[Event]:
        """Record ``events`` (ids assigned, increasing) and prune; returns them with their ids."""
        ...

    def events(self, query: EventQuery) -> list[Event]:
        """The events ``query`` asks for, oldest first (see :class:`~control.events.EventQuery`)."""
        ...

    def cluster_state(self) -> ClusterState:
        """Registered nodes and their latest reports."""
        ...

    def cluster_state_of(self, node_uuids: frozenset[UUID]) -> ClusterState:
        """:meth:`cluster_state`, but only the liveness of ``node_uuids`` (each one's
        ``last_seen`` and its report's ``reported_at``) must be current: the other nodes'
        times may be older (costs those nodes, not the cluster's, where the store can)."""
        ...

    def renew_report(self, node_uuid: UUID, identity: str | None, at: float) -> Versions | None:
        """Take a report of ``node_uuid`` from ``identity`` that repeats, byte for byte, the
        body of its last report :meth:`report_states` answered ``False`` (a heartbeat), as
        :meth:`report_states` would take it now, without reading it again: when that
        judgement still holds (nothing it read has changed since), renew the node's
        liveness and its report's time at ``at`` and return the current counters (the
        answer is ``False``, not changed); else ``None``, and the report must go to
        :meth:`report_states`. Never blocks or does I/O (the reactor calls it). A store
        may always answer ``None``."""
        ...

    renews_by_reading: bool
    """Whether :meth:`renew_reports` may renew: a store that renews only in memory
    (:meth:`renew_report`), or never, answers ``None`` for each and need not be asked."""

    def renew_reports(self, asked: Sequence[Renewal]) -> list[Versions | None]:
        """Each of ``asked``, a report repeating its node's last heartbeat byte for byte, taken
        as :meth:`renew_report` takes one, but after reading the database once for the group
        (whether anything was written since each judgement, by any replica): the counters
        for each renewed, ``None`` for each that must go to :meth:`report_states`. Blocking
        (the store's threads call it)."""
        ...

    def placement_inputs(
        self, nodes: bool
    ) -> tuple[list[StorageClass], ClusterState, list[Node] | None]:
        """What a group of creates is placed and admitted by, read together (one transaction
        instead of one each): :meth:`classes`, :meth:`cluster_state`, and with ``nodes``
        :meth:`nodes` (else ``None``)."""
        ...

    def flush_seen(self) -> int:
        """Write the heartbeats a store keeps in memory (:mod:`control.store.seen`), in
        one transaction; returns how many nodes' times it wrote. Reads see a heartbeat at
        once either way; this only makes it durable and visible to other replicas."""
        ...

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...
