"""
The seam between Shoal's callers (CLI, agent, plugin) and the control service.

:class:`ShoalClient` is asynchronous: every method returns a ``Deferred``.
Refusals fail that Deferred with the :class:`~control.errors.ShoalError`
subclass the service answered with (``InvalidRequest`` for 400, ``NotFound``
for 404, ``NotAllowed`` 405, ``Conflict`` 409, ``PreconditionFailed`` 412,
``PayloadTooLarge`` 413, ``UnsupportedMediaType`` 415), carrying the service's
description, so the same exception types flow from the store to the caller.
When the service cannot be reached it fails with
:class:`~control.errors.Unavailable` naming the URL. The one implementation
is :class:`control.client.http.HTTPClient`; tests run it against the real API in
memory (:mod:`control.client.testing`), and it passes ``tests/control/client/suite.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable
from uuid import UUID

from attrs import frozen

from control.model import (
    Capacity,
    Condition,
    Dataset,
    DatasetSnapshot,
    DataSource,
    Event,
    Lease,
    Node,
    NodeState,
    OrphanVolume,
    Versions,
)
from control.revocations import Revocation

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from control.classes import StorageClass


@frozen
class ServiceVersion:
    """The versions a control service reports."""

    flocker: str
    shoal: str
    leader: bool | None = None
    """Whether the replica that answered runs the background work (``None``: not said)."""


@frozen
class StateDataset:
    """A dataset as the cluster actually has it (``/v1/state/datasets``).

    ``primary`` is the node the volume is attached or mounted on (``None`` if
    it is only present); ``path`` is its mount point when mounted, ``device``
    its device path on ``primary`` when attached or mounted there.
    """

    dataset_id: UUID
    primary: UUID | None = None
    path: str | None = None
    maximum_size: int | None = None
    device: str | None = None


@frozen
class NodeInfo:
    """A registered node and whether it was heard from recently enough.

    ``liveness`` is the failover's view (``live``, ``suspect``, ``dead``;
    ``None`` from a service that does not say); the node's ``fence`` and
    ``draining`` are on :attr:`node`; ``capacity`` is what it last reported
    (its first backend), ``capacities`` every backend's.
    """

    node: Node
    live: bool
    liveness: str | None = None
    capacity: Capacity | None = None
    capacities: tuple[Capacity, ...] = ()


@frozen
class DatasetFailover:
    """A dataset's failover options (docs/failover.md): ``enabled`` (``None``: the
    default), its own ``grace`` (``None``: the cluster's) and the grace that applies."""

    dataset_id: UUID
    primary: UUID
    epoch: int
    enabled: bool | None
    grace: float | None
    effective_grace: float


@frozen
class NodeCondition:
    """A condition and the node that reports it."""

    node_uuid: UUID
    condition: Condition


class DatasetListing(NamedTuple):
    """The configuration's datasets and the tag to make a conditional write against."""

    tag: str
    datasets: list[Dataset]


class LeaseGrant(NamedTuple):
    """A lease after an acquire, and whether it is new rather than a renewal."""

    lease: Lease
    created: bool


class NodeConfiguration(NamedTuple):
    """
    What one agent must converge: the generation, its datasets and all live leases.

    Failover (docs/failover.md): each dataset carries its ``epoch``; ``fenced``
    says this node is fenced (it must let go of everything and attach nothing);
    ``fenced_nodes`` are every fenced node, whose volumes a new primary fences
    in the backend before it attaches them; ``node_lease`` is how long the
    agent may go without a successful call to the control service before it
    fences itself, and ``heartbeat`` how often it must report at least
    (``None``: the service does not say; keep the agent's own settings).
    ``snapshots`` are the snapshots this node is in charge of: to make while
    live and not yet reported, to destroy once deleted.
    """

    generation: int
    datasets: list[Dataset]
    leases: list[Lease]
    fenced: bool = False
    fenced_nodes: frozenset[UUID] = frozenset()
    node_lease: float | None = None
    heartbeat: float | None = None
    snapshots: tuple[DatasetSnapshot, ...] = ()


class ReportedOrphan(NamedTuple):
    """A backend volume no dataset record owns, and a node that reports it."""

    node_uuid: UUID
    orphan: OrphanVolume


class Reported(NamedTuple):
    """The answer to a state report: whether it changed anything, and the counters."""

    changed: bool
    versions: Versions


@runtime_checkable
class ShoalClient(Protocol):
    """An asynchronous client of the control service; every method returns a Deferred."""

    def version(self) -> Deferred[ServiceVersion]:
        """The service's Flocker API version and Shoal version."""
        ...

    def list_datasets(self) -> Deferred[DatasetListing]:
        """Every dataset in the configuration (deleted ones included, ``deleted=True``)."""
        ...

    def create_dataset(
        self,
        primary: UUID,
        maximum_size: int | None = None,
        metadata: Mapping[str, str] | None = None,
        dataset_id: UUID | None = None,
        if_tag: str | None = None,
    ) -> Deferred[Dataset]:
        """Create a dataset on ``primary``; fires with it (its id chosen by the service
        unless given). ``InvalidRequest`` for a bad size/metadata or unknown primary,
        ``Conflict`` for an id in use, ``PreconditionFailed`` when ``if_tag`` is stale."""
        ...

    def move_dataset(
        self, dataset_id: UUID, primary: UUID, if_tag: str | None = None
    ) -> Deferred[Dataset]:
        """Give a dataset a new primary. ``NotFound``, ``NotAllowed`` (deleted),
        ``Conflict`` (another node holds a lease), ``PreconditionFailed``."""
        ...

    def delete_dataset(self, dataset_id: UUID, if_tag: str | None = None) -> Deferred[Dataset]:
        """Mark a dataset deleted (idempotent); fires with it. ``NotFound``,
        ``Conflict`` (leased), ``PreconditionFailed``."""
        ...

    def list_state_datasets(self, node: UUID | None = None) -> Deferred[list[StateDataset]]:
        """Every dataset some node reports, with where it is attached or mounted (``node``:
        only as that node reports it)."""
        ...

    def list_nodes(self) -> Deferred[list[NodeInfo]]:
        """Every registered node with its liveness."""
        ...

    def node_by_era(self, era: str) -> Deferred[UUID]:
        """The uuid of the node currently in ``era``; ``NotFound`` if none."""
        ...

    def list_conditions(self, dataset_id: UUID | None = None) -> Deferred[list[NodeCondition]]:
        """Every condition the nodes report (of ``dataset_id`` only, if given)."""
        ...

    def list_events(
        self,
        dataset_id: UUID | None = None,
        node_uuid: UUID | None = None,
        since: int | None = None,
        limit: int | None = None,
    ) -> Deferred[list[Event]]:
        """The event history, oldest first: after event id ``since``, else the newest."""
        ...

    def list_leases(self) -> Deferred[list[Lease]]:
        """Every lease that has not expired (``expires`` as absolute client time)."""
        ...

    def acquire_lease(
        self, dataset_id: UUID, node_uuid: UUID, expires: float | None, move: bool = False
    ) -> Deferred[LeaseGrant]:
        """Take or renew a lease for ``expires`` seconds from now (``None``: forever); with
        ``move``, also make ``node_uuid`` the dataset's primary in the same write (both or
        neither). ``NotFound`` (no dataset, or with ``move`` an unknown node), ``NotAllowed``
        (deleted), ``Conflict`` (held by another node; with ``move`` also the move's refusals:
        fenced, draining, outside the class's topology, no room), ``InvalidRequest`` (bad
        expiry)."""
        ...

    def release_lease(self, dataset_id: UUID) -> Deferred[Lease]:
        """Release a dataset's lease; fires with it. ``NotFound`` if there is none."""
        ...

    def register_node(
        self,
        node_uuid: UUID,
        host: str,
        era: str | None,
        labels: Mapping[str, str],
        mount_root: str | None = None,
    ) -> Deferred[Node]:
        """Create or update a node (idempotent); fires with the node as stored.

        ``mount_root`` is where the node's agent mounts datasets: the control
        service refuses reports of paths outside it."""
        ...

    def report_state(self, state: NodeState) -> Deferred[Reported]:
        """Send a node's observation (``reported_at`` is set by the service).
        ``NotFound`` if the node has not registered."""
        ...

    def node_configuration(
        self, node_uuid: UUID, also: Iterable[UUID] = ()
    ) -> Deferred[NodeConfiguration]:
        """The datasets whose primary is ``node_uuid`` or whose id is in ``also``,
        with the generation they belong to and the live leases."""
        ...

    def list_orphans(self) -> Deferred[list[ReportedOrphan]]:
        """Every orphaned backend volume any node reports, with that node."""
        ...

    def destroy_orphan(self, blockdevice_id: str, if_tag: str | None = None) -> Deferred[Dataset]:
        """Have an orphaned volume destroyed; fires with the deleted record made for it.
        ``NotFound`` (no node reports it), ``Conflict`` (its dataset is live),
        ``PreconditionFailed``."""
        ...

    def list_snapshots(self, dataset_id: UUID | None = None) -> Deferred[list[DatasetSnapshot]]:
        """Every snapshot record (of ``dataset_id`` only, if given), oldest first."""
        ...

    def create_snapshot(
        self, dataset_id: UUID, name: str | None = None
    ) -> Deferred[DatasetSnapshot]:
        """Snapshot a dataset, or fire with the live snapshot of that name of the same
        dataset. ``NotFound`` (no dataset), ``Conflict`` (deleted, or the name is another
        dataset's), ``InvalidRequest`` (bad name)."""
        ...

    def get_snapshot(self, snapshot_id: UUID) -> Deferred[DatasetSnapshot]:
        """One snapshot record; ``NotFound`` if there is none."""
        ...

    def delete_snapshot(self, snapshot_id: UUID) -> Deferred[DatasetSnapshot]:
        """Mark a snapshot deleted (idempotent); ``NotFound`` if there is none."""
        ...

    def list_released(self) -> Deferred[list[Dataset]]:
        """Released datasets: deleted with their volume retained (a Retain class)."""
        ...

    def adopt_dataset(self, dataset_id: UUID, primary: UUID | None = None) -> Deferred[Dataset]:
        """Make a released dataset live again on ``primary`` (default: the node reporting its
        volume); ``Conflict`` when it is not released or no node is known."""
        ...

    def add_reader(self, dataset_id: UUID, node: UUID) -> Deferred[Dataset]:
        """Let ``node`` mount a ReadOnlyMany dataset read-only beside its primary (idempotent);
        ``Conflict`` when the dataset is not ReadOnlyMany or the node's backend cannot."""
        ...

    def remove_reader(self, dataset_id: UUID, node: UUID) -> Deferred[Dataset]:
        """Stop ``node`` reading a ReadOnlyMany dataset (idempotent)."""
        ...

    def list_classes(self) -> Deferred[list[StorageClass]]:
        """Every storage class, by name."""
        ...

    def create_class(self, cls: StorageClass) -> Deferred[StorageClass]:
        """Create a storage class, or fire with the same one already made. ``Conflict``
        (the name has other settings), ``InvalidRequest`` (a bad field, RWX)."""
        ...

    def get_class(self, name: str) -> Deferred[StorageClass]:
        """One storage class; ``NotFound`` if there is none."""
        ...

    def update_class(self, name: str, changes: Mapping[str, object]) -> Deferred[StorageClass]:
        """Change a class's mutable fields (JSON form: ``parameters``, ``default_size``,
        ``default``); ``NotFound``, ``InvalidRequest``."""
        ...

    def delete_class(self, name: str) -> Deferred[StorageClass]:
        """Delete a class; ``Conflict`` while a live dataset names it, ``NotFound``."""
        ...

    def list_revocations(self) -> Deferred[list[Revocation]]:
        """Every revoked client certificate, oldest first (admin)."""
        ...

    def revoke_certificate(
        self, serial: int, subject: str, reason: str | None = None
    ) -> Deferred[Revocation]:
        """Revoke a client certificate (admin); revoking it again answers the first record."""
        ...

    def create_shoal_dataset(
        self,
        primary: UUID | None = None,
        maximum_size: int | None = None,
        metadata: Mapping[str, str] | None = None,
        dataset_id: UUID | None = None,
        filesystem: str | None = None,
        source: DataSource | None = None,
        if_tag: str | None = None,
        storage_class: str | None = None,
        access_mode: str | None = None,
    ) -> Deferred[Dataset]:
        """Create a dataset through ``POST /v1/shoal/datasets``: with ``source`` a restore
        or a clone (defaults from the source), with ``filesystem`` ext4 or xfs; fires with
        it, ``epoch``, ``filesystem`` and ``source`` included. Without ``primary`` (and
        without a source) its ``storage_class`` (or the default class) places it, or leaves
        it unbound until its first use; ``access_mode`` is one its class allows."""
        ...

    def resize_dataset(
        self, dataset_id: UUID, maximum_size: int, if_tag: str | None = None
    ) -> Deferred[Dataset]:
        """Grow a dataset; ``InvalidRequest`` when smaller, ``NotFound``, ``NotAllowed``
        (deleted), ``Conflict`` (no recorded size)."""
        ...

    def fence_node(self, node_uuid: UUID, reason: str | None = None) -> Deferred[NodeInfo]:
        """Fence a node by hand (its datasets fail over; it stays fenced until unfenced);
        fires with the node. ``NotFound`` for an unknown node."""
        ...

    def unfence_node(self, node_uuid: UUID) -> Deferred[NodeInfo]:
        """Lift a node's fence; fires with the node. ``NotFound``; ``Conflict`` while the
        node still reports holding a dataset now primary elsewhere."""
        ...

    def drain_node(self, node_uuid: UUID, draining: bool = True) -> Deferred[NodeInfo]:
        """Start (or, with ``draining=False``, stop) draining a node; fires with the node."""
        ...

    def get_failover(self, dataset_id: UUID) -> Deferred[DatasetFailover]:
        """A dataset's failover options. ``NotFound`` for an unknown dataset."""
        ...

    def set_failover(
        self,
        dataset_id: UUID,
        enabled: bool | None,
        grace: float | None = None,
        if_tag: str | None = None,
    ) -> Deferred[DatasetFailover]:
        """Set a dataset's failover options; fires with them. ``NotFound``, ``NotAllowed``
        (deleted), ``InvalidRequest`` (a bad grace), ``PreconditionFailed``."""
        ...

    def watch(
        self,
        configuration: int,
        state: int,
        timeout: float,
        node: UUID | None = None,
        datasets: Iterable[UUID] = (),
    ) -> Deferred[Versions]:
        """Fire with the counters once either passes the given values, or after
        ``timeout`` seconds with the counters unchanged. With ``node`` (and
        ``datasets``), a configuration change wakes it only if it concerns that node
        or one of those datasets (or everyone)."""
        ...
