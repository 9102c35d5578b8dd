"""
The loopback backend's snapshots, restores, clones and resizes.

Mixed into :class:`agent.backends.loopback.LoopbackBlockDeviceAPI`; the pool
layout grows by::

    <pool>/<cluster_id>/snapshots/<snapshot_id>.img   the snapshot (write-once)
    <pool>/<cluster_id>/snapshots/<snapshot_id>.json  {"blockdevice_id", "dataset_id"}

The JSON record is written first, then the image appears whole
(:func:`agent.backends.filecopy.make_whole`): a snapshot is listed only once
its image exists, so a half-made snapshot is never listed, and the leftovers
of a crash (a temporary copy, a record without an image) are removed by the
next listing. Copies share blocks with their source by reflink where the pool's
filesystem can (XFS with reflink, btrfs), and are sparse copies otherwise;
:meth:`LoopbackSnapshots.snapshot_method` says which.

Capacity: snapshots live in the pool, so their blocks count in the pool's free
space, and in a thin pool their sizes count as provisioned. A restore or clone
is refused unless a volume of its size fits, as a create is. In a thick pool
a copied volume is fully allocated; a reflinked one shares its source's
blocks until written (the check at create is then the only guarantee).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from uuid import UUID

from agent.backends import filecopy, loopdev
from agent.backends.interface import (
    BackendError,
    BlockDeviceSnapshot,
    BlockDeviceVolume,
    InsufficientCapacity,
    UnknownSnapshot,
)
from agent.files import write_atomically
from control.units import describe_size

MiB = 1024 * 1024
IMAGE = ".img"
RECORD = ".json"

_FULL = (errno.ENOSPC, errno.EFBIG)


def _round(size: int) -> int:
    if size <= 0:
        raise BackendError(f"A volume size must be a positive number of bytes, not {size}.")
    return -(-size // MiB) * MiB


class LoopbackSnapshots:
    """Snapshots, restores, clones and resizes of loopback volumes (a mixin)."""

    # What the mixin uses of LoopbackBlockDeviceAPI, which defines them all.
    pool: str
    cluster_id: UUID
    overcommit: float | None
    _root: str
    _method: str | None = None

    def _image(self, blockdevice_id: str) -> str:
        raise NotImplementedError

    def _volume(self, blockdevice_id: str) -> BlockDeviceVolume:
        raise NotImplementedError

    def _locked(self, blockdevice_id: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _pool_locked(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _limits(self) -> tuple[int, int, int, int]:
        raise NotImplementedError

    def _refuse(self, size: int, ceiling: int, maximum: int) -> InsufficientCapacity:
        raise NotImplementedError

    # -- where things live ----------------------------------------------------

    def _snapshots_dir(self) -> str:
        path = os.path.join(self._root, "snapshots")
        os.makedirs(path, exist_ok=True)
        return path

    def _snapshot_image(self, snapshot_id: str) -> str:
        return os.path.join(self._snapshots_dir(), self._snapshot_name(snapshot_id) + IMAGE)

    def _snapshot_record(self, snapshot_id: str) -> str:
        return os.path.join(self._snapshots_dir(), self._snapshot_name(snapshot_id) + RECORD)

    @staticmethod
    def _snapshot_name(snapshot_id: str) -> str:
        if not snapshot_id or "/" in snapshot_id or snapshot_id.startswith("."):
            raise UnknownSnapshot(f"No snapshot {snapshot_id!r}: not a snapshot id.")
        return snapshot_id

    @contextlib.contextmanager
    def _snapshot_locked(self, snapshot_id: str) -> Iterator[None]:
        with self._locked("snapshot-" + self._snapshot_name(snapshot_id)):
            yield

    def snapshot_method(self) -> str:
        """How this pool copies: ``"reflink"`` or ``"copy"`` (probed once)."""
        if self._method is None:
            self._method = filecopy.probe(self._snapshots_dir())
        return self._method

    # -- snapshots ------------------------------------------------------------

    def _read_snapshot(self, snapshot_id: str) -> BlockDeviceSnapshot:
        try:
            size = os.stat(self._snapshot_image(snapshot_id)).st_size
            with open(self._snapshot_record(snapshot_id)) as f:
                record = json.load(f)
        except FileNotFoundError:
            raise UnknownSnapshot(
                f"No snapshot {snapshot_id} in cluster {self.cluster_id}."
            ) from None
        except (OSError, ValueError) as e:
            raise BackendError(f"Snapshot record of {snapshot_id} is unreadable: {e}") from e
        return BlockDeviceSnapshot(
            snapshot_id=snapshot_id,
            blockdevice_id=record["blockdevice_id"],
            dataset_id=UUID(record["dataset_id"]),
            size=size,
            cluster_id=self.cluster_id,
        )

    def create_snapshot(self, blockdevice_id: str, snapshot_id: str) -> BlockDeviceSnapshot:
        """Copy the volume's file into the snapshots (reflink or sparse copy); idempotent."""
        with self._snapshot_locked(snapshot_id):
            with contextlib.suppress(UnknownSnapshot):
                existing = self._read_snapshot(snapshot_id)
                if existing.blockdevice_id != blockdevice_id:
                    raise BackendError(
                        f"Snapshot {snapshot_id} exists with source {existing.blockdevice_id}, "
                        f"not {blockdevice_id}; use another snapshot id."
                    )
                return existing
            source = self._volume(blockdevice_id)
            if self.overcommit is not None:
                self._check_room(source.size, "A snapshot")
            record = {"blockdevice_id": blockdevice_id, "dataset_id": str(source.dataset_id)}
            write_atomically(self._snapshot_record(snapshot_id), json.dumps(record).encode())
            self._copy_whole(self._image(blockdevice_id), self._snapshot_image(snapshot_id))
            return self._read_snapshot(snapshot_id)

    def list_snapshots(self) -> list[BlockDeviceSnapshot]:
        """Every whole snapshot of this cluster, by id; removes what crashes left half-made."""
        directory = self._snapshots_dir()
        filecopy.sweep(directory)
        found = []
        names = sorted(os.listdir(directory))
        for name in names:
            if name.startswith("."):
                continue
            snapshot_id, kind = os.path.splitext(name)
            if kind == RECORD and snapshot_id + IMAGE not in names:
                self._drop_stray_record(snapshot_id)
            elif kind == IMAGE:
                with contextlib.suppress(UnknownSnapshot):
                    found.append(self._read_snapshot(snapshot_id))
        return found

    def _drop_stray_record(self, snapshot_id: str) -> None:
        """Remove a record whose image never appeared, unless its snapshot is being made.

        Never waits: a snapshot being made holds its lock, and a listing goes on without it.
        """
        lock = os.path.join(self._root, "locks", "snapshot-" + self._snapshot_name(snapshot_id))
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            if not os.path.exists(self._snapshot_image(snapshot_id)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._snapshot_record(snapshot_id))
        finally:
            os.close(fd)

    def destroy_snapshot(self, snapshot_id: str) -> None:
        """Delete the snapshot's image, then its record."""
        with self._snapshot_locked(snapshot_id):
            self._read_snapshot(snapshot_id)
            os.unlink(self._snapshot_image(snapshot_id))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._snapshot_record(snapshot_id))

    # -- volumes from a source ------------------------------------------------

    def create_volume_from_snapshot(
        self, dataset_id: UUID, snapshot_id: str, size: int
    ) -> BlockDeviceVolume:
        """A new volume file copied from the snapshot's, grown to ``size``; idempotent."""
        if not os.path.exists(self._image(str(dataset_id))):
            with self._snapshot_locked(snapshot_id):
                snapshot = self._read_snapshot(snapshot_id)
                self._volume_from(
                    dataset_id, self._snapshot_image(snapshot_id), snapshot.size, size
                )
        return self._volume(str(dataset_id))

    def clone_volume(
        self, dataset_id: UUID, source_blockdevice_id: str, size: int
    ) -> BlockDeviceVolume:
        """A new volume file copied from the source volume's, grown to ``size``; idempotent."""
        if not os.path.exists(self._image(str(dataset_id))):
            source = self._volume(source_blockdevice_id)
            self._volume_from(dataset_id, self._image(source_blockdevice_id), source.size, size)
        return self._volume(str(dataset_id))

    def _volume_from(self, dataset_id: UUID, source: str, minimum: int, size: int) -> None:
        rounded = _round(size)
        if rounded < minimum:
            raise BackendError(
                f"A volume of {describe_size(rounded)} cannot hold a source of "
                f"{describe_size(minimum)}; ask for at least the source's size."
            )
        image = self._image(str(dataset_id))
        with self._pool_locked():
            if os.path.exists(image):
                return
            _, _, ceiling, maximum = self._limits()
            if rounded > maximum:
                raise self._refuse(rounded, ceiling, maximum)
            self._copy_whole(source, image, rounded)

    def _copy_whole(self, source: str, destination: str, size: int | None = None) -> None:
        """Copy ``source`` to ``destination`` (appearing whole), grown to ``size`` if given."""
        thick = self.overcommit is None and size is not None
        source_fd = os.open(source, os.O_RDONLY)
        try:
            length = os.fstat(source_fd).st_size

            def fill(fd: int) -> None:
                if thick and self.snapshot_method() == filecopy.COPY:
                    os.posix_fallocate(fd, 0, size or length)
                filecopy.copy_into(source_fd, fd, length)
                if size is not None and size > length:
                    self._extend(fd, length, size)

            try:
                filecopy.make_whole(destination, fill)
            except OSError as e:
                if e.errno in _FULL:
                    raise InsufficientCapacity(
                        f"Pool {self.pool} ran out of space copying {source}: {e}. Free space "
                        "in the pool (delete datasets or snapshots).",
                        reason="no_space",
                        requested=size or length,
                        available=self._limits()[3],
                    ) from e
                raise
        finally:
            os.close(source_fd)

    def _extend(self, fd: int, old: int, new: int) -> None:
        if self.overcommit is None:
            os.posix_fallocate(fd, old, new - old)
        else:
            os.ftruncate(fd, new)

    def _check_room(self, size: int, what: str) -> None:
        _, _, ceiling, maximum = self._limits()
        if size > maximum:
            raise InsufficientCapacity(
                f"{what} of {describe_size(size)} does not fit in pool {self.pool} now: the "
                f"largest that fits is {describe_size(maximum)}. Free space in the pool "
                "(delete datasets or snapshots) or ask for less.",
                reason="too_large" if size > ceiling else "no_space",
                requested=size,
                available=maximum,
            )

    # -- resize ---------------------------------------------------------------

    def resize_volume(self, blockdevice_id: str, size: int) -> BlockDeviceVolume:
        """Grow the volume's file (within capacity) and refresh its loop devices' size."""
        volume = self._volume(blockdevice_id)
        rounded = _round(size)
        with self._locked(blockdevice_id):
            volume = self._volume(blockdevice_id)
            if rounded < volume.size:
                raise BackendError(
                    f"Volume {blockdevice_id} has {describe_size(volume.size)}; it cannot "
                    f"shrink to {describe_size(rounded)}. Volumes only grow."
                )
            image = self._image(blockdevice_id)
            if rounded > volume.size:
                with self._pool_locked():
                    self._check_room(rounded - volume.size, "Growing a volume")
                    self._grow_file(image, volume.size, rounded)
            for device in loopdev.devices_backed_by(image):
                loopdev.refresh_size(device)
        return self._volume(blockdevice_id)

    def _grow_file(self, image: str, old: int, new: int) -> None:
        fd = os.open(image, os.O_RDWR)
        try:
            try:
                self._extend(fd, old, new)
            except OSError as e:
                os.ftruncate(fd, old)
                if e.errno not in _FULL:
                    raise
                raise InsufficientCapacity(
                    f"Pool {self.pool} has no room to grow {image} to {describe_size(new)}: "
                    f"{e}. Free space in the pool or ask for less.",
                    reason="no_space",
                    requested=new - old,
                    available=self._limits()[3],
                ) from e
            os.fsync(fd)
        finally:
            os.close(fd)
