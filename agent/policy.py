"""
Decide what one node should do next: pure, synchronous, no I/O.

:func:`calculate_changes` compares what the node was sent (the desired
datasets) with what it observed (:class:`~agent.discovery.LocalState`) and
returns the changes of one pass as a tree of values. Per dataset, the policy
is the explicit table :data:`DATASET_TRANSITIONS`: desired state x discovered
state -> a function producing the change.

Each pass takes at most one step per dataset, because the next step depends on
facts only the next observation shows (a device path after an attach, the
absence of a mount before a detach). The loop passes again at once while a
pass did anything (see :func:`agent.changes.sleep_after`).

Safety rules the table keeps (each has a test):

- only a deleted dataset's volume is destroyed, by its primary, unattached;
- a volume whose dataset the node was not sent (unknown) is never touched;
- mkfs only on a device discovery found without a filesystem;
- a detach is never produced for a mounted volume (unmount first), nor for
  one the listing says is attached here without the backend confirming it
  (a stale listing: it may be attached to another node by now);
- a volume attached to another node is never attached here (Wait instead),
  so a dataset is mounted on at most one node;
- a volume is created only when discovery shows none for the dataset (and
  the backend's create is idempotent by dataset as a second guard), and
  only when the backend reports it fits (else the report says why);
- a volume this node holds a live lease on is not unmounted or detached.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from uuid import UUID

from attrs import frozen

from agent.changes import (
    AttachVolume,
    Change,
    CreateVolume,
    DestroyVolume,
    DetachVolume,
    MakeFilesystem,
    MountFilesystem,
    NoOp,
    UnmountFilesystem,
    Wait,
    in_parallel,
    sequentially,
)
from agent.discovery import DiscoveredDataset, DiscoveredState, LocalState, mount_point
from agent.health import fits
from control.model import Capacity, Dataset, Lease

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
    UNKNOWN = "unknown"
    """No record was sent: never touch the volume."""


@frozen
class ClusterView:
    """
    The little this node needs to know about the rest of the cluster.

    ``node_uuid`` is this node's identity (desired primaries name node
    uuids); ``leased_here`` are the datasets this node holds a live lease on.
    """

    node_uuid: UUID
    leased_here: frozenset[UUID] = frozenset()

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


Transition = Callable[[Dataset | None, DiscoveredDataset, Context], Change]


def desired_state(record: Dataset | None, node_uuid: UUID) -> DesiredState:
    """Classify one dataset's record (or its absence) for the node ``node_uuid``."""
    if record is None:
        return DesiredState.UNKNOWN
    here = record.primary == node_uuid
    if record.deleted:
        return DesiredState.DELETED_HERE if here else DesiredState.DELETED_ELSEWHERE
    return DesiredState.MOUNTED_HERE if here else DesiredState.ELSEWHERE


# -- transitions: (record, found, context) -> change ----------------------------


def _nothing(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    return NoOp()


def _create(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    assert record is not None
    size = record.maximum_size or ctx.default_size
    if not fits(ctx.capacity, size):  # reported as too_large / no_space (agent.health)
        return NoOp()
    return CreateVolume(record.dataset_id, size)


def _attach(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    assert found.blockdevice_id is not None
    return AttachVolume(found.dataset_id, found.blockdevice_id)


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
    assert found.device is not None
    return MakeFilesystem(found.dataset_id, found.device)


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
    return DetachVolume(found.dataset_id, found.blockdevice_id)


def _leased(found: DiscoveredDataset, ctx: Context) -> Change | None:
    if found.dataset_id in ctx.leased_here:
        return Wait(found.dataset_id, "this node holds a lease on it; not letting go", "leased")
    return None


def _release_unmount(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    """Unmount, then detach in the same pass: the detach runs only if every unmount worked."""
    return _leased(found, ctx) or sequentially([_unmount_all(found), _detach(record, found, ctx)])


def _release_detach(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    return _leased(found, ctx) or _detach(record, found, ctx)


def _destroy(record: Dataset | None, found: DiscoveredDataset, ctx: Context) -> Change:
    assert record is not None and record.deleted and found.blockdevice_id is not None
    return DestroyVolume(found.dataset_id, found.blockdevice_id)


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
}

DATASET_TRANSITIONS: Mapping[DesiredState, Mapping[DiscoveredState, Transition]] = {
    _D.MOUNTED_HERE: {
        _S.NON_EXISTENT: _create,
        _S.UNATTACHED: _attach,
        _S.ATTACHED_ELSEWHERE: _wait_for_holder,
        _S.ATTACHED_NO_DEVICE: _wait_for_consistency,
        _S.ATTACHED_NO_FILESYSTEM: _make_filesystem,
        _S.ATTACHED_HERE: _mount,
        _S.MOUNTED_HERE: _nothing,
        _S.MOUNTED_OTHER_PATH: _unmount_other_paths,
    },
    _D.ELSEWHERE: _LET_GO,
    _D.DELETED_ELSEWHERE: _LET_GO,
    _D.DELETED_HERE: {**_LET_GO, _S.UNATTACHED: _destroy, _S.ATTACHED_ELSEWHERE: _wait_for_holder},
    _D.UNKNOWN: {state: _nothing for state in DiscoveredState},
}
"""Per-dataset policy: desired state x discovered state -> the change to make."""


def _absent(dataset_id: UUID) -> DiscoveredDataset:
    return DiscoveredDataset(dataset_id=dataset_id, state=DiscoveredState.NON_EXISTENT)


def calculate_changes(
    desired: Mapping[UUID, Dataset],
    cluster: ClusterView,
    local: LocalState,
    node_instance_id: str,
    mount_root: str,
    default_size: int = DEFAULT_VOLUME_SIZE,
) -> Change:
    """
    The changes this node should make now, as a tree of values (pure).

    ``desired`` are the dataset records the node was sent: those whose
    primary it is and those of volumes attached to it, deleted ones included
    until they are purged. Datasets are considered in id order, in parallel.
    """
    ctx = Context(node_instance_id, mount_root, cluster.leased_here, default_size, local.capacity)
    found_all = local.datasets
    changes = []
    for dataset_id in sorted(desired.keys() | found_all.keys()):
        record = desired.get(dataset_id)
        found = found_all.get(dataset_id) or _absent(dataset_id)
        transition = DATASET_TRANSITIONS[desired_state(record, cluster.node_uuid)][found.state]
        changes.append(transition(record, found, ctx))
    return in_parallel(changes)
