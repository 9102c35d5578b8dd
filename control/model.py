"""
Immutable values of Shoal's cluster model.

The desired *configuration* (datasets, leases, generation) is what operators
declare; the *cluster state* (nodes and what each reports) is what agents
observe. Every value is frozen; methods that depend on time take ``now``
(seconds since the epoch) as an argument so that callers inject the clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from attrs import field, frozen
from pyrsistent import PMap, pmap

from control.changelog import ChangeLog
from control.errors import InvalidRequest

MiB = 1024 * 1024
MINIMUM_DATASET_SIZE = 64 * MiB
"""The smallest ``maximum_size`` a dataset may ask for (Flocker's limit)."""

SIZE_MULTIPLE = 1024
"""``maximum_size`` must be a multiple of this many bytes."""

MINIMUM_LEASE_SECONDS = 0.001
"""The shortest lease a node may ask for: anything shorter would expire as it is granted."""

MAX_METADATA_ITEMS = 16
MAX_METADATA_KEY = 256
MAX_METADATA_VALUE = 256


def _freeze_map(value: Mapping[Any, Any] | None) -> PMap:
    if isinstance(value, PMap):
        return value
    return pmap(value or {})


def check_maximum_size(size: int | None, what: str = "maximum_size") -> None:
    """Raise :class:`InvalidRequest` unless ``size`` is a valid dataset size.

    ``what`` names the size in the message as the asker knows it: the API's
    ``maximum_size``, the CLI's ``--size``, the plugin's ``size`` option.
    """
    if size is None:
        return
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidRequest(f"{what} must be an integer number of bytes or null.")
    if size < MINIMUM_DATASET_SIZE:
        raise InvalidRequest(
            f"{what} {size} is too small: a dataset needs at least "
            f"{MINIMUM_DATASET_SIZE} bytes (64 MiB)."
        )
    if size % SIZE_MULTIPLE:
        raise InvalidRequest(
            f"{what} {size} is not a multiple of {SIZE_MULTIPLE}; round it to a whole KiB."
        )


def check_metadata(metadata: Mapping[str, str]) -> None:
    """Raise :class:`InvalidRequest` unless ``metadata`` fits Flocker's limits."""
    if len(metadata) > MAX_METADATA_ITEMS:
        raise InvalidRequest(
            f"metadata has {len(metadata)} keys; at most {MAX_METADATA_ITEMS} are allowed."
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidRequest("metadata keys and values must be strings.")
        if not 1 <= len(key) <= MAX_METADATA_KEY:
            raise InvalidRequest(
                f"metadata key {key[:40]!r} must be 1 to {MAX_METADATA_KEY} characters long."
            )
        if len(value) > MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"metadata value of {key[:40]!r} is longer than {MAX_METADATA_VALUE} characters."
            )


def _uuid_set(value: Iterable[UUID]) -> frozenset[UUID]:
    return frozenset(value)


def _valid_size(_instance: object, _attribute: object, value: int | None) -> None:
    check_maximum_size(value)


def _valid_metadata(_instance: object, _attribute: object, value: PMap) -> None:
    check_metadata(value)


class SourceKind(enum.Enum):
    """What a new dataset's data is copied from."""

    SNAPSHOT = "snapshot"
    """A restore: the new volume starts as a copy-on-write copy of a snapshot."""
    DATASET = "dataset"
    """A clone: the new volume starts as a copy-on-write copy of another dataset's volume."""


@frozen
class DataSource:
    """The source of a restored or cloned dataset: a snapshot id or a dataset id."""

    kind: SourceKind
    source_id: UUID


FILESYSTEMS = ("ext4", "xfs")
"""The filesystems an agent can make on a volume; the first is the default."""

RAW = "raw"
"""The ``filesystem`` of a raw (block-mode) dataset: attached, never formatted, never mounted."""

FORMATS = (*FILESYSTEMS, RAW)
"""Every value a dataset's ``filesystem`` may have: a filesystem, or :data:`RAW`."""


class AccessMode(enum.Enum):
    """How many nodes and consumers may use a dataset at once (Kubernetes' names)."""

    RWO = "ReadWriteOnce"
    """Read-write on one node at a time (the default)."""
    RWOP = "ReadWriteOncePod"
    """Read-write by one consumer (one container) at a time."""
    ROX = "ReadOnlyMany"
    """Read-only on many nodes at once."""
    RWX = "ReadWriteMany"
    """Read-write on many nodes: refused, a block device with ext4 or xfs has one writer."""


UNBOUND = UUID(int=0)
"""The ``primary`` of a dataset not yet bound to a node (a WaitForFirstConsumer class).

No node ever has this uuid, so no agent acts on an unbound dataset; the
Flocker v1 routes show it as this nil uuid, which an old client reads as
"on a node I do not know" (docs/placement.md)."""


@frozen
class Dataset:
    """
    The desired state of one dataset.

    ``deleted_generation`` is the configuration generation at which the
    dataset was deleted (``None`` while it is live); the record is purged once
    no node reports the dataset and its primary has acted on that generation.

    ``epoch`` is the dataset's fencing token: it grows by one every time the
    primary changes (a move, a failover). An agent attaches and mounts the
    volume only with the dataset's current epoch, and a backend refuses an
    attach with an epoch older than one it has seen (docs/failover.md). It is
    on the agents' configuration route only, never on the Flocker v1 routes.

    ``source`` says what a restored or cloned dataset's volume starts from;
    ``filesystem`` which filesystem the agent makes on a new volume (:data:`RAW`:
    none; the agent attaches the device and never formats or mounts it). Both are
    immutable after create, and, like ``epoch``, absent from the v1 routes.

    ``failover`` says whether the dataset gets a new primary when its primary
    is fenced: ``None`` (the default) means on exactly when the primary's
    backend is shared, ``True``/``False`` force it (never possible on a
    node-local backend). ``failover_grace`` lengthens the cluster's grace
    period for this dataset (seconds of silence before it moves; never
    shorter than the cluster's). See docs/failover.md.

    ``storage_class`` names the dataset's storage class (``None``: made before
    classes, or without one), ``access_mode`` how it may be used
    (docs/placement.md); both are fixed at create. ``released`` is set when a
    dataset of a ``Retain`` class is deleted: it has no node (``primary`` is
    :data:`UNBOUND`), its volume is kept, and ``shoal dataset adopt`` makes it a
    dataset again; ``released_from`` is the node it was on (where it is adopted,
    and which destroys it if it is deleted for good, by default).

    ``readers`` are the nodes besides the primary that mount a ``ReadOnlyMany``
    dataset read-only (its consumers there); the primary mounts it read-only
    too, and no node mounts it read-write. ``backend`` names the backend its
    volume is on (its class's, else the one placement chose; ``None``: the
    primary's first backend). Both are on the agents' routes only.
    """

    dataset_id: UUID
    primary: UUID
    maximum_size: int | None = field(default=None, validator=_valid_size)
    metadata: PMap = field(factory=pmap, converter=_freeze_map, validator=_valid_metadata)
    deleted: bool = False
    deleted_generation: int | None = None
    epoch: int = 0
    source: DataSource | None = None
    filesystem: str = FILESYSTEMS[0]
    failover: bool | None = None
    failover_grace: float | None = None
    storage_class: str | None = None
    access_mode: AccessMode = AccessMode.RWO
    released: bool = False
    released_from: UUID | None = None
    readers: frozenset[UUID] = field(default=frozenset(), converter=_uuid_set)
    backend: str | None = None

    @property
    def read_only(self) -> bool:
        """Whether the dataset is mounted read-only wherever it is (``ReadOnlyMany``)."""
        return self.access_mode is AccessMode.ROX

    def holders(self) -> frozenset[UUID]:
        """The nodes that should mount it: its primary (if bound) and its readers."""
        return self.readers | ({self.primary} if self.bound else frozenset())

    @property
    def name(self) -> str | None:
        """The volume name a container runtime knows this dataset by, if any."""
        return self.metadata.get("name")

    @property
    def raw(self) -> bool:
        """Whether this is a raw (block-mode) dataset: its device is used as it is."""
        return self.filesystem == RAW

    @property
    def bound(self) -> bool:
        """Whether the dataset has a node (``primary`` is not :data:`UNBOUND`)."""
        return self.primary != UNBOUND


@frozen
class Lease:
    """
    A node's claim on a dataset: while it holds, nobody else may move or
    delete the dataset. ``expires`` is an absolute time, or ``None`` for a
    lease that lasts until released.
    """

    dataset_id: UUID
    node_uuid: UUID
    expires: float | None = None

    def expired(self, now: float) -> bool:
        """Whether the lease has run out at ``now``."""
        return self.expires is not None and self.expires <= now

    def seconds_left(self, now: float) -> float | None:
        """Seconds until expiry (never negative), or ``None`` if it never expires."""
        if self.expires is None:
            return None
        return max(0.0, self.expires - now)


@frozen
class Fence:
    """
    Why a node is fenced: cut off from its datasets so that another node may take them.

    ``at`` is when (the control service's clock), ``reason`` why as a person
    reads it, ``actor`` who did it (``failover`` for the control service's
    own failover, else the operator's client identity). An ``automatic``
    fence is lifted by the control service once the node has registered again
    (``rejoined_at``) and reports that it holds nothing now primary elsewhere;
    an operator's fence stays until ``shoal node unfence``.
    """

    at: float
    reason: str
    actor: str | None = None
    automatic: bool = False
    rejoined_at: float | None = None


@frozen
class Node:
    """
    A node known to the cluster: registered by its agent.

    ``era`` is the node's kernel boot id: it changes when the node reboots.
    ``last_seen`` is when the control service last heard from the agent.
    ``mount_root`` is the directory under which the agent mounts datasets
    (reported paths must lie below it). ``identity`` names the client
    certificate that registered the node (its SHA-256 fingerprint), or
    ``None`` when the service runs without TLS. ``fence`` is set while the
    node is fenced (docs/failover.md), ``draining`` while an operator has
    its datasets moved off it; registration keeps both.
    """

    uuid: UUID
    host: str
    era: str | None = None
    labels: PMap = field(factory=pmap, converter=_freeze_map)
    last_seen: float | None = None
    mount_root: str | None = None
    identity: str | None = None
    fence: Fence | None = None
    draining: bool = False

    @property
    def display_name(self) -> str:
        """What people call the node: its ``name`` label, else its host."""
        return str(self.labels.get("name") or self.host)

    def same_registration(self, other: Node) -> bool:
        """Whether ``other`` registers the same facts (ignoring when it was seen)."""
        return (self.host, self.era, self.labels, self.mount_root, self.identity) == (
            other.host,
            other.era,
            other.labels,
            other.mount_root,
            other.identity,
        )

    def is_live(self, now: float, timeout: float) -> bool:
        """Whether the node was heard from within ``timeout`` seconds of ``now``."""
        return self.last_seen is not None and now - self.last_seen <= timeout


class VolumeStatus(enum.Enum):
    """How far a dataset's volume is realised on one node."""

    PRESENT = "present"
    """The volume exists in the backend and this node can see it, unattached."""
    ATTACHED = "attached"
    """The volume is attached to this node as a block device, not mounted."""
    MOUNTED = "mounted"
    """The volume's filesystem is mounted on this node at ``path``."""


class ConditionKind(enum.Enum):
    """Whether a condition is a failure or an expected wait."""

    ERROR = "error"
    """A step failed; the agent retries it with backoff unless ``permanent``."""
    WAITING = "waiting"
    """The agent waits on something outside its control (another node, a lease)."""


@frozen
class Condition:
    """
    Why a dataset (or, with ``dataset_id`` ``None``, the whole node) is not
    where its configuration wants it, as the agent that sees it reports.

    ``reason`` is a short machine-readable code (``too_large``, ``busy``,
    ``no_space``, ``io_error``, ``waiting_for_node``, ...); ``step`` the change
    that fails (``create``, ``attach``, ``mkfs``, ``mount``, ``unmount``,
    ``detach``, ``destroy``), if any; ``message`` the cause as a person reads
    it. ``since`` is when the agent first saw it (its own clock), ``attempts``
    how many times the step was tried. A ``permanent`` condition cannot clear
    without a change of configuration (a size no pool can hold).
    """

    dataset_id: UUID | None
    kind: ConditionKind
    reason: str
    message: str
    since: float
    step: str | None = None
    attempts: int = 1
    permanent: bool = False


@frozen
class Capacity:
    """
    What one node's backend can hold, as the node reports it.

    Sizes are bytes, ``None`` when unknown. ``maximum_volume_size`` is the
    largest single volume the backend can create; ``shared`` says whether its
    volumes can reach other nodes (a shared pool or SAN) or stay node-local.
    ``snapshot_method`` says how it makes snapshots and clones (``"reflink"``,
    ``"copy"``, ``"rbd"``, ...), ``None`` when it does not say.
    ``read_only_many`` says whether it can attach one volume read-only to
    several nodes at once (``ReadOnlyMany`` readers, docs/placement.md).
    """

    backend: str
    total: int | None = None
    free: int | None = None
    maximum_volume_size: int | None = None
    shared: bool = True
    snapshot_method: str | None = None
    read_only_many: bool = False


@frozen
class OrphanVolume:
    """A backend volume a node sees that no dataset record owns."""

    blockdevice_id: str
    dataset_id: UUID | None = None
    size: int | None = None


@frozen
class DatasetSnapshot:
    """
    A point-in-time, copy-on-write capture of one dataset's volume.

    ``name`` is unique among live snapshots (create is idempotent by name).
    ``dataset_id`` is the source dataset, which the snapshot outlives.
    ``node`` is the node in charge of making (and later destroying) it: the
    source's primary when it was asked for, else a live node on the backend.
    ``size`` is the restore size in bytes once known. ``ready`` becomes true
    when that node reports the snapshot made; ``deleted`` when it is asked
    to go (the record is purged once the node reports it gone).
    ``filesystem`` is the source's filesystem, which a restore keeps (the
    snapshot outlives the source's record). ``deleted_generation`` is the
    configuration generation of the deletion (not on the wire), as for
    :class:`Dataset`.
    """

    snapshot_id: UUID
    name: str
    dataset_id: UUID
    created: float
    node: UUID
    size: int | None = None
    ready: bool = False
    deleted: bool = False
    filesystem: str = FILESYSTEMS[0]
    deleted_generation: int | None = None


@frozen
class ReportedSnapshot:
    """A snapshot a node sees in its backend, as it reports it."""

    snapshot_id: UUID
    size: int


def _conditions(value: Iterable[Condition]) -> tuple[Condition, ...]:
    return tuple(value)


def _orphans(value: Iterable[OrphanVolume]) -> tuple[OrphanVolume, ...]:
    return tuple(value)


def _capacity_list(value: Iterable[Capacity]) -> tuple[Capacity, ...]:
    return tuple(value)


def _snapshots(value: Iterable[ReportedSnapshot]) -> tuple[ReportedSnapshot, ...]:
    return tuple(value)


@frozen
class DatasetState:
    """What one node reports about one dataset's volume."""

    dataset_id: UUID
    status: VolumeStatus
    maximum_size: int | None = None
    device: str | None = None
    path: str | None = None


@frozen
class NodeState:
    """
    The actual state one node reports.

    ``generation`` is the configuration generation the agent had seen when it
    made the observation: it tells the control service which deletions the
    node has already acted on. ``conditions`` say what blocks its datasets,
    ``capacity`` what its (first) backend can hold, ``capacities`` every
    backend's when it runs several (empty: only ``capacity``; see
    :meth:`all_capacities`), and ``orphans`` which backend
    volumes it sees that no dataset owns, ``snapshots`` the snapshots it was
    asked to make that exist in its backend.
    """

    node_uuid: UUID
    era: str | None = None
    generation: int = 0
    datasets: PMap = field(factory=pmap, converter=_freeze_map)
    reported_at: float | None = None
    conditions: tuple[Condition, ...] = field(default=(), converter=_conditions)
    capacity: Capacity | None = None
    orphans: tuple[OrphanVolume, ...] = field(default=(), converter=_orphans)
    capacities: tuple[Capacity, ...] = field(default=(), converter=_capacity_list)
    snapshots: tuple[ReportedSnapshot, ...] = field(default=(), converter=_snapshots)

    def same_observation(self, other: NodeState) -> bool:
        """Whether ``other`` reports the same facts (ignoring when it was sent)."""
        return self._facts() == other._facts()

    def _facts(self) -> tuple[object, ...]:
        return (self.datasets, *self.facts_besides_datasets())

    def facts_besides_datasets(self) -> tuple[object, ...]:
        """The facts :meth:`same_observation` compares, all but the datasets (which a
        caller that already diffed them need not compare again)."""
        return (
            self.era,
            self.generation,
            self.conditions,
            self.capacity,
            self.capacities,
            self.orphans,
            self.snapshots,
        )

    def all_capacities(self) -> tuple[Capacity, ...]:
        """Every backend's capacity, the first (default) backend first."""
        if self.capacities:
            return self.capacities
        return () if self.capacity is None else (self.capacity,)

    def capacity_of(self, backend: str | None) -> Capacity | None:
        """The capacity of ``backend`` (``None``: the first backend), if reported."""
        found = self.all_capacities()
        if backend is None:
            return found[0] if found else None
        return next((c for c in found if c.backend == backend), None)

    def conditions_of(self, dataset_id: UUID | None) -> tuple[Condition, ...]:
        """The conditions reported for ``dataset_id`` (``None``: the node's own)."""
        return tuple(c for c in self.conditions if c.dataset_id == dataset_id)


@frozen
class Configuration:
    """
    The desired configuration of the whole cluster at one generation.

    The generation increases with every configuration write; its string form
    is the configuration tag that conditional writes compare against.
    """

    generation: int = 0
    datasets: PMap = field(factory=pmap, converter=_freeze_map)
    leases: PMap = field(factory=pmap, converter=_freeze_map)
    changes: ChangeLog = field(factory=ChangeLog, eq=False, repr=False)
    """Which datasets the latest generations changed (to patch encoded listings); not
    part of the value: two configurations that differ only here are equal."""

    @property
    def tag(self) -> str:
        """The opaque configuration tag (``X-Configuration-Tag``)."""
        return tag_for(self.generation)

    def live_leases(self, now: float) -> PMap:
        """The leases that have not expired at ``now``."""
        return pmap({k: v for k, v in self.leases.items() if not v.expired(now)})


@frozen
class ClusterState:
    """The actual state: registered nodes and their latest reports."""

    version: int = 0
    nodes: PMap = field(factory=pmap, converter=_freeze_map)
    reports: PMap = field(factory=pmap, converter=_freeze_map)


@frozen
class Versions:
    """The two counters a watcher waits on."""

    configuration: int
    state: int

    def passed(self, configuration: int, state: int) -> bool:
        """Whether either counter has moved beyond the given values."""
        return self.configuration > configuration or self.state > state


@frozen
class Event:
    """
    One entry of the event history: something that happened to a dataset or
    a node. ``event_id`` is assigned by the store (increasing), ``at`` is the
    control service's clock, ``actor`` who caused it (a node name, a client
    identity), ``details`` free-form facts such as ``from`` and ``to`` nodes.
    """

    kind: str
    at: float
    message: str
    dataset_id: UUID | None = None
    node_uuid: UUID | None = None
    actor: str | None = None
    details: PMap = field(factory=pmap, converter=_freeze_map)
    event_id: int | None = None


def tag_for(generation: int) -> str:
    """The configuration tag of ``generation``."""
    return str(generation)
