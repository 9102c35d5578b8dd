"""
Decide what one node should do next: pure, synchronous, no I/O.

:func:`calculate_changes` compares what the node was sent (the desired
datasets) with what it observed (:class:`~agent.discovery.LocalState`) and
returns the changes of one pass as a tree of values. Per dataset, the policy
is the explicit table :data:`DATASET_TRANSITIONS`: desired state x discovered
state -> a function producing the change.

Each pass takes at most one step per dataset, because the next step depends on
facts only the next observation shows (the absence of a mount before a
detach); except where the step's success is all the next needs: unmount then
detach when letting go, mkfs then mount, and attach then mount (the mount
looks at the device the attach made, and mounts it only if it holds a
filesystem ready to mount, :class:`~agent.changes.MountAttached`). The
loop passes again at once while a pass did anything (see
:func:`agent.changes.sleep_after`).

Safety rules the table keeps (each has a test):

- only a deleted dataset's volume is destroyed, by its primary, unattached;
- a volume whose dataset the node was not sent (unknown) is never touched;
- mkfs only on a device discovery found without a filesystem (a mount right
  after an attach never formats: a device without a filesystem waits for
  the next pass);
- a detach is never produced for a mounted volume (unmount first), nor for
  one the listing says is attached here without the backend confirming it
  (a stale listing: it may be attached to another node by now);
- a volume attached to another node is never attached here (Wait instead),
  so a dataset is mounted on at most one node read-write; unless that node is fenced
  (``fenced_nodes``), when its attachment is fenced in the backend first;
- an attach carries the dataset's epoch, and a volume the backend saw at a
  newer epoch is never attached (a stale configuration: Wait);
- a fenced or self-fenced node attaches, formats and mounts nothing; a fenced
  node shuts down, unmounts (lazily) and detaches what is primary elsewhere,
  whatever its leases; a fence's leftovers are always cleaned up
  (:mod:`agent.fencing`);
- a volume is created only when discovery shows none for the dataset (and
  the backend's create is idempotent by dataset as a second guard), and
  only when the backend reports it fits (else the report says why);
- a volume this node holds a live lease on is not unmounted or detached;
- a raw (block-mode) dataset's device is attached, grown, and let go like
  any other, but never formatted and never mounted by the agent
  (:data:`RAW_HERE`); a mount of it at the agent's mount point is undone;
- a ``ReadOnlyMany`` dataset is attached and mounted read-only on its primary
  and each reader, never read-write while any node reads it: only the primary
  of a new one attaches it read-write, to format it, while no reader has it;
- a restore or clone never formats: its volume arrives with its source's
  filesystem, which is grown (offline for ext4, online for xfs) when the
  volume is larger; a volume grows only while mounted here, within capacity;
- a clone is made by its primary, unless its source is attached to another
  node: that node makes it (only it can freeze the source) and the primary
  waits, then attaches it;
- a snapshot is made by the node it was given to, freezing the source's
  filesystem only when it is mounted here; never while the source is
  attached to another node (which could not be frozen from here), nor in a
  pass that attaches, mounts or lets go of the source; a ready
  snapshot that vanished is never made again (it would be another instant);
  only a deleted snapshot is destroyed.

Snapshots have their own table, :data:`SNAPSHOT_TRANSITIONS`: wanted state x
found in the backend -> change.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from uuid import UUID

from attrs import frozen
from pyrsistent import PMap, pmap

from agent.changes import (
    AttachVolume,
    Change,
    CloneVolume,
    CreateSnapshot,
    CreateVolume,
    DestroySnapshot,
    DestroyVolume,
    DetachVolume,
    FenceVolume,
    GrowFilesystem,
    MakeFilesystem,
    MountAttached,
    MountFilesystem,
    NoOp,
    ResizeVolume,
    RestoreVolume,
    UnmountFilesystem,
    Wait,
    actions,
    in_parallel,
    sequentially,
)
from agent.discovery import (
    ATTACHED_HERE_STATES,
    GROW_SLACK,
    MOUNTED_STATES,
    DiscoveredDataset,
    DiscoveredState,
    LocalState,
    mount_point,
)
from agent.fencing import FenceView, hold, leftover_changes, let_go_fenced, stale
from agent.health import fits
from control.model import Capacity, Dataset, DatasetSnapshot, Lease, SourceKind

GiB = 1024 * 1024 * 1024
DEFAULT_VOLUME_SIZE = GiB
"""The size of a volume created for a dataset without ``maximum_size``."""
WAITING_FOR_NODE = "waiting_for_node"
"""The code of a wait for another node (named by uuid) to let a volume go."""


class DesiredState(enum.Enum):
    """What the configuration wants for one dataset, from this node's point of view."""

    MOUNTED_HERE = "mounted_here"
    """Live, and this node is its primary: it should be mounted here."""
    ELSEWHERE = "elsewhere"
    """Live, another node is its primary: this node should let go of it."""
    DELETED_HERE = "deleted_here"
    """Deleted, and this node is its primary: this node destroys the volume."""
    DELETED_ELSEWHERE = "deleted_elsewhere"
    """Deleted, another node is its primary: let go of it; that node destroys it."""
    READ_ONLY_HERE = "read_only_here"
    """Live ``ReadOnlyMany``, this node its primary or a reader: mounted read-only here."""
    UNKNOWN = "unknown"
    """No record was sent: never touch the volume."""


@frozen
class ClusterView:
    """
    The little this node needs to know about the rest of the cluster.

    ``node_uuid`` is this node's identity (desired primaries name node
    uuids); ``leased_here`` are the datasets this node holds a live lease on;
    ``fence`` what the pass knows of fencing (:class:`~agent.fencing.FenceView`).
    """

    node_uuid: UUID
    leased_here: frozenset[UUID] = frozenset()
    fence: FenceView = FenceView()

    @classmethod
    def from_leases(cls, node_uuid: UUID, leases: Iterable[Lease], now: float) -> ClusterView:
        """The view for ``node_uuid`` given the configuration's leases at ``now``."""
        held = frozenset(
            lease.dataset_id
            for lease in leases
            if lease.node_uuid == node_uuid and not lease.expired(now)
        )
        return cls(node_uuid=node_uuid, leased_here=held)


@frozen
class Context:
    """What every transition function may consult besides the dataset itself."""

    instance_id: str
    mount_root: str
    leased_here: frozenset[UUID]
    default_size: int
    capacity: Capacity | None = None
    snapshots: PMap = pmap()
    """The backend's snapshots by id (:attr:`LocalState.snapshots`)."""
    volumes: PMap = pmap()
    """Every dataset's discovered volume (:attr:`LocalState.datasets`): clone sources."""
    fence: FenceView = FenceView()
    node_uuid: UUID | None = None
    """This node (to tell a ``ReadOnlyMany`` dataset's primary from its readers)."""
    capacities: PMap = pmap()
    """Each backend's capacity by name, when the node runs several."""


Transition = Callable[[Dataset | None, DiscoveredDataset, Context], Change]


def desired_state(record: Dataset | None, node_uuid: UUID) -> DesiredState:
    """Classify one dataset's record (or its absence) for the node ``node_uuid``."""
    if record is None:
        return DesiredState.UNKNOWN
    here = record.primary == node_uuid
    if record.deleted:
        return DesiredState.DELETED_HERE if here else DesiredState.DELETED_ELSEWHERE
    if record.read_only and not record.released and (here or node_uuid in record.readers):
        return DesiredState.READ_ONLY_HERE
    return DesiredState.MOUNTED_HERE if here else DesiredState.ELSEWHERE


# -- transitions: (record, found, context) -> change ----------------------------


def _nothing(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    return NoOp()


def _create(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    assert record is not None
    if ctx.fence.holding:
        return hold(record.dataset_id, ctx.fence)
    if record.source is not None:
        return _create_from_source(record, ctx)
    size = record.maximum_size or ctx.default_size
    capacity = ctx.capacities.get(record.backend, ctx.capacity) if record.backend else ctx.capacity
    if not fits(capacity, size):  # reported as too_large / no_space (agent.health)
        return NoOp()
    return CreateVolume(record.dataset_id, size, record.backend)


def _create_from_source(record: Dataset, ctx: Context) -> Change:
    """Restore (from a snapshot) or clone (from a dataset's volume), at least the source's size."""
    assert record.source is not None
    source_id = record.source.source_id
    if record.source.kind is SourceKind.SNAPSHOT:
        snapshot = ctx.snapshots.get(str(source_id))
        if snapshot is None:
            return Wait(
                record.dataset_id,
                f"waiting for snapshot {source_id} to exist in the backend before restoring it",
                "waiting_for_snapshot",
            )
        size = max(record.maximum_size or snapshot.size, snapshot.size)
        if not fits(ctx.capacity, size):
            return NoOp()
        return RestoreVolume(record.dataset_id, str(source_id), size)
    source = ctx.volumes.get(source_id)
    if source is None or source.blockdevice_id is None or source.size is None:
        return Wait(
            record.dataset_id,
            f"waiting for dataset {source_id}'s volume to exist before cloning it",
            "waiting_for_source",
        )
    if source.state in (DiscoveredState.ATTACHED_ELSEWHERE, DiscoveredState.ATTACHED_NO_DEVICE):
        return Wait(
            record.dataset_id,
            f"the clone's source, dataset {source_id}, is attached to node {source.attached_to}, "
            "which can freeze it and makes the clone; waiting for it",
            "waiting_for_source",
        )
    size = max(record.maximum_size or source.size, source.size)
    if not fits(ctx.capacity, size):
        return NoOp()
    return CloneVolume(record.dataset_id, source.blockdevice_id, size, _frozen_at(source))


def _clone_for_primary(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """Make the volume of a clone whose primary is elsewhere, if its source is attached here.

    Only this node can freeze the source for the copy; the clone's primary
    waits meanwhile, then attaches the new volume.
    """
    if record is None or record.source is None or record.source.kind is not SourceKind.DATASET:
        return NoOp()
    source = ctx.volumes.get(record.source.source_id)
    if (
        source is None
        or source.blockdevice_id is None
        or source.size is None
        or (source.state not in MOUNTED_STATES and source.state not in ATTACHED_HERE_STATES)
    ):
        return NoOp()
    size = max(record.maximum_size or source.size, source.size)
    if not fits(ctx.capacity, size):
        return NoOp()
    return CloneVolume(record.dataset_id, source.blockdevice_id, size, _frozen_at(source))


def _frozen_at(found: DiscoveredDataset) -> str | None:
    """Where to freeze a volume's filesystem for a copy: its mount here, if mounted."""
    return found.mount_paths[0] if found.state in MOUNTED_STATES and found.mount_paths else None


def _smaller_than_volume(found: DiscoveredDataset) -> bool:
    info = found.filesystem
    return info is not None and found.size is not None and info.size + GROW_SLACK < found.size


def _attach(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """Attach at the dataset's epoch, then mount in the same pass (:func:`_attach_and_mount`)."""
    assert found.blockdevice_id is not None and record is not None
    if found.epoch > record.epoch:
        return stale(found.dataset_id, found, record.epoch)
    if ctx.fence.holding:
        return hold(found.dataset_id, ctx.fence)
    return _attach_and_mount(record, found, ctx)


def _attach_and_mount(record: Dataset, found: DiscoveredDataset, ctx: Context) -> Change:
    """Attach, then mount what the attach made, if it holds a filesystem (the mount runs only
    if the attach worked, and does nothing to a device it finds unformatted or too small:
    :class:`MountAttached`). A raw dataset is only attached: the agent never mounts it."""
    assert found.blockdevice_id is not None
    attach = AttachVolume(found.dataset_id, found.blockdevice_id, record.epoch)
    if record.raw:
        return attach
    path = mount_point(ctx.mount_root, found.dataset_id)
    mount = MountAttached(found.dataset_id, found.blockdevice_id, path, found.size)
    return sequentially([attach, mount])


def _holder_fenced(found: DiscoveredDataset, ctx: Context) -> FenceVolume | None:
    """The backend fence of the volume's holder, if that node is fenced (and this one is not)."""
    if ctx.fence.holding or found.attached_to not in ctx.fence.fenced_nodes:
        return None
    assert found.blockdevice_id is not None and found.attached_to is not None
    return FenceVolume(
        found.dataset_id,
        found.blockdevice_id,
        found.attached_to,
        f"node {found.attached_to} is fenced and still holds volume {found.blockdevice_id}",
    )


def _take_over(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """Wait for the holder to let go, unless it is fenced: then fence it, and attach."""
    assert found.blockdevice_id is not None and record is not None
    if found.epoch > record.epoch:
        return stale(found.dataset_id, found, record.epoch)
    fence = _holder_fenced(found, ctx)
    if fence is None:
        return _wait_for_holder(record, found, ctx)
    return sequentially([fence, _attach_and_mount(record, found, ctx)])


def _fence_or_wait(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """A deleted dataset's volume held elsewhere: fence a fenced holder, else wait for it."""
    return _holder_fenced(found, ctx) or _wait_for_holder(record, found, ctx)


def _wait_for_holder(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    return Wait(
        found.dataset_id,
        f"waiting for node {found.attached_to} to unmount and detach volume {found.blockdevice_id}",
        WAITING_FOR_NODE,
    )


def _wait_for_consistency(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    return Wait(
        found.dataset_id,
        f"the backend lists volume {found.blockdevice_id} as attached here but has no device "
        "for it; waiting for a consistent listing",
        "waiting_for_backend",
    )


def _make_filesystem(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """Format the device, then mount it in the same pass (the mount runs only if mkfs worked):
    the filesystem just made fills its device, so nothing is left to observe in between."""
    assert found.device is not None and record is not None
    if ctx.fence.holding:
        return hold(found.dataset_id, ctx.fence)
    made = MakeFilesystem(found.dataset_id, found.device, record.filesystem)
    return sequentially([made, _mount(record, found, ctx)])


def _grow_or_mount(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """Grow an ext4 that is smaller than its volume (offline, before mounting); else mount."""
    assert found.device is not None
    if ctx.fence.holding:
        return hold(found.dataset_id, ctx.fence)
    info = found.filesystem
    if info is not None and info.kind == "ext4" and _smaller_than_volume(found):
        return GrowFilesystem(found.dataset_id, found.device)
    return _mount(record, found, ctx)


def _keep_mounted(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """Grow a filesystem smaller than its volume, or a volume smaller than wanted, online."""
    assert record is not None and found.device is not None and found.blockdevice_id is not None
    if ctx.fence.holding:
        return NoOp()
    if _smaller_than_volume(found):
        return GrowFilesystem(found.dataset_id, found.device)
    return _grow_volume(record, found, ctx)


def _grow_volume(record: Dataset, found: DiscoveredDataset, ctx: Context) -> Change:
    """Grow the volume to the dataset's size when it is smaller (within capacity)."""
    assert found.blockdevice_id is not None
    wanted = record.maximum_size
    if wanted is not None and found.size is not None and wanted > found.size:
        if not fits(ctx.capacity, wanted - found.size):
            return Wait(
                found.dataset_id,
                f"the backend has no room to grow volume {found.blockdevice_id} to {wanted} bytes",
                "no_space",
            )
        return ResizeVolume(found.dataset_id, found.blockdevice_id, wanted)
    return NoOp()


def _keep_raw(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """A raw dataset attached here: keep it attached, unformatted and unmounted; grow it."""
    assert record is not None
    if ctx.fence.holding:
        return NoOp()
    return _grow_volume(record, found, ctx)


def _unmount_raw(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """A raw dataset mounted at the agent's mount point (never by this agent): unmount it there."""
    return UnmountFilesystem(found.dataset_id, mount_point(ctx.mount_root, found.dataset_id))


def _mount(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    assert found.device is not None
    return MountFilesystem(
        found.dataset_id, found.device, mount_point(ctx.mount_root, found.dataset_id)
    )


def _unmount_all(found: DiscoveredDataset) -> Change:
    return sequentially(UnmountFilesystem(found.dataset_id, path) for path in found.mount_paths)


def _unmount_other_paths(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    return _unmount_all(found)


def _detach(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    assert found.blockdevice_id is not None
    return DetachVolume(found.dataset_id, found.blockdevice_id, read_only=found.read_only)


def _leased(found: DiscoveredDataset, ctx: Context) -> Change | None:
    if found.dataset_id in ctx.leased_here:
        return Wait(found.dataset_id, "this node holds a lease on it; not letting go", "leased")
    return None


def _release_unmount(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """Unmount, then detach in the same pass: the detach runs only if every unmount worked.

    A fenced node shuts the filesystem down first and unmounts lazily,
    whatever its leases (the control service released them).
    """
    if ctx.fence.fenced:
        return let_go_fenced(found)
    return _leased(found, ctx) or sequentially([_unmount_all(found), _detach(record, found, ctx)])


def _release_detach(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    if ctx.fence.fenced:
        return _detach(record, found, ctx)
    return _leased(found, ctx) or _detach(record, found, ctx)


def _destroy(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    assert record is not None and record.deleted and found.blockdevice_id is not None
    return DestroyVolume(found.dataset_id, found.blockdevice_id)


# -- ReadOnlyMany: mounted read-only on the primary and every reader ------------


def _is_primary(record: Dataset | None, ctx: Context) -> bool:
    return record is not None and record.primary == ctx.node_uuid


def _create_for_readers(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """The primary creates the volume (restores, clones); a reader waits for it."""
    if _is_primary(record, ctx):
        return _create(record, found, ctx)
    return Wait(
        found.dataset_id,
        "waiting for the dataset's primary to create its volume before reading it",
        "waiting_for_primary",
    )


def _attach_read_only(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    assert found.blockdevice_id is not None
    if ctx.fence.holding:
        return hold(found.dataset_id, ctx.fence)
    return AttachVolume(found.dataset_id, found.blockdevice_id, read_only=True)


def _take_over_read_only(
    record: Dataset | None, found: DiscoveredDataset, ctx: Context
) -> Change:
    """Attached read-write elsewhere: wait for it (the primary formatting it), unless that
    node is fenced: fence it, then attach read-only."""
    assert found.blockdevice_id is not None
    fence = _holder_fenced(found, ctx)
    if fence is None:
        return _wait_for_holder(record, found, ctx)
    return sequentially([fence, _attach_read_only(record, found, ctx)])


def _format_read_only(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """No filesystem yet: only the primary of a new (sourceless) dataset makes one, attached
    read-write while no reader has the volume; then it goes back to read-only."""
    assert record is not None and found.blockdevice_id is not None
    if ctx.fence.holding:
        return hold(found.dataset_id, ctx.fence)
    if not found.read_only:
        if _is_primary(record, ctx) and record.source is None:
            assert found.device is not None  # formatted only: never mounted read-write
            return MakeFilesystem(found.dataset_id, found.device, record.filesystem)
        return _detach(record, found, ctx)
    others = found.readers - {ctx.instance_id}
    if _is_primary(record, ctx) and record.source is None and not others:
        return sequentially([
            _detach(record, found, ctx),
            AttachVolume(found.dataset_id, found.blockdevice_id, record.epoch),
        ])
    wait = Wait(
        found.dataset_id,
        f"volume {found.blockdevice_id} has no filesystem yet; its primary makes one "
        "while no node reads it",
        "waiting_for_filesystem",
    )
    if _is_primary(record, ctx):
        return wait
    return sequentially([_detach(record, found, ctx), wait])


def _mount_read_only(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """Mount a read-only attachment read-only; let go of a read-write one (made to format)."""
    assert found.device is not None
    if ctx.fence.holding:
        return hold(found.dataset_id, ctx.fence)
    if not found.read_only:
        return _detach(record, found, ctx)
    return MountFilesystem(
        found.dataset_id, found.device, mount_point(ctx.mount_root, found.dataset_id), True
    )


def _wait_for_readers(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    return Wait(
        found.dataset_id,
        f"volume {found.blockdevice_id} is attached read-only to "
        f"{', '.join(sorted(found.readers))}; waiting for them to let go",
        WAITING_FOR_NODE,
    )


_D = DesiredState
_S = DiscoveredState

_LET_GO: dict[DiscoveredState, Transition] = {
    _S.NON_EXISTENT: _nothing,
    _S.UNATTACHED: _nothing,
    _S.ATTACHED_ELSEWHERE: _nothing,
    _S.ATTACHED_NO_DEVICE: _wait_for_consistency,
    _S.ATTACHED_NO_FILESYSTEM: _release_detach,
    _S.ATTACHED_HERE: _release_detach,
    _S.MOUNTED_HERE: _release_unmount,
    _S.MOUNTED_OTHER_PATH: _release_unmount,
    _S.READ_ONLY_ELSEWHERE: _nothing,
}

DATASET_TRANSITIONS: Mapping[DesiredState, Mapping[DiscoveredState, Transition]] = {
    _D.MOUNTED_HERE: {
        _S.NON_EXISTENT: _create,
        _S.UNATTACHED: _attach,
        _S.ATTACHED_ELSEWHERE: _take_over,
        _S.ATTACHED_NO_DEVICE: _wait_for_consistency,
        _S.ATTACHED_NO_FILESYSTEM: _make_filesystem,
        _S.ATTACHED_HERE: _grow_or_mount,
        _S.MOUNTED_HERE: _keep_mounted,
        _S.MOUNTED_OTHER_PATH: _unmount_other_paths,
        _S.READ_ONLY_ELSEWHERE: _wait_for_readers,
    },
    _D.READ_ONLY_HERE: {
        _S.NON_EXISTENT: _create_for_readers,
        _S.UNATTACHED: _attach_read_only,
        _S.ATTACHED_ELSEWHERE: _take_over_read_only,
        _S.ATTACHED_NO_DEVICE: _wait_for_consistency,
        _S.ATTACHED_NO_FILESYSTEM: _format_read_only,
        _S.ATTACHED_HERE: _mount_read_only,
        _S.MOUNTED_HERE: _nothing,
        _S.MOUNTED_OTHER_PATH: _unmount_other_paths,
        _S.READ_ONLY_ELSEWHERE: _attach_read_only,
    },
    _D.ELSEWHERE: {**_LET_GO, _S.NON_EXISTENT: _clone_for_primary},
    _D.DELETED_ELSEWHERE: _LET_GO,
    _D.DELETED_HERE: {
        **_LET_GO,
        _S.UNATTACHED: _destroy,
        _S.ATTACHED_ELSEWHERE: _fence_or_wait,
        _S.READ_ONLY_ELSEWHERE: _wait_for_readers,
    },
    _D.UNKNOWN: {state: _nothing for state in DiscoveredState},
}
"""Per-dataset policy: desired state x discovered state -> the change to make."""

RAW_HERE: Mapping[DiscoveredState, Transition] = {
    **DATASET_TRANSITIONS[_D.MOUNTED_HERE],
    _S.ATTACHED_NO_FILESYSTEM: _keep_raw,
    _S.ATTACHED_HERE: _keep_raw,
    _S.MOUNTED_HERE: _unmount_raw,
    _S.MOUNTED_OTHER_PATH: _keep_raw,
}
"""The :data:`DATASET_TRANSITIONS` row of a raw dataset whose primary is this node: attached,
never formatted (whatever its device holds), never mounted by the agent."""


def transition_for(
    record: Dataset | None, desired: DesiredState, found: DiscoveredState
) -> Transition:
    """The transition for one dataset: :data:`RAW_HERE` for a raw one wanted here."""
    if desired is _D.MOUNTED_HERE and record is not None and record.raw:
        return RAW_HERE[found]
    return DATASET_TRANSITIONS[desired][found]


# -- snapshots -------------------------------------------------------------------


class SnapshotWanted(enum.Enum):
    """What the configuration wants of one snapshot this node is in charge of."""

    MAKE = "make"
    """Live and not ready: make it (the report marks it ready)."""
    KEEP = "keep"
    """Live and ready: keep it."""
    DELETED = "deleted"
    """Asked to go: destroy it."""


class SnapshotFound(enum.Enum):
    """Whether the backend lists the snapshot (whole)."""

    ABSENT = "absent"
    PRESENT = "present"


SnapshotTransition = Callable[[DatasetSnapshot, Context], Change]


def snapshot_wanted(record: DatasetSnapshot) -> SnapshotWanted:
    """Classify one snapshot record."""
    if record.deleted:
        return SnapshotWanted.DELETED
    return SnapshotWanted.KEEP if record.ready else SnapshotWanted.MAKE


def _leave_snapshot(record: DatasetSnapshot, ctx: Context) -> Change:
    return NoOp()


def _make_snapshot(record: DatasetSnapshot, ctx: Context) -> Change:
    """Snapshot the source volume: freezing it if mounted here, waiting if it is elsewhere."""
    source = ctx.volumes.get(record.dataset_id)
    if source is None or source.blockdevice_id is None:
        return Wait(
            record.dataset_id,
            f"snapshot {record.snapshot_id} waits for dataset {record.dataset_id}'s volume, "
            "which does not exist",
            "waiting_for_source",
        )
    if source.state in (DiscoveredState.ATTACHED_ELSEWHERE, DiscoveredState.ATTACHED_NO_DEVICE):
        return Wait(
            record.dataset_id,
            f"snapshot {record.snapshot_id} waits for dataset {record.dataset_id}'s volume, "
            f"attached to node {source.attached_to}, to be here or unattached",
            "waiting_for_source",
        )
    return CreateSnapshot(
        record.dataset_id, str(record.snapshot_id), source.blockdevice_id, _frozen_at(source)
    )


def freezes_ahead(
    desired: Mapping[UUID, Dataset],
    snapshots: Iterable[DatasetSnapshot],
    node_uuid: UUID,
    local: LocalState | None,
) -> frozenset[str]:
    """Where the snapshots to make would freeze, going by the previous observation ``local``.

    The loop may start these freezes before its fresh observation is made
    (:meth:`agent.executor.Executor.freeze_ahead`): a freeze that the pass's
    changes do not use is thawed, copying nothing. Only where that is safe
    by the configuration just fetched (``desired``, for this node
    ``node_uuid``):

    - a snapshot's dataset is frozen ahead only while this node is still in
      charge of it: its record is live and makes this node its read-write
      primary (a move away asked in the same configuration freezes nothing);
    - nothing is frozen ahead when the pass may unmount anything: when any
      dataset the previous observation saw mounted here is not to stay
      mounted here, at its mount point (moved away, deleted, mounted
      elsewhere, raw). The loop also thaws every freeze ahead before acting
      unless all the pass does is snapshots (:func:`keeps_freezes_ahead`).
    """
    snapshots = tuple(snapshots)
    if not snapshots or local is None or not _all_mounts_stay(desired, node_uuid, local):
        return frozenset()  # no snapshot asked for (an idle pass): nothing to look at
    paths = set()
    for record in snapshots:
        found = local.datasets.get(record.dataset_id)
        dataset = desired.get(record.dataset_id)
        if (
            snapshot_wanted(record) is SnapshotWanted.MAKE
            and str(record.snapshot_id) not in local.snapshots
            and _stays_mounted_here(dataset, node_uuid)
            and found is not None
            and found.blockdevice_id is not None
            and found.state is DiscoveredState.MOUNTED_HERE
            and (path := _frozen_at(found)) is not None
        ):
            paths.add(path)
    return frozenset(paths)


def may_freeze_ahead(local: LocalState | None) -> bool:
    """Whether a configuration could make :func:`freezes_ahead` freeze anything, going by the
    previous observation ``local``: it saw a filesystem mounted here (pure)."""
    return local is not None and any(
        found.state is DiscoveredState.MOUNTED_HERE for found in local.datasets.values()
    )


def _stays_mounted_here(record: Dataset | None, node_uuid: UUID) -> bool:
    """Whether ``record`` keeps its dataset mounted read-write on ``node_uuid``."""
    return (
        record is not None
        and not record.raw
        and desired_state(record, node_uuid) is DesiredState.MOUNTED_HERE
    )


def _all_mounts_stay(desired: Mapping[UUID, Dataset], node_uuid: UUID, local: LocalState) -> bool:
    """Whether every dataset ``local`` saw mounted here stays mounted, where it is.

    A dataset the node was sent no record of is never touched (it stays);
    a read-only one stays while the node still reads it.
    """
    for dataset_id, found in local.datasets.items():
        if found.state not in MOUNTED_STATES:
            continue
        record = desired.get(dataset_id)
        if record is None:
            continue
        wanted = desired_state(record, node_uuid)
        staying = _stays_mounted_here(record, node_uuid) or wanted is DesiredState.READ_ONLY_HERE
        if not staying or found.state is not DiscoveredState.MOUNTED_HERE:
            return False
    return True


def keeps_freezes_ahead(changes: Change) -> bool:
    """Whether a pass running ``changes`` may keep its freezes ahead while it acts: only when
    it acts and every action is a snapshot (pure). Any other action (an unmount, a detach, a
    mount) runs with no freeze ahead held: the loop thaws them first."""
    ran = actions(changes)
    return bool(ran) and all(isinstance(change, CreateSnapshot) for change in ran)


def _destroy_snapshot(record: DatasetSnapshot, ctx: Context) -> Change:
    return DestroySnapshot(record.dataset_id, str(record.snapshot_id))


_W = SnapshotWanted
_F = SnapshotFound

SNAPSHOT_TRANSITIONS: Mapping[SnapshotWanted, Mapping[SnapshotFound, SnapshotTransition]] = {
    _W.MAKE: {_F.ABSENT: _make_snapshot, _F.PRESENT: _leave_snapshot},
    _W.KEEP: {_F.ABSENT: _leave_snapshot, _F.PRESENT: _leave_snapshot},
    _W.DELETED: {_F.ABSENT: _leave_snapshot, _F.PRESENT: _destroy_snapshot},
}
"""Per-snapshot policy: wanted state x found in the backend -> the change to make."""


def snapshot_changes(snapshots: Iterable[DatasetSnapshot], ctx: Context) -> list[Change]:
    """The change for each snapshot this node is in charge of, by snapshot id (pure)."""
    changes = []
    for record in sorted(snapshots, key=lambda s: str(s.snapshot_id)):
        found = _F.PRESENT if str(record.snapshot_id) in ctx.snapshots else _F.ABSENT
        changes.append(SNAPSHOT_TRANSITIONS[snapshot_wanted(record)][found](record, ctx))
    return changes


MOVING_THE_SOURCE = (
    UnmountFilesystem,
    DetachVolume,
    AttachVolume,
    MountAttached,
    MountFilesystem,
    MakeFilesystem,
    FenceVolume,
    DestroyVolume,
)
"""The changes that make or undo where a volume is attached or mounted: no snapshot of it is
made in the same pass (a growth, which the filesystem or the backend orders, may share it)."""


def _after_dataset_changes(changes: list[Change], busy: set[UUID]) -> list[Change]:
    """``changes`` of snapshots, but none made of a dataset the same pass attaches, mounts or
    lets go of (:data:`MOVING_THE_SOURCE`): the copy would race that change (a freeze against
    the unmount); it waits for the next pass's observation."""
    return [
        Wait(
            change.dataset_id,
            f"snapshot {change.snapshot_id} waits for this pass's change of dataset "
            f"{change.dataset_id} to be done",
            "waiting_for_source",
        )
        if isinstance(change, CreateSnapshot) and change.dataset_id in busy
        else change
        for change in changes
    ]


def _absent(dataset_id: UUID) -> DiscoveredDataset:
    return DiscoveredDataset(dataset_id=dataset_id, state=DiscoveredState.NON_EXISTENT)


def calculate_changes(
    desired: Mapping[UUID, Dataset],
    cluster: ClusterView,
    local: LocalState,
    node_instance_id: str,
    mount_root: str,
    default_size: int = DEFAULT_VOLUME_SIZE,
    snapshots: Iterable[DatasetSnapshot] = (),
) -> Change:
    """
    The changes this node should make now, as a tree of values (pure).

    ``desired`` are the dataset records the node was sent: those whose
    primary it is and those of volumes attached to it, deleted ones included
    until they are purged. Datasets are considered in id order, in parallel,
    then ``snapshots`` (the snapshot records the node is in charge of), then
    the leftovers of fences (:func:`agent.fencing.leftover_changes`).
    """
    ctx = Context(
        node_instance_id,
        mount_root,
        cluster.leased_here,
        default_size,
        local.capacity,
        snapshots=local.snapshots,
        volumes=local.datasets,
        fence=cluster.fence,
        node_uuid=cluster.node_uuid,
        capacities=pmap({c.backend: c for c in local.capacities}),
    )
    found_all = local.datasets
    changes = []
    busy = set()
    for dataset_id in sorted(desired.keys() | found_all.keys()):
        record = desired.get(dataset_id)
        found = found_all.get(dataset_id) or _absent(dataset_id)
        transition = transition_for(record, desired_state(record, cluster.node_uuid), found.state)
        change = transition(record, found, ctx)
        if any(isinstance(action, MOVING_THE_SOURCE) for action in actions(change)):
            busy.add(dataset_id)
        changes.append(change)
    changes.extend(_after_dataset_changes(snapshot_changes(snapshots, ctx), busy))
    changes.append(leftover_changes(local.leftovers))
    return in_parallel(changes)
