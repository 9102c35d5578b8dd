"""
Classify one node's observations into one frozen snapshot (pure: no I/O).

:func:`agent.observe.discover` does all the I/O of a pass and hands the raw facts
to the pure :func:`classify`, which sorts every dataset's volume into a
:class:`DiscoveredState`. :func:`local_state_to_report` turns a snapshot into
the :class:`~control.model.NodeState` the agent reports.

The reporting rule: a volume attached to this node is reported by this node
(MOUNTED or ATTACHED), whatever the configuration says; any other volume of a
dataset whose primary is this node, deleted or not, is reported PRESENT by
this node, attached elsewhere or not. So a volume is always reported by the
node that holds it and by the node that will attach or destroy it, and a
deleted dataset's record is not purged while its volume exists, even when one
of the two nodes' listings lags behind.
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from attrs import evolve, field, frozen
from pyrsistent import PMap, pmap

from agent.backends.interface import (
    BlockDeviceSnapshot,
    BlockDeviceVolume,
    FencedAttachment,
)
from agent.fs.interface import FilesystemInfo, Mount
from control.model import (
    Capacity,
    Condition,
    Dataset,
    DatasetSnapshot,
    DatasetState,
    NodeState,
    OrphanVolume,
    ReportedSnapshot,
    VolumeStatus,
)

ORPHAN_QUESTIONS = 200
"""
At most this many unknown datasets are asked about per pass (``also``), so
the request stays well under the service's URL limit; further orphans are
found as the first ones are destroyed.
"""


class DiscoveredState(enum.Enum):
    """How far a dataset's volume is realised, as seen from this node."""

    NON_EXISTENT = "non_existent"
    """No volume exists for the dataset."""
    UNATTACHED = "unattached"
    """The volume exists and is attached to no node."""
    ATTACHED_ELSEWHERE = "attached_elsewhere"
    """The volume is attached to another node."""
    ATTACHED_NO_DEVICE = "attached_no_device"
    """
    The listing says attached here, but the backend has no device for it here.

    Backends restore the lost device of a volume really attached here (after
    a reboot), so this means the listing is stale (eventual consistency) and
    the volume may be attached to another node by now: act on it only once a
    consistent observation shows where it is.
    """
    ATTACHED_NO_FILESYSTEM = "attached_no_filesystem"
    """Attached here, the device holds no filesystem."""
    ATTACHED_HERE = "attached_here"
    """Attached here with a filesystem, not mounted."""
    MOUNTED_HERE = "mounted_here"
    """Mounted here at the dataset's mount point (maybe elsewhere too)."""
    MOUNTED_OTHER_PATH = "mounted_other_path"
    """Mounted here, but not at the dataset's mount point."""
    READ_ONLY_ELSEWHERE = "read_only_elsewhere"
    """Attached read-only to other nodes (``ReadOnlyMany`` readers) and not here."""


ATTACHED_HERE_STATES = frozenset(
    {
        DiscoveredState.ATTACHED_NO_DEVICE,
        DiscoveredState.ATTACHED_NO_FILESYSTEM,
        DiscoveredState.ATTACHED_HERE,
    }
)
MOUNTED_STATES = frozenset({DiscoveredState.MOUNTED_HERE, DiscoveredState.MOUNTED_OTHER_PATH})


GROW_SLACK = 4 * 1024 * 1024
"""A filesystem smaller than its volume by more than this many bytes is grown."""


def mountable(info: FilesystemInfo | None, volume_size: int | None) -> bool:
    """Whether a device just attached may be mounted at once (pure): it holds a known
    filesystem, and not an ext4 smaller than its volume (grown offline before mounting).
    Anything else waits for the next pass's observation (formatted or grown first)."""
    if info is None:
        return False
    too_small = volume_size is not None and info.size + GROW_SLACK < volume_size
    return not (info.kind == "ext4" and too_small)


def usable_size(found: DiscoveredDataset) -> int | None:
    """What the dataset offers: its volume's size, or its filesystem's while that is smaller
    (a resize, restore or clone whose filesystem is not grown yet)."""
    info = found.filesystem
    if info is not None and found.size is not None and info.size + GROW_SLACK < found.size:
        return info.size
    return found.size


@frozen
class DiscoveredDataset:
    """
    One dataset's volume as seen from this node.

    ``device`` is set only for a volume attached here whose device exists;
    ``mount_paths`` lists where that device is mounted on this node, the
    dataset's mount point first when it is among them. ``filesystem`` is the
    kind and size of the filesystem on that device, when known. ``epoch`` is
    the highest attach epoch the backend recorded for the volume.
    ``read_only`` says that the attachment here is a read-only one (this node
    is among the volume's ``readers``), ``readers`` which nodes have one.
    """

    dataset_id: UUID
    state: DiscoveredState
    blockdevice_id: str | None = None
    size: int | None = None
    attached_to: str | None = None
    device: str | None = None
    mount_paths: tuple[str, ...] = ()
    filesystem: FilesystemInfo | None = None
    epoch: int = 0
    read_only: bool = False
    readers: frozenset[str] = frozenset()


@frozen
class Leftover:
    """
    What is left here of an attachment fenced away from this node (``docs/failover.md``).

    ``dataset_id`` is the volume's dataset when the listing still has the
    volume; ``mount_paths`` are where this node still mounts the leftover's
    device (the fenced filesystem, whose writes fail).
    """

    attachment: FencedAttachment
    dataset_id: UUID | None = None
    mount_paths: tuple[str, ...] = ()


def _freeze_datasets(datasets: Mapping[Any, Any]) -> PMap:
    """``datasets`` as a frozen map; one already frozen as it is (``pmap`` would copy it,
    on every :func:`attrs.evolve` of a :class:`LocalState`)."""
    return datasets if isinstance(datasets, PMap) else pmap(datasets)


def _freeze_volumes(volumes: Iterable[BlockDeviceVolume]) -> tuple[BlockDeviceVolume, ...]:
    return tuple(volumes)


@frozen
class LocalState:
    """
    Everything one pass observed on this node, frozen.

    ``datasets`` holds one entry per dataset that has a volume in this
    cluster; ``volumes`` is the backend's raw listing; ``conditions`` what
    discovery itself found wrong (reported as they are). ``capacity`` is what
    the backend can hold (free space rounded, see :func:`agent.health.steady`),
    ``device_errors`` the kernel's latest error line per device attached here
    that has one. ``snapshots`` are the backend's whole snapshots of this
    cluster by snapshot id. ``leftovers`` are the local remains of attachments
    fenced away from this node (:func:`with_leftovers`).
    """

    instance_id: str
    datasets: PMap = field(factory=pmap, converter=_freeze_datasets)
    volumes: tuple[BlockDeviceVolume, ...] = field(default=(), converter=_freeze_volumes)
    conditions: tuple[Condition, ...] = ()
    capacity: Capacity | None = None
    device_errors: PMap = field(factory=pmap, converter=_freeze_datasets)
    snapshots: PMap = field(factory=pmap, converter=_freeze_datasets)
    leftovers: tuple[Leftover, ...] = ()
    capacities: tuple[Capacity, ...] = ()
    """Every backend's capacity when the node runs several (the default one first, which is
    ``capacity``); empty with one backend."""


def with_leftovers(
    local: LocalState, leftovers: Iterable[FencedAttachment], mounts: Iterable[Mount]
) -> LocalState:
    """``local`` with the backend's fenced ``leftovers``, their datasets and their mounts here."""
    datasets = {v.blockdevice_id: v.dataset_id for v in local.volumes}
    by_device: dict[str, tuple[str, ...]] = {}
    for mount in mounts:
        by_device[mount.device] = (*by_device.get(mount.device, ()), posixpath.normpath(mount.path))
    found = tuple(
        Leftover(
            attachment=leftover,
            dataset_id=datasets.get(leftover.blockdevice_id),
            mount_paths=by_device.get(leftover.device_path, ()) if leftover.device_path else (),
        )
        for leftover in sorted(leftovers, key=lambda leftover: leftover.blockdevice_id)
    )
    return evolve(local, leftovers=found)


def with_filesystems(local: LocalState, infos: Mapping[str, FilesystemInfo]) -> LocalState:
    """``local`` with each attached dataset's filesystem from ``infos`` (device -> info)."""
    datasets = {
        dataset_id: evolve(found, filesystem=infos.get(found.device)) if found.device else found
        for dataset_id, found in local.datasets.items()
    }
    return evolve(local, datasets=datasets)


def with_snapshots(local: LocalState, snapshots: Iterable[BlockDeviceSnapshot]) -> LocalState:
    """``local`` with the backend's snapshots."""
    return evolve(local, snapshots={s.snapshot_id: s for s in snapshots})


def reported_snapshots(
    local: LocalState, sent: Iterable[DatasetSnapshot]
) -> tuple[ReportedSnapshot, ...]:
    """The snapshots this node was sent that exist whole in its backend, by id (pure).

    Reporting one is what marks it ready (or, once deleted, keeps its record
    until it is gone): a half-made snapshot is never listed by a backend, so
    never reported.
    """
    found = []
    for record in sorted(sent, key=lambda s: str(s.snapshot_id)):
        snapshot = local.snapshots.get(str(record.snapshot_id))
        if snapshot is not None:
            found.append(ReportedSnapshot(snapshot_id=record.snapshot_id, size=snapshot.size))
    return tuple(found)


def mount_point(mount_root: str, dataset_id: UUID) -> str:
    """Where a dataset is mounted on its primary: ``<mount_root>/<dataset_id>``."""
    return posixpath.join(mount_root, str(dataset_id))


def attached_here(volume: BlockDeviceVolume, instance_id: str) -> bool:
    """Whether ``volume`` is attached to ``instance_id``, read-write or read-only."""
    return volume.attached_to == instance_id or instance_id in volume.readers


def _preference(volume: BlockDeviceVolume, instance_id: str) -> tuple[int, str]:
    here = attached_here(volume, instance_id)
    attached = volume.attached_to or volume.readers
    return (0 if here else 1 if attached else 2, volume.blockdevice_id)


def _one_per_dataset(
    volumes: Iterable[BlockDeviceVolume], instance_id: str
) -> dict[UUID, BlockDeviceVolume]:
    """Pick one volume per dataset: attached here, else attached, else the lowest id."""
    chosen: dict[UUID, BlockDeviceVolume] = {}
    for volume in volumes:
        other = chosen.get(volume.dataset_id)
        if other is None or _preference(volume, instance_id) < _preference(other, instance_id):
            chosen[volume.dataset_id] = volume
    return chosen


def _classify_volume(
    volume: BlockDeviceVolume,
    instance_id: str,
    devices: Mapping[str, str],
    formatted: frozenset[str],
    mounts_by_device: Mapping[str, tuple[str, ...]],
    mount_root: str,
) -> DiscoveredDataset:
    state, device = DiscoveredState.UNATTACHED, None
    paths: tuple[str, ...] = ()
    if volume.attached_to is not None and volume.attached_to != instance_id:
        state = DiscoveredState.ATTACHED_ELSEWHERE
    elif volume.readers and not attached_here(volume, instance_id):
        state = DiscoveredState.READ_ONLY_ELSEWHERE
    elif attached_here(volume, instance_id):
        device = devices.get(volume.blockdevice_id)
        paths = mounts_by_device.get(device, ()) if device else ()
        if device is None:
            state = DiscoveredState.ATTACHED_NO_DEVICE
        elif (expected := mount_point(mount_root, volume.dataset_id)) in paths:
            state = DiscoveredState.MOUNTED_HERE
            paths = (expected, *(other for other in paths if other != expected))
        elif paths:
            state = DiscoveredState.MOUNTED_OTHER_PATH
        elif device in formatted:
            state = DiscoveredState.ATTACHED_HERE
        else:
            state = DiscoveredState.ATTACHED_NO_FILESYSTEM
    return DiscoveredDataset(
        dataset_id=volume.dataset_id,
        state=state,
        blockdevice_id=volume.blockdevice_id,
        size=volume.size,
        attached_to=volume.attached_to,
        device=device,
        mount_paths=paths,
        epoch=volume.epoch,
        read_only=volume.attached_to != instance_id and instance_id in volume.readers,
        readers=volume.readers,
    )


def classify(
    volumes: Iterable[BlockDeviceVolume],
    instance_id: str,
    devices: Mapping[str, str],
    formatted: frozenset[str],
    mounts: Iterable[Mount],
    mount_root: str,
    recently_created: Iterable[BlockDeviceVolume] = (),
) -> LocalState:
    """
    Sort raw observations into a :class:`LocalState` (pure).

    ``devices`` maps the blockdevice id of each volume attached here whose
    device exists to its device path; ``formatted`` holds the devices that
    have a filesystem; ``mounts`` are this node's mounts.
    ``recently_created`` are volumes this agent created that an eventually
    consistent listing may not show yet: each counts for its dataset when the
    listing has no volume for it (read your own writes).
    """
    listing = tuple(volumes)
    listed = {volume.dataset_id for volume in listing}
    unlisted = tuple(v for v in recently_created if v.dataset_id not in listed)
    by_device: dict[str, tuple[str, ...]] = {}
    for mount in mounts:
        by_device[mount.device] = (*by_device.get(mount.device, ()), posixpath.normpath(mount.path))
    datasets = {
        dataset_id: _classify_volume(volume, instance_id, devices, formatted, by_device, mount_root)
        for dataset_id, volume in _one_per_dataset(listing + unlisted, instance_id).items()
    }
    return LocalState(instance_id=instance_id, datasets=datasets, volumes=listing)


def _unknown_volumes(
    local: LocalState, desired: Mapping[UUID, Dataset]
) -> list[BlockDeviceVolume]:
    """Volumes here or unattached whose dataset this node was not sent, by blockdevice id."""
    return sorted(
        (
            v
            for v in local.volumes
            if v.dataset_id not in desired
            and (
                (v.attached_to is None and not v.readers)
                or attached_here(v, local.instance_id)
            )
        ),
        key=lambda v: v.blockdevice_id,
    )


def datasets_to_ask_about(
    local: LocalState, desired: Mapping[UUID, Dataset] | None = None
) -> frozenset[UUID]:
    """
    The dataset ids whose records the agent must fetch besides its own (``also``).

    Those of volumes attached here: the node must learn that they moved away
    or were deleted even when it is no longer their primary. And those of
    volumes here or unattached that are not in ``desired`` (the records just
    fetched), at most :data:`ORPHAN_QUESTIONS`: if the answer has no record
    either, the volume is an orphan (see :func:`orphans`).
    """
    attached = {
        d.dataset_id
        for d in local.datasets.values()
        if d.state in ATTACHED_HERE_STATES or d.state in MOUNTED_STATES
    }
    unknown: list[UUID] = []
    for volume in _unknown_volumes(local, desired or {}):
        if len(unknown) == ORPHAN_QUESTIONS:
            break
        if volume.dataset_id not in attached and volume.dataset_id not in unknown:
            unknown.append(volume.dataset_id)
    return frozenset(attached | set(unknown))


def orphans(
    local: LocalState, desired: Mapping[UUID, Dataset], asked: frozenset[UUID]
) -> tuple[OrphanVolume, ...]:
    """
    The volumes here or unattached that no dataset record owns (pure).

    Only those whose dataset was asked about (``asked``, the ``also`` of the
    fetch that returned ``desired``) and not returned: the control service
    has no record of it, deleted or not.
    """
    return tuple(
        OrphanVolume(blockdevice_id=v.blockdevice_id, dataset_id=v.dataset_id, size=v.size)
        for v in _unknown_volumes(local, desired)
        if v.dataset_id in asked
    )


def _reported(
    found: DiscoveredDataset, desired: Mapping[UUID, Dataset], node_uuid: UUID
) -> DatasetState | None:
    if found.state in MOUNTED_STATES:
        status, path = VolumeStatus.MOUNTED, found.mount_paths[0]
    elif found.state in ATTACHED_HERE_STATES:
        status, path = VolumeStatus.ATTACHED, None
    elif found.state is not DiscoveredState.NON_EXISTENT:
        record = desired.get(found.dataset_id)
        if record is None or record.primary != node_uuid:
            return None
        status, path = VolumeStatus.PRESENT, None
    return DatasetState(
        dataset_id=found.dataset_id,
        status=status,
        maximum_size=usable_size(found),
        device=found.device,
        path=path,
    )


def reported_datasets(
    local: LocalState, desired: Mapping[UUID, Dataset], node_uuid: UUID
) -> PMap:
    """The report's entry of each dataset of ``local`` that it reports (pure; see
    :func:`local_state_to_report`)."""
    states = {}
    for found in local.datasets.values():
        state = _reported(found, desired, node_uuid)
        if state is not None:
            states[found.dataset_id] = state
    return pmap(states)


class LastReported:
    """The last :func:`reported_datasets`, reused while its arguments equal the last ones.

    One per agent: an idle agent's observation (the very same frozen map when discovery
    reused it, :class:`agent.observe.Classified`) and records do not change from one
    heartbeat to the next, so neither do the datasets it reports; the report then holds
    the same map, which compares equal to the last one at once.
    """

    def __init__(self) -> None:
        self.arguments: tuple[Any, ...] | None = None
        self.datasets: PMap | None = None

    def of(self, local: LocalState, desired: Mapping[UUID, Dataset], node_uuid: UUID) -> PMap:
        """:func:`reported_datasets` of the arguments, the last one if they are equal."""
        arguments = (local.datasets, desired, node_uuid)
        if self.datasets is None or arguments != self.arguments:
            self.datasets = reported_datasets(local, desired, node_uuid)
            self.arguments = arguments
        return self.datasets


def local_state_to_report(
    local: LocalState,
    desired: Mapping[UUID, Dataset],
    generation: int,
    era: str | None,
    node_uuid: UUID,
    now: float,
    conditions: Iterable[Condition] = (),
    asked: frozenset[UUID] = frozenset(),
    datasets: PMap | None = None,
) -> NodeState:
    """
    What the agent reports for the snapshot ``local`` (pure).

    ``desired`` are the records the node was sent (to know which unattached
    volumes it is the primary of); ``generation`` must be a configuration
    generation written before ``local`` was observed (fetched before, or
    announced by the watch before observing began: see
    :func:`agent.pacing.observed_after`), so the control service never purges
    a deletion on the strength of an older observation.
    ``conditions`` (what the loop remembers blocking each dataset) are
    reported after those discovery found (``local.conditions``).
    ``asked`` are the ids the fetch asked about besides the node's own: the
    report lists as orphans the volumes among them that have no record.
    ``datasets``, if given, is :func:`reported_datasets` of the same arguments (made before,
    see :class:`LastReported`).
    """
    return NodeState(
        node_uuid=node_uuid,
        era=era,
        generation=generation,
        datasets=reported_datasets(local, desired, node_uuid) if datasets is None else datasets,
        reported_at=now,
        conditions=(*local.conditions, *conditions),
        orphans=orphans(local, desired, asked),
    )
