"""
Volumes as Ceph RBD images, attached through the kernel client or rbd-fuse plus a loop device.

Names and records (see :mod:`~agent.backends.rbd.naming`): a volume is the image
``shoal-<cluster id>-<dataset id>`` (blockdevice id: the dataset id); its
attachment is a RADOS object created exclusively (:mod:`~agent.backends.rbd.claims`),
so of nodes racing to attach exactly one wins, and every node lists who has it.

Attach, on the node attaching: take the attachment record, refuse if any
other Ceph client still has the image open (a writer outside Shoal, or a node
that died without being fenced whose watch has not expired yet), then map it
(``rbd map -o exclusive``) or start ``rbd-fuse -r IMAGE`` and a loop device
(:mod:`~agent.backends.rbd.fuse`), and record the client addresses that now
have it open: what a fence blocklists. Detach undoes exactly that, then
removes the record. Everything local is found again from the system, so a
restarted agent adopts its attachments; a record without a device (a crash
mid-attach) is completed by :meth:`RbdBlockDeviceAPI.get_device_path` or cleared by
detach, and local leftovers without a record are listed by
:meth:`RbdBlockDeviceAPI.fenced_leftovers`.

Single writer: see docs/backends.md ("Ceph RBD: one writer").
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any
from uuid import UUID

from attrs import define, field

from agent.backends.interface import (
    AlreadyAttachedVolume,
    BackendError,
    BlockDeviceVolume,
    StaleEpoch,
    UnattachedVolume,
    UnknownVolume,
)
from agent.backends.rbd import bindings, capacity, claims, krbd, naming
from agent.backends.rbd.fencing import RbdFencing
from agent.backends.rbd.fuse import RbdFuse
from agent.backends.rbd.session import CephSession, CephSettings
from agent.backends.rbd.snapshots import RbdSnapshots
from control.model import Capacity

MiB = 2**20
BACKEND_NAME = "rbd"
DEFAULT_RUN_DIR = "/run/shoal/rbd"
ATTACH_METHODS = ("auto", "kernel", "fuse")


def _epoch_of(image: Any) -> int:
    """The attach epoch recorded in an open image's metadata (0 if none)."""
    try:
        return int(image.metadata_get(naming.META_EPOCH))
    except (KeyError, ValueError):
        return 0


def _round(size: int) -> int:
    if size <= 0:
        raise BackendError(f"A volume size must be a positive number of bytes, not {size}.")
    return -(-size // MiB) * MiB


@define
class RbdBlockDeviceAPI(RbdSnapshots, RbdFencing):
    """Volumes of ``cluster_id`` in one Ceph pool, as seen from the node ``instance_id``."""

    cluster_id: UUID
    instance_id: str
    settings: CephSettings = field(factory=CephSettings)
    run_dir: str = DEFAULT_RUN_DIR
    overcommit: float = 1.0
    attach_method: str = "auto"
    pause: Any = field(factory=lambda: threading.Event().wait)
    session: CephSession = field(init=False)
    _fuse: RbdFuse = field(init=False)

    def __attrs_post_init__(self) -> None:
        if self.attach_method not in ATTACH_METHODS:
            raise BackendError(
                f"--rbd-attach must be one of {', '.join(ATTACH_METHODS)}, "
                f"not {self.attach_method!r}."
            )
        if self.overcommit <= 0:
            raise BackendError(f"The overcommit ratio must be positive, not {self.overcommit}.")
        here = os.path.join(os.path.abspath(self.run_dir), naming.safe(self.instance_id))
        os.makedirs(here, exist_ok=True)
        self.run_dir = os.path.realpath(here)
        self.session = CephSession(self.settings)
        self._fuse = RbdFuse(self.settings, self.run_dir)

    def close(self) -> None:
        """Close the Ceph connection (attachments stay)."""
        self.session.close()

    # -- names and lookups ------------------------------------------------------

    def _kernel(self) -> bool:
        if self.attach_method == "auto":
            return krbd.available()
        return self.attach_method == "kernel"

    def _image(self, blockdevice_id: str) -> tuple[str, UUID]:
        dataset_id = naming.dataset_of(blockdevice_id)
        if dataset_id is None:
            raise UnknownVolume(f"No volume {blockdevice_id!r}: not a canonical dataset id.")
        return naming.volume_image(self.cluster_id, dataset_id), dataset_id

    def _volume_of(self, ioctx: Any, image: str, dataset_id: UUID) -> BlockDeviceVolume:
        _, rbd = bindings.load()
        try:
            with rbd.Image(ioctx, image, read_only=True) as opened:
                size = opened.size()
                epoch = _epoch_of(opened)
        except rbd.ImageNotFound:
            raise UnknownVolume(
                f"No volume {dataset_id} in cluster {self.cluster_id} (no image {image} in "
                f"pool {self.settings.pool})."
            ) from None
        return self._volume_with(ioctx, image, dataset_id, size, epoch)

    def _volume_with(
        self, ioctx: Any, image: str, dataset_id: UUID, size: int, epoch: int
    ) -> BlockDeviceVolume:
        """The volume of an image of ``size`` bytes at ``epoch``, attached as its record says."""
        record = claims.read(ioctx, image)
        return BlockDeviceVolume(
            blockdevice_id=str(dataset_id),
            size=size,
            cluster_id=self.cluster_id,
            dataset_id=dataset_id,
            attached_to=record[0].instance_id if record else None,
            epoch=epoch,
        )

    def _volume(self, blockdevice_id: str) -> BlockDeviceVolume:
        image, dataset_id = self._image(blockdevice_id)
        return self.session.run(lambda io: self._volume_of(io, image, dataset_id))

    # -- the contract -----------------------------------------------------------

    def allocation_unit(self) -> int:
        """Volume sizes are rounded up to a multiple of 1 MiB."""
        return MiB

    def compute_instance_id(self) -> str:
        """The id of the node this backend instance runs on (given by the caller)."""
        return self.instance_id

    def capacity(self) -> Capacity:
        """The pool's size and unpromised bytes, and the largest volume that fits now."""
        found = capacity.limits(self.session, self.overcommit)
        return Capacity(
            backend=BACKEND_NAME,
            total=found.total,
            free=max(0, min(found.total, found.total - found.provisioned)),
            maximum_volume_size=found.maximum,
            shared=True,
            snapshot_method=self.snapshot_method(),
        )

    def _reserve(self, size: int) -> None:
        """Raise :class:`InsufficientCapacity` unless ``size`` more bytes fit (lock held)."""
        found = capacity.limits(self.session, self.overcommit)
        if size > found.maximum:
            raise capacity.refusal(size, found, self.settings.pool)

    def create_volume(self, dataset_id: UUID, size: int) -> BlockDeviceVolume:
        """Return the dataset's volume, creating an image of at least ``size`` bytes."""
        size = _round(size)
        image = naming.volume_image(self.cluster_id, dataset_id)
        with contextlib.suppress(UnknownVolume):
            return self._volume(str(dataset_id))
        _, rbd = bindings.load()
        with capacity.locked(self.session, self.pause):
            with contextlib.suppress(UnknownVolume):
                return self._volume(str(dataset_id))
            self._reserve(size)
            try:
                self.session.run(lambda io: rbd.RBD().create(io, image, size, old_format=False))
            except rbd.ImageExists:
                return self._volume(str(dataset_id))
        return self.session.run(lambda io: self._label(io, image, dataset_id))

    def _label(self, ioctx: Any, image: str, dataset_id: UUID) -> BlockDeviceVolume:
        """Write the cluster and dataset into the new image's metadata, for operators; the
        volume as it is now (one open of the image for both)."""
        _, rbd = bindings.load()
        with rbd.Image(ioctx, image) as opened:
            opened.metadata_set(naming.META_CLUSTER, str(self.cluster_id))
            opened.metadata_set(naming.META_DATASET, str(dataset_id))
            size, epoch = opened.size(), _epoch_of(opened)
        return self._volume_with(ioctx, image, dataset_id, size, epoch)

    def destroy_volume(self, blockdevice_id: str) -> None:
        """Remove an unattached volume's image (kept under a retired name while it has
        snapshots)."""
        volume = self._volume(blockdevice_id)
        if volume.attached_to is not None:
            raise AlreadyAttachedVolume(
                f"Volume {blockdevice_id} is attached to {volume.attached_to}; detach it first."
            )
        image, dataset_id = self._image(blockdevice_id)
        self.session.run(lambda io: self._retire_or_remove(io, image, dataset_id))

    def attach_volume(
        self, blockdevice_id: str, attach_to: str, epoch: int = 0
    ) -> BlockDeviceVolume:
        """Record the attachment to ``attach_to`` and, if that is this node, make its device."""
        volume = self._volume(blockdevice_id)
        image, _ = self._image(blockdevice_id)
        recorded = volume.epoch
        self._check_epoch(blockdevice_id, epoch, recorded)
        claim = claims.Claim(instance_id=attach_to, epoch=max(epoch, recorded))
        if not self.session.run(lambda io: claims.take(io, image, claim)):
            holder = self.session.run(lambda io: claims.read(io, image))
            raise AlreadyAttachedVolume(
                f"Volume {blockdevice_id} is attached to "
                f"{holder[0].instance_id if holder else 'another node'}; detach it there first "
                "(or fence that node)."
            )
        try:
            # Another node may have attached at a newer epoch (and detached) since the check.
            # One open of the image reads the epoch and who has it open (for _attach_here).
            now_recorded, open_now = self._epoch_and_others(image)
            self._check_epoch(blockdevice_id, epoch, now_recorded)
            if claim.epoch > recorded:
                self._record_epoch(image, claim.epoch)
            if attach_to == self.instance_id:
                self._attach_here(image, open_now)
        except BaseException:
            self._undo_attach(image, attach_to)
            raise
        return BlockDeviceVolume(
            blockdevice_id=blockdevice_id,
            size=volume.size,
            cluster_id=self.cluster_id,
            dataset_id=volume.dataset_id,
            attached_to=attach_to,
            epoch=claim.epoch,
        )

    def _check_epoch(self, blockdevice_id: str, epoch: int, recorded: int) -> None:
        """Refuse an attach with an epoch older than the recorded one (a stale caller)."""
        if epoch < recorded:
            raise StaleEpoch(
                f"Volume {blockdevice_id} was attached with epoch {recorded}, newer than this "
                f"attach's {epoch}: this node's configuration is stale (a failover happened). "
                "It must not attach the volume."
            )

    def _epoch_and_others(self, image: str) -> tuple[int, list[str]]:
        """The image's recorded attach epoch, and the addresses of the clients other than
        ours that have it open (one open of the image)."""
        _, rbd = bindings.load()
        mine = self.session.address()

        def read(ioctx: Any) -> tuple[int, list[str]]:
            with rbd.Image(ioctx, image, read_only=True) as opened:
                return _epoch_of(opened), [str(w["addr"]) for w in opened.watchers_list()]

        epoch, watchers = self.session.run(read)
        return epoch, [a for a in watchers if a != mine]

    def _record_epoch(self, image: str, epoch: int) -> None:
        _, rbd = bindings.load()

        def write(ioctx: Any) -> None:
            with rbd.Image(ioctx, image) as opened:
                opened.metadata_set(naming.META_EPOCH, str(epoch))

        self.session.run(write)

    def _others_open(self, image: str) -> list[str]:
        """The addresses of the clients other than ours that have ``image`` open."""
        _, rbd = bindings.load()
        mine = self.session.address()

        def watchers(ioctx: Any) -> list[str]:
            with rbd.Image(ioctx, image, read_only=True) as opened:
                return [str(w["addr"]) for w in opened.watchers_list()]

        return [a for a in self.session.run(watchers) if a != mine]

    def _attach_here(self, image: str, open_now: list[str] | None = None) -> str:
        """Make the local device of an image whose record names this node; record its
        clients. Refuses (:class:`AlreadyAttachedVolume`) while another client has it open
        (``open_now``: those clients, if just looked up)."""
        kernel = self._kernel()
        present = krbd.mapped(self.settings, image) if kernel else self._fuse.find(image).pids
        recorded = self.session.run(lambda io: claims.read(io, image))
        ours = set(recorded[0].clients) if recorded else set()
        # A client this node's attachment recorded is its own: with no local process left, an
        # rbd-fuse that died, whose watch (and maybe RBD's exclusive lock) lingers for 30 s.
        # Blocklisting it lets the new client take over at once; it can never write again.
        if open_now is None:
            open_now = self._others_open(image)
        if not present:
            for address in sorted(ours & set(open_now)):
                self.session.blocklist(address)
        before = [a for a in open_now if a not in ours]
        if before and not present:
            raise AlreadyAttachedVolume(
                f"Image {image} is still open by Ceph client(s) {', '.join(before)}: a writer "
                "outside Shoal, or a node that stopped without being fenced (its watch expires "
                "within 30 s). Fence that node, or stop the writer, then attach again."
            )
        if kernel:
            device, method = krbd.attach(self.settings, image), "kernel"
        else:
            device, method = self._fuse.attach(image), "fuse"
        clients = tuple(sorted(self._others_open(image)))
        record = self.session.run(lambda io: claims.read(io, image))
        if record is None or record[0].instance_id != self.instance_id:
            self._detach_here(image)
            raise UnattachedVolume(f"The attachment of {image} was removed (fenced) meanwhile.")
        updated = record[0].with_clients(clients, device, method)
        if updated != record[0] and not self.session.run(
            lambda io: claims.replace(io, image, updated, record[1])
        ):
            self._detach_here(image)
            raise UnattachedVolume(f"The attachment of {image} changed (fenced) meanwhile.")
        return device

    def _detach_here(self, image: str) -> None:
        """Remove this node's device of ``image``, whichever way it was attached."""
        krbd.detach(self.settings, image)
        self._fuse.detach(image)

    def _undo_attach(self, image: str, attach_to: str) -> None:
        """Undo a failed attach: the local device, then the record it took."""
        with contextlib.suppress(BackendError):
            self._detach_here(image)
        record = self.session.run(lambda io: claims.read(io, image))
        if record is not None and record[0].instance_id == attach_to:
            self.session.run(lambda io: claims.remove(io, image, record[1]))

    def detach_volume(self, blockdevice_id: str) -> None:
        """Remove this node's device of the volume, then its attachment record.

        A volume attached to another node is refused: its device is on that
        node, which detaches it (or is fenced).
        """
        self._volume(blockdevice_id)
        image, _ = self._image(blockdevice_id)
        record = self.session.run(lambda io: claims.read(io, image))
        if record is None:
            raise UnattachedVolume(f"Volume {blockdevice_id} is not attached.")
        if record[0].instance_id != self.instance_id:
            raise BackendError(
                f"Volume {blockdevice_id} is attached to {record[0].instance_id}, not to this "
                f"node {self.instance_id}: detach it on that node, or fence that node."
            )
        self._detach_here(image)
        self.session.run(lambda io: claims.remove(io, image, record[1]))

    def list_volumes(self) -> list[BlockDeviceVolume]:
        """Every volume of this cluster in the pool, ordered by blockdevice id."""
        _, rbd = bindings.load()

        def listing(ioctx: Any) -> list[tuple[str, UUID]]:
            found = []
            for entry in rbd.RBD().list2(ioctx):
                dataset_id = naming.parse_volume(entry["name"], self.cluster_id)
                if dataset_id is not None:
                    found.append((entry["name"], dataset_id))
            return found

        def volume(ioctx: Any, item: tuple[str, UUID]) -> BlockDeviceVolume | None:
            try:
                return self._volume_of(ioctx, *item)
            except UnknownVolume:
                return None

        volumes = self.session.map(volume, self.session.run(listing))
        return sorted((v for v in volumes if v is not None), key=lambda v: v.blockdevice_id)

    def get_device_path(self, blockdevice_id: str) -> str:
        """The device of a volume attached here, made again if it vanished.

        Cheap when the device is there (one RADOS read and a look at the node): the agent
        asks on every pass.
        """
        image, _ = self._image(blockdevice_id)
        record = self.session.run(lambda io: claims.read(io, image))
        if record is None:
            self._volume(blockdevice_id)  # UnknownVolume if there is no such volume
            raise UnattachedVolume(f"Volume {blockdevice_id} is not attached.")
        if record[0].instance_id != self.instance_id:
            raise UnattachedVolume(
                f"Volume {blockdevice_id} is attached to {record[0].instance_id}, "
                f"not to this instance {self.instance_id}."
            )
        if self._kernel():
            mapped = krbd.mapped(self.settings, image)
            if mapped:
                return mapped[0]
        else:
            found = self._fuse.find(image)
            if found.devices and found.mounted and found.pids:
                return found.devices[0]
        self._volume(blockdevice_id)
        return self._attach_here(image)


__all__ = ["ATTACH_METHODS", "BACKEND_NAME", "RbdBlockDeviceAPI"]
