"""
A real backend on one machine: volumes are sparse files, attached as loop devices.

The pool directory plays the SAN shared by the agents of one machine; every
fact lives there, so an agent restart loses nothing::

    <pool>/<cluster_id>/volumes/<dataset_id>.img     the volume (write-once)
    <pool>/<cluster_id>/attachments/<dataset_id>     {"instance_id", "device"}
    <pool>/<cluster_id>/locks/<dataset_id>           flock'd around attach/detach/destroy

A volume's blockdevice id is its dataset id. A volume file appears with its
full size in one ``link`` (which fails if it exists), so two nodes racing to
create end with one volume. Attachment records are replaced atomically
(temporary file, fsync, rename) under the volume's lock, so two nodes racing
to attach cannot both win.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from uuid import UUID

from attrs import define, field

from agent.backends import loopdev
from agent.backends.interface import (
    AlreadyAttachedVolume,
    BackendError,
    BlockDeviceVolume,
    UnattachedVolume,
    UnknownVolume,
)
from agent.files import write_atomically

MiB = 1024 * 1024
SUFFIX = ".img"


@define
class LoopbackBlockDeviceAPI:
    """Volumes of ``cluster_id`` in ``pool``, as seen from the node ``instance_id``."""

    pool: str
    cluster_id: UUID
    instance_id: str
    _root: str = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._root = os.path.join(self.pool, str(self.cluster_id))
        for sub in ("volumes", "attachments", "locks"):
            os.makedirs(os.path.join(self._root, sub), exist_ok=True)

    def _path(self, kind: str, blockdevice_id: str) -> str:
        return os.path.join(self._root, kind, blockdevice_id)

    def _image(self, blockdevice_id: str) -> str:
        return self._path("volumes", blockdevice_id + SUFFIX)

    def allocation_unit(self) -> int:
        """Volume sizes are rounded up to a multiple of 1 MiB."""
        return MiB

    def compute_instance_id(self) -> str:
        """The id of the node this backend instance runs on (given by the caller)."""
        return self.instance_id

    def _dataset_of(self, blockdevice_id: str) -> UUID:
        try:
            dataset_id = UUID(blockdevice_id)
        except ValueError:
            raise UnknownVolume(f"No volume {blockdevice_id!r}: not a dataset id.") from None
        if str(dataset_id) != blockdevice_id:
            raise UnknownVolume(f"No volume {blockdevice_id!r}: not a canonical dataset id.")
        return dataset_id

    def _volume(self, blockdevice_id: str) -> BlockDeviceVolume:
        dataset_id = self._dataset_of(blockdevice_id)
        try:
            size = os.stat(self._image(blockdevice_id)).st_size
        except FileNotFoundError:
            raise UnknownVolume(
                f"No volume {blockdevice_id} in cluster {self.cluster_id}."
            ) from None
        record = self._read_record(blockdevice_id)
        return BlockDeviceVolume(
            blockdevice_id=blockdevice_id,
            size=size,
            cluster_id=self.cluster_id,
            dataset_id=dataset_id,
            attached_to=record["instance_id"] if record else None,
        )

    def _read_record(self, blockdevice_id: str) -> dict[str, str] | None:
        try:
            with open(self._path("attachments", blockdevice_id)) as f:
                record: dict[str, str] = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise BackendError(f"Attachment record of {blockdevice_id} is unreadable: {e}") from e
        return record

    def _write_record(self, blockdevice_id: str, instance_id: str, device: str) -> None:
        data = json.dumps({"instance_id": instance_id, "device": device}).encode()
        write_atomically(self._path("attachments", blockdevice_id), data)

    @contextlib.contextmanager
    def _locked(self, blockdevice_id: str) -> Iterator[None]:
        fd = os.open(self._path("locks", blockdevice_id), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def create_volume(self, dataset_id: UUID, size: int) -> BlockDeviceVolume:
        """Return the dataset's volume, creating a sparse file of at least ``size`` bytes."""
        if size <= 0:
            raise BackendError(f"A volume size must be a positive number of bytes, not {size}.")
        blockdevice_id = str(dataset_id)
        image = self._image(blockdevice_id)
        if not os.path.exists(image):
            rounded = -(-size // MiB) * MiB
            fd, temporary = tempfile.mkstemp(dir=os.path.dirname(image), prefix=".tmp-")
            try:
                try:
                    os.ftruncate(fd, rounded)
                finally:
                    os.close(fd)
                with contextlib.suppress(FileExistsError):
                    os.link(temporary, image)
            finally:
                os.unlink(temporary)
        return self._volume(blockdevice_id)

    def _require_unattached(self, blockdevice_id: str) -> BlockDeviceVolume:
        """The volume, or :class:`AlreadyAttachedVolume` if it is attached anywhere."""
        volume = self._volume(blockdevice_id)
        if volume.attached_to is not None:
            raise AlreadyAttachedVolume(
                f"Volume {blockdevice_id} is attached to {volume.attached_to}; detach it first."
            )
        return volume

    def destroy_volume(self, blockdevice_id: str) -> None:
        """Delete an unattached volume's file (and any loop device a crash left on it)."""
        self._volume(blockdevice_id)
        with self._locked(blockdevice_id):
            self._require_unattached(blockdevice_id)
            image = self._image(blockdevice_id)
            for device in loopdev.devices_backed_by(image):
                loopdev.detach(device, image)
            os.unlink(image)

    def attach_volume(self, blockdevice_id: str, attach_to: str) -> BlockDeviceVolume:
        """Attach a volume to a loop device, recorded as attached to ``attach_to``."""
        self._volume(blockdevice_id)
        with self._locked(blockdevice_id):
            volume = self._require_unattached(blockdevice_id)
            device = self._loop_device(blockdevice_id)
            self._write_record(blockdevice_id, attach_to, device)
        return BlockDeviceVolume(
            blockdevice_id=blockdevice_id,
            size=volume.size,
            cluster_id=self.cluster_id,
            dataset_id=volume.dataset_id,
            attached_to=attach_to,
        )

    def _loop_device(self, blockdevice_id: str) -> str:
        """A loop device on the volume: one a crash left behind, else a new one."""
        image = self._image(blockdevice_id)
        existing = loopdev.devices_backed_by(image)
        if existing:
            return existing[0]
        return loopdev.attach(image)

    def detach_volume(self, blockdevice_id: str) -> None:
        """Detach the volume's loop device (if still there) and clear its record."""
        self._volume(blockdevice_id)
        with self._locked(blockdevice_id):
            record = self._read_record(blockdevice_id)
            if record is None:
                raise UnattachedVolume(f"Volume {blockdevice_id} is not attached.")
            image = self._image(blockdevice_id)
            loopdev.detach(record.get("device", ""), image)
            for device in loopdev.devices_backed_by(image):
                loopdev.detach(device, image)
            os.unlink(self._path("attachments", blockdevice_id))

    def list_volumes(self) -> list[BlockDeviceVolume]:
        """Every volume in this cluster's part of the pool, ordered by blockdevice id."""
        volumes = []
        for name in sorted(os.listdir(os.path.join(self._root, "volumes"))):
            if name.endswith(SUFFIX) and not name.startswith("."):
                with contextlib.suppress(UnknownVolume):
                    volumes.append(self._volume(name[: -len(SUFFIX)]))
        return volumes

    def get_device_path(self, blockdevice_id: str) -> str:
        """The loop device of a volume attached here, re-created if it vanished."""
        self._volume(blockdevice_id)
        image = self._image(blockdevice_id)
        device = self._record_here(blockdevice_id).get("device", "")
        if loopdev.backing_file(device) == os.path.realpath(image):
            return device
        with self._locked(blockdevice_id):
            device = self._record_here(blockdevice_id).get("device", "")
            if loopdev.backing_file(device) == os.path.realpath(image):
                return device
            device = self._loop_device(blockdevice_id)
            self._write_record(blockdevice_id, self.instance_id, device)
            return device

    def _record_here(self, blockdevice_id: str) -> dict[str, str]:
        """The attachment record, if it says the volume is attached to this instance."""
        record = self._read_record(blockdevice_id)
        if record is None:
            raise UnattachedVolume(f"Volume {blockdevice_id} is not attached.")
        if record.get("instance_id") != self.instance_id:
            raise UnattachedVolume(
                f"Volume {blockdevice_id} is attached to {record.get('instance_id')}, "
                f"not to this instance {self.instance_id}."
            )
        return record
