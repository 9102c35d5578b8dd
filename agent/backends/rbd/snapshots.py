"""
RBD's own snapshots, clones and resizes for the rbd backend (a mixin of
:class:`agent.backends.rbd.backend.RbdBlockDeviceAPI`).

- A snapshot is the RBD snapshot ``shoal-snap-<snapshot id>`` of its source's
  image: copy-on-write, made atomically by Ceph. A volume destroyed while it has
  snapshots is renamed (retired, see :mod:`~agent.backends.rbd.naming`) so its
  snapshots outlive it; the retired image goes when its last snapshot does.
- A restore is an RBD clone of the snapshot; a clone of a live volume is an RBD
  clone of a temporary snapshot of it. Clones use RBD's clone format 2, whose
  parent snapshot may be removed (it waits in RBD's snapshot trash while a child
  needs it), so destroying a snapshot never touches a restored volume. A copy is
  made under a temporary name, grown, then renamed into place: it appears whole
  or not at all, and an agent removes its own temporaries when it starts.
- A resize is ``rbd resize``; an attached loop device is told the new size.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

from agent.backends.interface import (
    BackendError,
    BlockDeviceSnapshot,
    BlockDeviceVolume,
    UnknownSnapshot,
    UnknownVolume,
)
from agent.backends.rbd import bindings, capacity, claims, naming, snapids
from agent.commands import run_command

MiB = 2**20
SNAPSHOT_METHOD = "rbd-snapshot"


def _snapshot_size(opened: Any, name: str) -> int | None:
    """The size of the open image's snapshot ``name``, or ``None`` if it has none."""
    return next((int(s["size"]) for s in opened.list_snaps() if s["name"] == name), None)


def _create_snap(opened: Any, name: str) -> None:
    """Make the open image's snapshot ``name`` (there already: nothing to do)."""
    _, rbd = bindings.load()
    with contextlib.suppress(rbd.ImageExists):
        opened.create_snap(name)


class RbdSnapshots:
    """Snapshots, restores, clones and resizes of RBD volumes (a mixin)."""

    cluster_id: UUID
    instance_id: str
    session: Any
    settings: Any
    pause: Any
    _fuse: Any

    def _volume(self, blockdevice_id: str) -> BlockDeviceVolume:
        raise NotImplementedError

    def _image(self, blockdevice_id: str) -> tuple[str, UUID]:
        raise NotImplementedError

    def _reserve(self, size: int) -> None:
        raise NotImplementedError

    def snapshot_method(self) -> str:
        """RBD snapshots are copy-on-write: ``"rbd-snapshot"``."""
        return SNAPSHOT_METHOD

    # -- snapshots ------------------------------------------------------------

    def _holders(self, ioctx: Any) -> list[tuple[str, UUID]]:
        """The images of this cluster that may hold snapshots, with their dataset ids."""
        _, rbd = bindings.load()
        found = []
        for entry in rbd.RBD().list2(ioctx):
            dataset_id = naming.parse_snapshot_holder(entry["name"], self.cluster_id)
            if dataset_id is not None:
                found.append((entry["name"], dataset_id))
        return found

    def _snapshots_of(
        self, ioctx: Any, holder: tuple[str, UUID]
    ) -> list[tuple[str, BlockDeviceSnapshot]]:
        """The Shoal snapshots of one image, with the image's name."""
        _, rbd = bindings.load()
        image, dataset_id = holder
        found = []
        with contextlib.suppress(rbd.ImageNotFound), rbd.Image(
            ioctx, image, read_only=True
        ) as opened:
            for snap in opened.list_snaps():
                snapshot_id = naming.snapshot_id_of(snap["name"])
                if snapshot_id is not None:
                    found.append((image, BlockDeviceSnapshot(
                        snapshot_id=snapshot_id,
                        blockdevice_id=str(dataset_id),
                        dataset_id=dataset_id,
                        size=int(snap["size"]),
                        cluster_id=self.cluster_id,
                    )))
        return found

    def _all_snapshots(self) -> list[tuple[str, BlockDeviceSnapshot]]:
        """Every Shoal snapshot of this cluster, with its image's name."""
        holders = self.session.run(self._holders)
        return [s for found in self.session.map(self._snapshots_of, holders) for s in found]

    def _find_snapshot(self, snapshot_id: str) -> tuple[str, BlockDeviceSnapshot]:
        if not naming.valid_snapshot_id(snapshot_id):
            raise UnknownSnapshot(f"No snapshot {snapshot_id!r}: not a snapshot id.")
        for image, snapshot in self._all_snapshots():
            if snapshot.snapshot_id == snapshot_id:
                return image, snapshot
        raise UnknownSnapshot(f"No snapshot {snapshot_id} in cluster {self.cluster_id}.")

    def list_snapshots(self) -> list[BlockDeviceSnapshot]:
        """Every snapshot of this cluster, ordered by id."""
        found = [s for _, s in self._all_snapshots()]
        return sorted(found, key=lambda s: s.snapshot_id)

    def create_snapshot(self, blockdevice_id: str, snapshot_id: str) -> BlockDeviceSnapshot:
        """An RBD snapshot of the volume's image (idempotent by id).

        One open of the image; the id's record (:mod:`~agent.backends.rbd.snapids`), not a
        listing of every image, says whether another volume has the id already.
        """
        return self.create_snapshot_quiesced(blockdevice_id, snapshot_id, lambda copy: copy())

    def create_snapshot_quiesced(
        self,
        blockdevice_id: str,
        snapshot_id: str,
        quiesce: Callable[[Callable[[], Any]], Any],
    ) -> BlockDeviceSnapshot:
        """:meth:`create_snapshot`, with ``quiesce`` around ``create_snap`` alone: the image's
        open, the id's record and the capacity check run while the caller's freeze is made
        (:class:`~agent.backends.interface.QuiescedSnapshotsAPI`)."""
        if not naming.valid_snapshot_id(snapshot_id):
            raise BackendError(
                f"{snapshot_id!r} cannot name a snapshot: use letters, digits, '.', ':', '-'."
            )
        image, dataset_id = self._image(blockdevice_id)
        _, rbd = bindings.load()
        name = naming.snapshot_name(snapshot_id)

        def snap(ioctx: Any) -> int:
            try:
                opened = rbd.Image(ioctx, image)
            except rbd.ImageNotFound:
                raise UnknownVolume(
                    f"No volume {blockdevice_id} in cluster {self.cluster_id} (no image {image})."
                ) from None
            with opened:
                made = _snapshot_size(opened, name)
                if made is not None:
                    return made
                owner = snapids.take(ioctx, self.cluster_id, snapshot_id, blockdevice_id)
                if owner != blockdevice_id:
                    raise BackendError(
                        f"Snapshot {snapshot_id} exists already, of volume {owner}, not "
                        f"{blockdevice_id}."
                    )
                with capacity.locked(self.session, self.pause):
                    self._reserve(opened.size())
                    quiesce(lambda: _create_snap(opened, name))
                made = _snapshot_size(opened, name)
                if made is None:
                    raise BackendError(f"Snapshot {name} of image {image} vanished once made.")
                return made

        size = self.session.run(snap)
        return BlockDeviceSnapshot(
            snapshot_id=snapshot_id,
            blockdevice_id=blockdevice_id,
            dataset_id=dataset_id,
            size=size,
            cluster_id=self.cluster_id,
        )

    def destroy_snapshot(self, snapshot_id: str) -> None:
        """Remove the RBD snapshot (to RBD's trash while clones need it), and a retired
        image once it has no snapshot left."""
        try:
            image, _ = self._find_snapshot(snapshot_id)
        except UnknownSnapshot:
            if naming.valid_snapshot_id(snapshot_id):  # a record a crash left behind
                self.session.run(lambda io: snapids.drop(io, self.cluster_id, snapshot_id))
            raise
        _, rbd = bindings.load()

        def remove(ioctx: Any) -> None:
            with rbd.Image(ioctx, image) as opened:
                with contextlib.suppress(rbd.ImageNotFound):
                    opened.remove_snap(naming.snapshot_name(snapshot_id))
                left = [s for s in opened.list_snaps() if s["name"].startswith(naming.SNAP_PREFIX)]
            if naming.parse_volume(image, self.cluster_id) is None and not left:
                self._remove_image(ioctx, image)

        self.session.run(remove)
        self.session.run(lambda io: snapids.drop(io, self.cluster_id, snapshot_id))

    def _remove_image(self, ioctx: Any, image: str) -> None:
        """Remove an image; to RBD's trash if clones still need its snapshots."""
        _, rbd = bindings.load()
        try:
            rbd.RBD().remove(ioctx, image)
        except (rbd.ImageHasSnapshots, rbd.ImageBusy):
            with rbd.Image(ioctx, image) as opened:
                for snap in opened.list_snaps():
                    with contextlib.suppress(rbd.Error):
                        opened.remove_snap(snap["name"])
            try:
                rbd.RBD().remove(ioctx, image)
            except (rbd.ImageHasSnapshots, rbd.ImageBusy):
                rbd.RBD().trash_move(ioctx, image, 0)

    def _retire_or_remove(self, ioctx: Any, image: str, dataset_id: UUID) -> None:
        """Destroy a volume's image: renamed if Shoal snapshots remain, else removed."""
        _, rbd = bindings.load()
        with rbd.Image(ioctx, image, read_only=True) as opened:
            ours = [s for s in opened.list_snaps() if s["name"].startswith(naming.SNAP_PREFIX)]
        if ours:
            retired = naming.retired_image(self.cluster_id, dataset_id, uuid.uuid4().hex[:8])
            rbd.RBD().rename(ioctx, image, retired)
        else:
            try:
                self._remove_image(ioctx, image)
            except rbd.ImageBusy as e:
                raise BackendError(
                    f"Image {image} is still open by a Ceph client ({e}); stop it, then destroy "
                    "again."
                ) from e
        with contextlib.suppress(rbd.Error):
            claims.remove(ioctx, image)

    # -- copies -----------------------------------------------------------------

    def _existing(self, dataset_id: UUID) -> BlockDeviceVolume | None:
        try:
            return self._volume(str(dataset_id))
        except UnknownVolume:
            return None

    def _copy(self, dataset_id: UUID, parent: str, parent_snap: str, size: int) -> None:
        """Clone ``parent@parent_snap`` into the dataset's volume of ``size`` bytes, whole."""
        _, rbd = bindings.load()
        final = naming.volume_image(self.cluster_id, dataset_id)
        temporary = naming.temporary_image(self.cluster_id, dataset_id, self.instance_id)

        def clone(ioctx: Any) -> None:
            with contextlib.suppress(rbd.ImageNotFound):
                self._remove_image(ioctx, temporary)
            rbd.RBD().clone(ioctx, parent, parent_snap, ioctx, temporary)
            try:
                with rbd.Image(ioctx, temporary) as opened:
                    if opened.size() < size:
                        opened.resize(size)
                    opened.metadata_set(naming.META_CLUSTER, str(self.cluster_id))
                    opened.metadata_set(naming.META_DATASET, str(dataset_id))
                rbd.RBD().rename(ioctx, temporary, final)
            except BaseException:
                with contextlib.suppress(rbd.Error):
                    self._remove_image(ioctx, temporary)
                raise

        self.session.run(clone)

    def create_volume_from_snapshot(
        self, dataset_id: UUID, snapshot_id: str, size: int
    ) -> BlockDeviceVolume:
        """A new volume cloned from the snapshot (idempotent by dataset)."""
        existing = self._existing(dataset_id)
        if existing is not None:
            return existing
        image, snapshot = self._find_snapshot(snapshot_id)
        size = -(-size // MiB) * MiB
        if size < snapshot.size:
            raise BackendError(
                f"A restore of snapshot {snapshot_id} needs at least {snapshot.size} bytes, "
                f"not {size}: ask for its size or more."
            )
        with capacity.locked(self.session, self.pause):
            existing = self._existing(dataset_id)
            if existing is not None:
                return existing
            self._reserve(size)
            self._copy(dataset_id, image, naming.snapshot_name(snapshot_id), size)
        return self._volume(str(dataset_id))

    def clone_volume(
        self, dataset_id: UUID, source_blockdevice_id: str, size: int
    ) -> BlockDeviceVolume:
        """A new volume cloned from a temporary snapshot of the live source."""
        existing = self._existing(dataset_id)
        if existing is not None:
            return existing
        source = self._volume(source_blockdevice_id)
        image, _ = self._image(source_blockdevice_id)
        size = -(-size // MiB) * MiB
        if size < source.size:
            raise BackendError(
                f"A clone of volume {source_blockdevice_id} needs at least {source.size} bytes, "
                f"not {size}: ask for its size or more."
            )
        _, rbd = bindings.load()
        snap = naming.CLONE_SNAP_PREFIX + str(dataset_id)

        def snap_source(ioctx: Any, make: bool) -> None:
            with rbd.Image(ioctx, image) as opened:
                if make:
                    with contextlib.suppress(rbd.ImageExists):
                        opened.create_snap(snap)
                else:
                    with contextlib.suppress(rbd.ImageNotFound):
                        opened.remove_snap(snap)

        with capacity.locked(self.session, self.pause):
            existing = self._existing(dataset_id)
            if existing is not None:
                return existing
            self._reserve(size)
            self.session.run(lambda io: snap_source(io, True))
            try:
                self._copy(dataset_id, image, snap, size)
            finally:
                self.session.run(lambda io: snap_source(io, False))
        return self._volume(str(dataset_id))

    def resize_volume(self, blockdevice_id: str, size: int) -> BlockDeviceVolume:
        """Grow the volume's image (``rbd resize``); an attached loop device follows."""
        volume = self._volume(blockdevice_id)
        size = -(-size // MiB) * MiB
        if size < volume.size:
            raise BackendError(
                f"Volume {blockdevice_id} has {volume.size} bytes; it cannot shrink to {size}."
            )
        if size == volume.size:
            return volume
        image, _ = self._image(blockdevice_id)
        _, rbd = bindings.load()

        def grow(ioctx: Any) -> None:
            with rbd.Image(ioctx, image) as opened:
                opened.resize(size)

        with capacity.locked(self.session, self.pause):
            self._reserve(size - volume.size)
            self.session.run(grow)
        for device in self._fuse.find(image).devices:
            run_command(["losetup", "-c", device], BackendError)
        return self._volume(blockdevice_id)

    def sweep_temporaries(self) -> None:
        """Remove the half-made copies this instance left (a crash mid-clone)."""
        _, rbd = bindings.load()

        def sweep(ioctx: Any) -> None:
            for entry in rbd.RBD().list2(ioctx):
                if naming.is_temporary_of(entry["name"], self.cluster_id, self.instance_id):
                    with contextlib.suppress(rbd.Error):
                        self._remove_image(ioctx, entry["name"])

        self.session.run(sweep)


__all__ = ["SNAPSHOT_METHOD", "RbdSnapshots"]
