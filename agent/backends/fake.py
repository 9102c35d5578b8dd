"""
An in-memory :class:`~agent.backends.interface.BlockDeviceAPI`.

One :class:`FakeStorage` plays the SAN: several agents (each with its own
:class:`FakeBlockDeviceAPI` and instance id) may share it, from several
threads. The storage also keeps what the fake filesystems need (which volumes
hold a filesystem, and their files), so that a file written into a mounted
volume on one node can be read back after the volume moved to another node.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

from attrs import define, evolve, field, frozen

from agent.backends.interface import (
    BackendError,
    BlockDeviceSnapshot,
    BlockDeviceVolume,
    FencedAttachment,
    InsufficientCapacity,
    StaleEpoch,
    UnattachedVolume,
    UnknownSnapshot,
    UnknownVolume,
    require_readable_by,
    require_unattached,
)
from control.model import Capacity

MiB = 1024 * 1024
DEVICE_PREFIX = "/dev/fake/"
UNLIMITED_VOLUME = 2**63 // MiB * MiB - MiB
"""The largest volume an unlimited fake storage creates (still a valid file size)."""


def device_path_for(blockdevice_id: str) -> str:
    """The fake device path of a volume: ``/dev/fake/<blockdevice_id>``."""
    return DEVICE_PREFIX + blockdevice_id


def blockdevice_id_for(device: str) -> str | None:
    """The blockdevice id behind a fake device path, or ``None`` if it is not one."""
    if not device.startswith(DEVICE_PREFIX):
        return None
    return device[len(DEVICE_PREFIX) :] or None


def round_up(size: int, unit: int) -> int:
    """``size`` rounded up to a positive multiple of ``unit``."""
    if size <= 0:
        raise BackendError(f"A volume size must be a positive number of bytes, not {size}.")
    return -(-size // unit) * unit


@frozen
class FakeContent:
    """A copy of a volume's data: its filesystem's (kind, size), if any, and its files."""

    geometry: tuple[str, int] | None
    files: dict[str, bytes]


@define
class FakeStorage:
    """
    Shared in-memory storage behind any number of fake backends and filesystems.

    Every method takes ``lock``; callers doing several steps hold it too (it is
    re-entrant). The fields are public so tests can inspect or corrupt them.

    - ``volumes``: blockdevice id -> volume (every cluster's).
    - ``by_dataset``: (cluster id, dataset id) -> blockdevice id, the
      write-once record.
    - ``lost_devices``: ids of attached volumes whose device vanished.
    - ``filesystems``: ids of volumes that hold a filesystem.
    - ``files``: blockdevice id -> {relative path: bytes}, a volume's data.
    - ``largest_volume``: bytes; a create of a larger volume fails with
      ``EFBIG`` as a sparse file too large for its filesystem does (``None``:
      no limit).
    - ``total``: the storage's size in bytes; ``None`` for unlimited. Volumes
      are fully allocated: their sizes together never exceed it.
    - ``snapshots``: (cluster id, snapshot id) -> snapshot; a snapshot holds
      a copy of its source's filesystem and files (``snapshot_data``) and
      counts towards ``total`` like a volume of its size.
    - ``geometry``: blockdevice id -> (filesystem kind, filesystem size) of
      the volumes that hold a filesystem.
    - ``fenced``: (cluster id, instance id, blockdevice id) -> what is left on
      that instance of an attachment fenced away from it. A fenced instance's
      device is gone for it at once (its fake filesystems refuse writes).
    """

    lock: threading.RLock = field(factory=threading.RLock)
    volumes: dict[str, BlockDeviceVolume] = field(factory=dict)
    by_dataset: dict[tuple[UUID, UUID], str] = field(factory=dict)
    lost_devices: set[str] = field(factory=set)
    filesystems: set[str] = field(factory=set)
    files: dict[str, dict[str, bytes]] = field(factory=dict)
    largest_volume: int | None = None
    total: int | None = None
    snapshots: dict[tuple[UUID, str], BlockDeviceSnapshot] = field(factory=dict)
    snapshot_data: dict[tuple[UUID, str], FakeContent] = field(factory=dict)
    geometry: dict[str, tuple[str, int]] = field(factory=dict)
    fenced: dict[tuple[UUID, str, str], FencedAttachment] = field(factory=dict)
    _failures: dict[str, list[Exception]] = field(factory=dict)
    _counter: int = 0

    def new_blockdevice_id(self) -> str:
        """A fresh, never reused blockdevice id."""
        with self.lock:
            self._counter += 1
            return f"fake-{self._counter:06d}"

    def inject_failure(self, operation: str, error: Exception) -> None:
        """Make the next call of backend method ``operation`` (any instance) raise ``error``."""
        with self.lock:
            self._failures.setdefault(operation, []).append(error)

    def check_failure(self, operation: str) -> None:
        """Raise the next injected failure for ``operation``, if any."""
        with self.lock:
            pending = self._failures.get(operation)
            if pending:
                raise pending.pop(0)

    def lose_device(self, blockdevice_id: str) -> None:
        """Simulate an attached volume's device vanishing (the record stays)."""
        with self.lock:
            self.lost_devices.add(blockdevice_id)

    def used(self) -> int:
        """Bytes held by every cluster's volumes."""
        with self.lock:
            volumes = sum(volume.size for volume in self.volumes.values())
            return volumes + sum(snapshot.size for snapshot in self.snapshots.values())

    def capacity(self) -> Capacity:
        """What the storage holds: its total, free bytes and the largest volume that fits."""
        with self.lock:
            if self.total is None:
                return Capacity(
                    backend="fake",
                    maximum_volume_size=UNLIMITED_VOLUME,
                    snapshot_method="copy",
                    read_only_many=True,
                )
            free = max(0, self.total - self.used())
            return Capacity(
                backend="fake",
                total=self.total,
                free=free,
                maximum_volume_size=free,
                snapshot_method="copy",
                read_only_many=True,
            )

    def check_fits(self, size: int) -> None:
        """Raise :class:`InsufficientCapacity` unless a new volume of ``size`` bytes fits."""
        capacity = self.capacity()
        maximum = capacity.maximum_volume_size or 0
        if size <= maximum:
            return
        if capacity.total is None or size > capacity.total:
            ceiling = UNLIMITED_VOLUME if capacity.total is None else capacity.total
            raise InsufficientCapacity(
                f"A volume of {size} bytes cannot fit in the fake storage: the largest it can "
                f"ever hold is {ceiling} bytes.",
                reason="too_large",
                requested=size,
                available=maximum,
            )
        raise InsufficientCapacity(
            f"A volume of {size} bytes does not fit in the fake storage now: "
            f"{maximum} bytes are free.",
            reason="no_space",
            requested=size,
            available=maximum,
        )

    def device_present(self, device: str, instance_id: str | None = None) -> bool:
        """Whether ``device`` exists (on ``instance_id``, if given)."""
        blockdevice_id = blockdevice_id_for(device)
        with self.lock:
            volume = self.volumes.get(blockdevice_id or "")
            if volume is None or (volume.attached_to is None and not volume.readers):
                return False
            if (
                instance_id is not None
                and volume.attached_to != instance_id
                and instance_id not in volume.readers
            ):
                return False
            return blockdevice_id not in self.lost_devices

    def read_only_device(self, device: str, instance_id: str | None = None) -> bool:
        """Whether ``device`` is a read-only attachment (of ``instance_id``, if given)."""
        blockdevice_id = blockdevice_id_for(device)
        with self.lock:
            volume = self.volumes.get(blockdevice_id or "")
            if volume is None or not volume.readers:
                return False
            return instance_id is None or instance_id in volume.readers


@define
class FakeBlockDeviceAPI:
    """A backend for one cluster and one instance over a :class:`FakeStorage`."""

    storage: FakeStorage
    cluster_id: UUID
    instance_id: str
    _allocation_unit: int = field(default=MiB, alias="allocation_unit")

    def allocation_unit(self) -> int:
        """Volume sizes are rounded up to a multiple of this many bytes."""
        return self._allocation_unit

    def compute_instance_id(self) -> str:
        """The id of the node this backend instance runs on."""
        return self.instance_id

    def capacity(self) -> Capacity:
        """The shared storage's capacity (see :meth:`FakeStorage.capacity`)."""
        with self.storage.lock:
            self.storage.check_failure("capacity")
            return self.storage.capacity()

    def _get(self, blockdevice_id: str) -> BlockDeviceVolume:
        volume = self.storage.volumes.get(blockdevice_id)
        if volume is None or volume.cluster_id != self.cluster_id:
            raise UnknownVolume(f"No volume {blockdevice_id!r} in cluster {self.cluster_id}.")
        return volume

    def create_volume(self, dataset_id: UUID, size: int) -> BlockDeviceVolume:
        """Return the dataset's volume, creating it unattached with at least ``size`` bytes."""
        with self.storage.lock:
            self.storage.check_failure("create_volume")
            existing = self.storage.by_dataset.get((self.cluster_id, dataset_id))
            if existing is not None:
                return self.storage.volumes[existing]
            largest = self.storage.largest_volume
            if largest is not None and size > largest:
                raise OSError(errno.EFBIG, "File too large")
            rounded = round_up(size, self._allocation_unit)
            self.storage.check_fits(rounded)
            volume = BlockDeviceVolume(
                blockdevice_id=self.storage.new_blockdevice_id(),
                size=rounded,
                cluster_id=self.cluster_id,
                dataset_id=dataset_id,
            )
            self.storage.volumes[volume.blockdevice_id] = volume
            self.storage.by_dataset[(self.cluster_id, dataset_id)] = volume.blockdevice_id
            return volume

    def destroy_volume(self, blockdevice_id: str) -> None:
        """Destroy an unattached volume and its data."""
        with self.storage.lock:
            self.storage.check_failure("destroy_volume")
            volume = self._require_unattached(blockdevice_id)
            del self.storage.volumes[blockdevice_id]
            del self.storage.by_dataset[(self.cluster_id, volume.dataset_id)]
            self.storage.filesystems.discard(blockdevice_id)
            self.storage.geometry.pop(blockdevice_id, None)
            self.storage.files.pop(blockdevice_id, None)

    def attach_volume(
        self, blockdevice_id: str, attach_to: str, epoch: int = 0
    ) -> BlockDeviceVolume:
        """Attach a volume to ``attach_to`` at ``epoch``; returns the updated volume."""
        with self.storage.lock:
            self.storage.check_failure("attach_volume")
            volume = self._get(blockdevice_id)
            if epoch < volume.epoch:
                raise StaleEpoch(
                    f"Volume {blockdevice_id} was attached at epoch {volume.epoch}; an attach at "
                    f"epoch {epoch} comes from a stale configuration (the dataset changed "
                    "primary since) and is refused."
                )
            self._require_unattached(blockdevice_id)
            attached = evolve(volume, attached_to=attach_to, epoch=max(volume.epoch, epoch))
            self.storage.volumes[blockdevice_id] = attached
            self.storage.lost_devices.discard(blockdevice_id)
            return attached

    def _require_unattached(self, blockdevice_id: str) -> BlockDeviceVolume:
        return require_unattached(self._get(blockdevice_id))

    def attach_read_only(self, blockdevice_id: str, attach_to: str) -> BlockDeviceVolume:
        """Attach a volume read-only to ``attach_to``, beside its other readers."""
        with self.storage.lock:
            self.storage.check_failure("attach_read_only")
            volume = self._get(blockdevice_id)
            require_readable_by(volume, attach_to)
            attached = evolve(volume, readers=volume.readers | {attach_to})
            self.storage.volumes[blockdevice_id] = attached
            self.storage.lost_devices.discard(blockdevice_id)
            return attached

    def detach_read_only(self, blockdevice_id: str) -> None:
        """Detach this instance's read-only attachment of the volume."""
        with self.storage.lock:
            self.storage.check_failure("detach_read_only")
            volume = self._get(blockdevice_id)
            if self.instance_id not in volume.readers:
                raise UnattachedVolume(
                    f"Volume {blockdevice_id} is not attached read-only to {self.instance_id}."
                )
            self.storage.volumes[blockdevice_id] = evolve(
                volume, readers=volume.readers - {self.instance_id}
            )

    def fence(self, blockdevice_id: str, node: str) -> None:
        """Take the volume from ``node``: its device is gone for it, and the volume unattached."""
        with self.storage.lock:
            self.storage.check_failure("fence")
            volume = self._get(blockdevice_id)
            if volume.attached_to != node:
                return
            self.storage.volumes[blockdevice_id] = evolve(volume, attached_to=None)
            self.storage.lost_devices.discard(blockdevice_id)
            self.storage.fenced[(self.cluster_id, node, blockdevice_id)] = FencedAttachment(
                blockdevice_id=blockdevice_id,
                device_path=device_path_for(blockdevice_id),
                detail=f"fake device {device_path_for(blockdevice_id)}, fenced from {node}",
            )

    def fenced_leftovers(self) -> list[FencedAttachment]:
        """This instance's fenced attachments not yet cleaned up, by blockdevice id."""
        with self.storage.lock:
            self.storage.check_failure("fenced_leftovers")
            return sorted(
                (
                    leftover
                    for (cluster, instance, _), leftover in self.storage.fenced.items()
                    if cluster == self.cluster_id and instance == self.instance_id
                ),
                key=lambda leftover: leftover.blockdevice_id,
            )

    def clean_up_fenced(self, leftover: FencedAttachment) -> None:
        """Forget one fenced attachment of this instance; idempotent."""
        with self.storage.lock:
            self.storage.check_failure("clean_up_fenced")
            key = (self.cluster_id, self.instance_id, leftover.blockdevice_id)
            self.storage.fenced.pop(key, None)

    def detach_volume(self, blockdevice_id: str) -> None:
        """Detach a volume from whichever instance has it, even if its device is gone."""
        with self.storage.lock:
            self.storage.check_failure("detach_volume")
            volume = self._get(blockdevice_id)
            if volume.attached_to is None:
                raise UnattachedVolume(f"Volume {blockdevice_id} is not attached.")
            self.storage.volumes[blockdevice_id] = evolve(volume, attached_to=None)
            self.storage.lost_devices.discard(blockdevice_id)

    def list_volumes(self) -> list[BlockDeviceVolume]:
        """Every volume of this cluster, attached or not, ordered by blockdevice id."""
        with self.storage.lock:
            self.storage.check_failure("list_volumes")
            return sorted(
                (v for v in self.storage.volumes.values() if v.cluster_id == self.cluster_id),
                key=lambda v: v.blockdevice_id,
            )

    def get_device_path(self, blockdevice_id: str) -> str:
        """The device path of a volume attached to this instance, restoring a lost device."""
        with self.storage.lock:
            self.storage.check_failure("get_device_path")
            volume = self._get(blockdevice_id)
            if volume.attached_to != self.instance_id and self.instance_id not in volume.readers:
                raise UnattachedVolume(
                    f"Volume {blockdevice_id} is attached to {volume.attached_to}, "
                    f"not to this instance {self.instance_id}."
                )
            self.storage.lost_devices.discard(blockdevice_id)
            return device_path_for(blockdevice_id)

    # -- snapshots, clones, resize -------------------------------------------

    def _snapshot(self, snapshot_id: str) -> BlockDeviceSnapshot:
        snapshot = self.storage.snapshots.get((self.cluster_id, snapshot_id))
        if snapshot is None:
            raise UnknownSnapshot(f"No snapshot {snapshot_id!r} in cluster {self.cluster_id}.")
        return snapshot

    def _content_of(self, blockdevice_id: str) -> FakeContent:
        """A copy of a volume's data: its filesystem, and its files."""
        geometry = None
        if blockdevice_id in self.storage.filesystems:
            size = self.storage.volumes[blockdevice_id].size
            geometry = self.storage.geometry.get(blockdevice_id, ("ext4", size))
        return FakeContent(geometry, dict(self.storage.files.get(blockdevice_id, {})))

    def create_snapshot(self, blockdevice_id: str, snapshot_id: str) -> BlockDeviceSnapshot:
        """Capture the volume's data now; idempotent by ``snapshot_id``."""
        with self.storage.lock:
            self.storage.check_failure("create_snapshot")
            source = self._get(blockdevice_id)
            key = (self.cluster_id, snapshot_id)
            existing = self.storage.snapshots.get(key)
            if existing is not None:
                if existing.blockdevice_id != blockdevice_id:
                    raise BackendError(
                        f"Snapshot {snapshot_id} exists with source {existing.blockdevice_id}, "
                        f"not {blockdevice_id}; use another snapshot id."
                    )
                return existing
            self.storage.check_fits(source.size)
            snapshot = BlockDeviceSnapshot(
                snapshot_id=snapshot_id,
                blockdevice_id=blockdevice_id,
                dataset_id=source.dataset_id,
                size=source.size,
                cluster_id=self.cluster_id,
            )
            self.storage.snapshots[key] = snapshot
            self.storage.snapshot_data[key] = self._content_of(blockdevice_id)
            return snapshot

    def create_snapshot_quiesced(
        self,
        blockdevice_id: str,
        snapshot_id: str,
        quiesce: Callable[[Callable[[], Any]], Any],
    ) -> BlockDeviceSnapshot:
        """:meth:`create_snapshot` with ``quiesce`` around the copy alone (the checks first,
        outside it; the copy checks again)."""
        with self.storage.lock:
            if (self.cluster_id, snapshot_id) in self.storage.snapshots:
                return self.create_snapshot(blockdevice_id, snapshot_id)  # it, or a refusal
            self.storage.check_fits(self._get(blockdevice_id).size)
        made: BlockDeviceSnapshot = quiesce(
            lambda: self.create_snapshot(blockdevice_id, snapshot_id)
        )
        return made

    def list_snapshots(self) -> list[BlockDeviceSnapshot]:
        """Every snapshot of this cluster, ordered by snapshot id."""
        with self.storage.lock:
            self.storage.check_failure("list_snapshots")
            return sorted(
                (s for (c, _), s in self.storage.snapshots.items() if c == self.cluster_id),
                key=lambda s: s.snapshot_id,
            )

    def destroy_snapshot(self, snapshot_id: str) -> None:
        """Destroy a snapshot; restored volumes keep their own data."""
        with self.storage.lock:
            self.storage.check_failure("destroy_snapshot")
            self._snapshot(snapshot_id)
            del self.storage.snapshots[(self.cluster_id, snapshot_id)]
            self.storage.snapshot_data.pop((self.cluster_id, snapshot_id), None)

    def _create_with(
        self, dataset_id: UUID, size: int, minimum: int, content: FakeContent
    ) -> BlockDeviceVolume:
        existing = self.storage.by_dataset.get((self.cluster_id, dataset_id))
        if existing is not None:
            return self.storage.volumes[existing]
        if round_up(size, self._allocation_unit) < minimum:
            raise BackendError(
                f"A volume of {size} bytes cannot hold a source of {minimum} bytes; "
                "ask for at least the source's size."
            )
        volume = self.create_volume(dataset_id, size)
        if content.geometry is not None:
            self.storage.filesystems.add(volume.blockdevice_id)
            self.storage.geometry[volume.blockdevice_id] = content.geometry
        self.storage.files[volume.blockdevice_id] = dict(content.files)
        return volume

    def create_volume_from_snapshot(
        self, dataset_id: UUID, snapshot_id: str, size: int
    ) -> BlockDeviceVolume:
        """A new volume holding the snapshot's data; idempotent by dataset id."""
        with self.storage.lock:
            self.storage.check_failure("create_volume_from_snapshot")
            if (self.cluster_id, dataset_id) not in self.storage.by_dataset:
                snapshot = self._snapshot(snapshot_id)
                data = self.storage.snapshot_data[(self.cluster_id, snapshot_id)]
                return self._create_with(dataset_id, size, snapshot.size, data)
            return self._create_with(dataset_id, size, 0, FakeContent(None, {}))

    def clone_volume(
        self, dataset_id: UUID, source_blockdevice_id: str, size: int
    ) -> BlockDeviceVolume:
        """A new volume holding the source volume's data now; idempotent by dataset id."""
        with self.storage.lock:
            self.storage.check_failure("clone_volume")
            if (self.cluster_id, dataset_id) not in self.storage.by_dataset:
                source = self._get(source_blockdevice_id)
                content = self._content_of(source_blockdevice_id)
                return self._create_with(dataset_id, size, source.size, content)
            return self._create_with(dataset_id, size, 0, FakeContent(None, {}))

    def resize_volume(self, blockdevice_id: str, size: int) -> BlockDeviceVolume:
        """Grow a volume to at least ``size`` bytes (rounded up); never shrinks."""
        with self.storage.lock:
            self.storage.check_failure("resize_volume")
            volume = self._get(blockdevice_id)
            rounded = round_up(size, self._allocation_unit)
            if rounded < volume.size:
                raise BackendError(
                    f"Volume {blockdevice_id} has {volume.size} bytes; it cannot shrink to "
                    f"{rounded}. Volumes only grow."
                )
            if rounded == volume.size:
                return volume
            self.storage.check_fits(rounded - volume.size)
            grown = evolve(volume, size=rounded)
            self.storage.volumes[blockdevice_id] = grown
            return grown
