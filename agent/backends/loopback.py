"""
A real backend on one machine: volumes are sparse files, attached as loop devices.

The pool directory plays the SAN shared by the agents of one machine; every
fact lives there, so an agent restart loses nothing::

    <pool>/<cluster_id>/volumes/<dataset_id>.img     the volume (write-once)
    <pool>/<cluster_id>/attachments/<dataset_id>     {"instance_id", "device"}
    <pool>/<cluster_id>/locks/<dataset_id>           flock'd around attach/detach/destroy/fence
    <pool>/<cluster_id>/epochs/<dataset_id>          the highest attach epoch seen (decimal)
    <pool>/<cluster_id>/fenced/<dataset_id>@<node>   a fenced attachment: {"instance_id", "devices"}
    <pool>/<cluster_id>/readers/<dataset_id>@<node>  read-only: {"instance_id", "device"}
    <pool>/.capacity.lock                             flock'd around every create
    <pool>/<cluster_id>/snapshots/<snapshot_id>.img  a snapshot (see agent.backends.loopsnap)

Capacity: by default a volume file is fully allocated (``posix_fallocate``)
before it appears, so a volume never promises space the pool does not have:
a full pool refuses the create (:class:`InsufficientCapacity`) instead of
losing writes later inside a mounted filesystem. With ``overcommit`` set
(``--pool-overcommit R``, :data:`agent.defaults.OVERCOMMIT_RANGE`) the pool is *thin*:
volume files are sparse and a create is refused once the volumes of every
cluster in the pool would provision more than ``R`` times the pool's size.
Every agent sharing a pool must use the same setting. The loop devices of a
thick pool refuse discards, which would punch holes into the allocated files.

A volume's blockdevice id is its dataset id. A volume file appears with its
full size in one ``link`` (which fails if it exists), so two nodes racing to
create end with one volume. Attachment records are replaced atomically
(temporary file, fsync, rename) under the volume's lock, so two nodes racing
to attach cannot both win. The record is written *before* ``losetup`` and
removed if ``losetup`` fails, and a device whose final record cannot be
written is detached again: a failed metadata write (a full pool) never leaves
a loop device attached without a record.

Read-only attachments (``ReadOnlyMany``, :class:`~agent.backends.interface.ReadOnlyManyAPI`)
are loop devices made with ``losetup --read-only``, one per reading node, each
recorded in ``readers/``; a read-write attach (and a destroy) is refused while
any exists, and a read-only one while a read-write one does.

Fencing (:meth:`fence`, epochs) is in :mod:`agent.backends.loopfence`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import urllib.parse
from collections.abc import Iterator
from uuid import UUID

from attrs import define, evolve, field

from agent.backends import filecopy, loopdev
from agent.backends.interface import (
    BackendError,
    BlockDeviceVolume,
    InsufficientCapacity,
    StaleEpoch,
    UnattachedVolume,
    UnknownVolume,
    require_readable_by,
    require_unattached,
)
from agent.backends.loopfence import LoopbackFencing
from agent.backends.loopsnap import LoopbackSnapshots
from agent.defaults import check_overcommit
from agent.files import write_atomically
from control.model import Capacity
from control.units import describe_size

MiB = 1024 * 1024
SUFFIX = ".img"
BACKEND_NAME = "loopback"
def largest_file(pool: str) -> int:
    """The largest file the pool's filesystem can hold, in whole MiB (``PC_FILESIZEBITS``)."""
    try:
        bits = os.pathconf(pool, "PC_FILESIZEBITS")
    except (OSError, ValueError):
        bits = 64
    if bits <= 0:
        bits = 64
    return ((2 ** (bits - 1) - 1) // MiB) * MiB


@define
class LoopbackBlockDeviceAPI(LoopbackSnapshots, LoopbackFencing):
    """Volumes of ``cluster_id`` in ``pool``, as seen from the node ``instance_id``."""

    pool: str
    cluster_id: UUID
    instance_id: str
    overcommit: float | None = field(default=None, converter=check_overcommit)
    _root: str = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._root = os.path.join(self.pool, str(self.cluster_id))
        for sub in ("volumes", "attachments", "locks", "snapshots", "epochs", "fenced", "readers"):
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
            epoch=self._read_epoch(blockdevice_id),
            readers=frozenset(self._readers(blockdevice_id)),
        )

    def _reader_path(self, blockdevice_id: str, instance_id: str) -> str:
        return self._path("readers", f"{blockdevice_id}@{urllib.parse.quote(instance_id, safe='')}")

    def _readers(self, blockdevice_id: str) -> dict[str, dict[str, str]]:
        """The read-only attachment records of the volume, by instance id."""
        found = {}
        prefix = blockdevice_id + "@"
        for name in os.listdir(os.path.join(self._root, "readers")):
            if name.startswith(prefix):
                record = self._read_json(self._path("readers", name))
                if record is not None:
                    found[record["instance_id"]] = record
        return found

    def _read_json(self, path: str) -> dict[str, str] | None:
        try:
            with open(path) as f:
                record: dict[str, str] = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise BackendError(f"Attachment record {path} is unreadable: {e}") from e
        return record

    def _read_epoch(self, blockdevice_id: str) -> int:
        try:
            with open(self._path("epochs", blockdevice_id)) as f:
                return int(f.read().strip() or 0)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as e:
            raise BackendError(f"Epoch record of {blockdevice_id} is unreadable: {e}") from e

    def _check_epoch(self, blockdevice_id: str, epoch: int) -> int:
        """The recorded epoch; :class:`StaleEpoch` if ``epoch`` is below it."""
        recorded = self._read_epoch(blockdevice_id)
        if epoch < recorded:
            raise StaleEpoch(
                f"Volume {blockdevice_id} was attached at epoch {recorded}; an attach at epoch "
                f"{epoch} comes from a stale configuration (the dataset changed primary since) "
                "and is refused."
            )
        return recorded

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

    def _provisioned(self) -> int:
        """Bytes promised to the volumes and snapshots of every cluster in the pool (apparent
        sizes)."""
        total = 0
        with os.scandir(self.pool) as clusters:
            for cluster in clusters:
                for kind in ("volumes", "snapshots"):
                    images = os.path.join(cluster.path, kind)
                    if not cluster.is_dir() or not os.path.isdir(images):
                        continue
                    with os.scandir(images) as files:
                        for image in files:
                            if image.name.endswith(SUFFIX) and not image.name.startswith("."):
                                with contextlib.suppress(FileNotFoundError):
                                    total += image.stat().st_size
        return total

    def _limits(self) -> tuple[int, int, int, int]:
        """``(total, free, ceiling, maximum)``: pool bytes, free bytes, the largest
        volume an empty pool could take, and the largest volume that fits now."""
        stats = os.statvfs(self.pool)
        total = stats.f_blocks * stats.f_frsize
        free = stats.f_bavail * stats.f_frsize
        file_limit = largest_file(self.pool)
        if self.overcommit is None:
            ceiling, room = total, free
        else:
            ceiling = int(self.overcommit * total)
            room = ceiling - self._provisioned()
        ceiling = min(ceiling, file_limit) // MiB * MiB
        maximum = max(0, min(room, ceiling)) // MiB * MiB
        return total, free, ceiling, maximum

    def capacity(self) -> Capacity:
        """The pool's size and free bytes (``statvfs``) and the largest volume that fits now."""
        total, free, _, maximum = self._limits()
        return Capacity(
            backend=BACKEND_NAME,
            total=total,
            free=free,
            maximum_volume_size=maximum,
            shared=True,
            snapshot_method=self.snapshot_method(),
            read_only_many=True,
        )

    def _refuse(self, size: int, ceiling: int, maximum: int) -> InsufficientCapacity:
        mode = (
            "a fully allocated pool"
            if self.overcommit is None
            else f"a thin pool overcommitted at most {self.overcommit}x"
        )
        if size > ceiling:
            return InsufficientCapacity(
                f"A volume of {describe_size(size)} cannot fit in pool {self.pool} ({mode}): "
                f"the largest it can ever hold is {describe_size(ceiling)}. Ask for a smaller "
                "size or use a larger pool.",
                reason="too_large",
                requested=size,
                available=maximum,
            )
        return InsufficientCapacity(
            f"A volume of {describe_size(size)} does not fit in pool {self.pool} ({mode}) now: "
            f"the largest that fits is {describe_size(maximum)}. Free space in the pool "
            "(delete datasets) or ask for a smaller size.",
            reason="no_space",
            requested=size,
            available=maximum,
        )

    @contextlib.contextmanager
    def _pool_locked(self) -> Iterator[None]:
        fd = os.open(os.path.join(self.pool, ".capacity.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def create_volume(self, dataset_id: UUID, size: int) -> BlockDeviceVolume:
        """Return the dataset's volume, creating a file of at least ``size`` bytes.

        The file is fully allocated unless the pool is thin; a volume that
        does not fit raises :class:`InsufficientCapacity`.
        """
        if size <= 0:
            raise BackendError(f"A volume size must be a positive number of bytes, not {size}.")
        blockdevice_id = str(dataset_id)
        image = self._image(blockdevice_id)
        if not os.path.exists(image):
            with self._pool_locked():
                if not os.path.exists(image):
                    self._create_file(image, -(-size // MiB) * MiB)
        return self._volume(blockdevice_id)

    def _create_file(self, image: str, size: int) -> None:
        """Make the volume file of ``size`` bytes appear at ``image`` in one ``link``."""
        _, _, ceiling, maximum = self._limits()
        if size > maximum:
            raise self._refuse(size, ceiling, maximum)
        fd, temporary = tempfile.mkstemp(dir=os.path.dirname(image), prefix=".tmp-")
        try:
            try:
                self._allocate(fd, size)
            except (OSError, OverflowError) as e:
                if isinstance(e, OSError) and e.errno not in (errno.ENOSPC, errno.EFBIG):
                    raise
                raise self._refuse(size, ceiling, maximum) from e
            finally:
                os.close(fd)
            with contextlib.suppress(FileExistsError):
                os.link(temporary, image)
        finally:
            os.unlink(temporary)

    def _allocate(self, fd: int, size: int) -> None:
        if self.overcommit is None:
            os.posix_fallocate(fd, 0, size)
        else:
            os.ftruncate(fd, size)

    def _require_unattached(self, blockdevice_id: str) -> BlockDeviceVolume:
        """The volume, or :class:`AlreadyAttachedVolume` if it is attached anywhere."""
        return require_unattached(self._volume(blockdevice_id))

    def attach_read_only(self, blockdevice_id: str, attach_to: str) -> BlockDeviceVolume:
        """Attach the volume to a read-only loop device of its own, recorded for ``attach_to``."""
        self._volume(blockdevice_id)
        with self._locked(blockdevice_id):
            volume = self._volume(blockdevice_id)
            require_readable_by(volume, attach_to)
            self._attach_reader(blockdevice_id, attach_to)
        return evolve(volume, readers=volume.readers | {attach_to})

    def _attach_reader(self, blockdevice_id: str, attach_to: str) -> str:
        """Record the read-only attachment, ``losetup --read-only``, record the device.

        Called with the volume's lock held; undone if ``losetup`` fails.
        """
        path = self._reader_path(blockdevice_id, attach_to)
        had_record = os.path.exists(path)
        write_atomically(path, json.dumps({"instance_id": attach_to, "device": ""}).encode())
        try:
            device = loopdev.attach_read_only(self._image(blockdevice_id))
        except BaseException:
            if not had_record:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            raise
        data = {"instance_id": attach_to, "device": device}
        write_atomically(path, json.dumps(data).encode())
        return device

    def detach_read_only(self, blockdevice_id: str) -> None:
        """Detach this instance's read-only loop device (if still there) and clear its record."""
        self._volume(blockdevice_id)
        path = self._reader_path(blockdevice_id, self.instance_id)
        with self._locked(blockdevice_id):
            record = self._read_json(path)
            if record is None:
                raise UnattachedVolume(
                    f"Volume {blockdevice_id} is not attached read-only to {self.instance_id}."
                )
            device = record.get("device", "")
            if loopdev.read_only(device):
                loopdev.detach(device, self._image(blockdevice_id))
            os.unlink(path)

    def destroy_volume(self, blockdevice_id: str) -> None:
        """Delete an unattached volume's file (and any loop device a crash left on it)."""
        self._volume(blockdevice_id)
        with self._locked(blockdevice_id):
            self._require_unattached(blockdevice_id)
            image = self._image(blockdevice_id)
            for device in loopdev.devices_backed_by(image):
                loopdev.detach(device, image)
            os.unlink(image)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path("epochs", blockdevice_id))

    def attach_volume(
        self, blockdevice_id: str, attach_to: str, epoch: int = 0
    ) -> BlockDeviceVolume:
        """Attach a volume to a loop device, recorded as attached to ``attach_to`` at ``epoch``."""
        self._volume(blockdevice_id)
        with self._locked(blockdevice_id):
            recorded = self._check_epoch(blockdevice_id, epoch)
            volume = self._require_unattached(blockdevice_id)
            if epoch > recorded:
                write_atomically(self._path("epochs", blockdevice_id), str(epoch).encode())
            self._attach_recorded(blockdevice_id, attach_to)
        return BlockDeviceVolume(
            blockdevice_id=blockdevice_id,
            size=volume.size,
            cluster_id=self.cluster_id,
            dataset_id=volume.dataset_id,
            attached_to=attach_to,
            epoch=max(epoch, volume.epoch),
        )

    def _live_devices(self, blockdevice_id: str) -> list[str]:
        """The loop devices backed by the volume, except fenced (read-only) leftovers."""
        image = self._image(blockdevice_id)
        return [d for d in loopdev.devices_backed_by(image) if not loopdev.read_only(d)]

    def _attach_recorded(self, blockdevice_id: str, attach_to: str) -> str:
        """Record the attachment, then ``losetup``, then record the device; undo on failure.

        Called with the volume's lock held. A record without a device (the
        first write) is what a crash in between leaves: the volume is
        attached, and ``get_device_path`` restores its device.
        """
        image = self._image(blockdevice_id)
        existing = self._live_devices(blockdevice_id)
        had_record = self._read_record(blockdevice_id) is not None
        if not existing:
            self._write_record(blockdevice_id, attach_to, "")
        try:
            device = existing[0] if existing else loopdev.attach(image)
        except BaseException:
            if not had_record:
                self._remove_record(blockdevice_id)
            raise
        if self.overcommit is None:  # best effort: keep the allocation (see disable_discard)
            loopdev.disable_discard(device)
        try:
            self._write_record(blockdevice_id, attach_to, device)
        except BaseException:
            if not existing:
                with contextlib.suppress(BackendError):
                    loopdev.detach(device, image)
            if not had_record:
                self._remove_record(blockdevice_id)
            raise
        return device

    def _remove_record(self, blockdevice_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path("attachments", blockdevice_id))

    def detach_volume(self, blockdevice_id: str) -> None:
        """Detach the volume's loop device (if still there) and clear its record."""
        self._volume(blockdevice_id)
        with self._locked(blockdevice_id):
            record = self._read_record(blockdevice_id)
            if record is None:
                raise UnattachedVolume(f"Volume {blockdevice_id} is not attached.")
            image = self._image(blockdevice_id)
            if not loopdev.read_only(record.get("device", "")):
                loopdev.detach(record.get("device", ""), image)
            for device in self._live_devices(blockdevice_id):
                loopdev.detach(device, image)
            os.unlink(self._path("attachments", blockdevice_id))

    def list_volumes(self) -> list[BlockDeviceVolume]:
        """Every volume in this cluster's part of the pool, ordered by blockdevice id.

        Copies a crash left half-made (restores, clones) are removed first.
        """
        filecopy.sweep(os.path.join(self._root, "volumes"))
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
        if self._read_record(blockdevice_id) is None:
            reader = self._read_json(self._reader_path(blockdevice_id, self.instance_id))
            if reader is not None:
                return self._reader_device(blockdevice_id, reader.get("device", ""))
        device = self._record_here(blockdevice_id).get("device", "")
        if loopdev.backing_file(device) == os.path.realpath(image):
            return device
        with self._locked(blockdevice_id):
            device = self._record_here(blockdevice_id).get("device", "")
            if loopdev.backing_file(device) == os.path.realpath(image):
                return device
            return self._attach_recorded(blockdevice_id, self.instance_id)

    def _reader_device(self, blockdevice_id: str, device: str) -> str:
        """This instance's read-only loop device of the volume, made again if it vanished."""
        image = os.path.realpath(self._image(blockdevice_id))
        if loopdev.backing_file(device) == image and loopdev.read_only(device):
            return device
        with self._locked(blockdevice_id):
            record = self._read_json(self._reader_path(blockdevice_id, self.instance_id))
            if record is None:
                raise UnattachedVolume(f"Volume {blockdevice_id} is not attached here.")
            device = record.get("device", "")
            if loopdev.backing_file(device) == image and loopdev.read_only(device):
                return device
            return self._attach_reader(blockdevice_id, self.instance_id)

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
