"""
Fencing for the rbd backend (a mixin of :class:`agent.backends.rbd.backend.RbdBlockDeviceAPI`).

``fence(volume, node)`` blocklists every Ceph client instance that has the
volume's image open for ``node`` (``ceph osd blocklist add ADDR/NONCE``, as
ceph-csi's NetworkFence does, but per client instance): the addresses its
attachment record names plus the image's current watchers. From then on the
OSDs refuse that client: the node's writers get EIO (ext4 aborts its journal),
and its rbd-fuse hangs, ignoring SIGTERM. The attachment record is then
removed, so another node can attach at once.

The fenced node finds the remains (an rbd-fuse mount, process and loop device,
or a kernel mapping, whose image has no attachment record naming this node) in
:meth:`RbdFencing.fenced_leftovers`; :meth:`RbdFencing.clean_up_fenced` SIGKILLs
rbd-fuse, lazily unmounts what is still mounted on its loop device, detaches it
and the FUSE mount (or force-unmaps the kernel device). Attaching again later
starts a new rbd-fuse, a new client instance that is not blocklisted; the
agent does that only once the node is unfenced (its new configuration carries
a newer epoch). Blocklist entries expire after an hour
(:data:`~agent.backends.rbd.session.BLOCKLIST_EXPIRY`), long after the dead
client is gone.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from agent.backends.interface import BlockDeviceVolume, FencedAttachment
from agent.backends.rbd import bindings, claims, krbd, naming


class RbdFencing:
    """fence, fenced_leftovers and clean_up_fenced of the rbd backend (a mixin)."""

    cluster_id: UUID
    instance_id: str
    session: Any
    settings: Any
    _fuse: Any

    def _volume(self, blockdevice_id: str) -> BlockDeviceVolume:
        raise NotImplementedError

    def _image(self, blockdevice_id: str) -> tuple[str, UUID]:
        raise NotImplementedError

    def _watchers(self, image: str) -> list[str]:
        _, rbd = bindings.load()

        def watchers(ioctx: Any) -> list[str]:
            with rbd.Image(ioctx, image, read_only=True) as opened:
                return [str(w["addr"]) for w in opened.watchers_list()]

        return self.session.run(watchers)

    def fence(self, blockdevice_id: str, node: str) -> None:
        """Blocklist ``node``'s clients of the volume, then remove its attachment record."""
        self._volume(blockdevice_id)
        image, _ = self._image(blockdevice_id)
        record = self.session.run(lambda io: claims.read(io, image))
        if record is None or record[0].instance_id != node:
            return
        mine = self.session.address()
        addresses = set(record[0].clients) | set(self._watchers(image))
        for address in sorted(addresses - {mine}):
            self.session.blocklist(address)
        self.session.run(lambda io: claims.remove(io, image, record[1]))

    def _local_images(self) -> dict[str, tuple[str | None, str]]:
        """The images of this cluster with something on this node: device and description."""
        found: dict[str, tuple[str | None, str]] = {}
        for attachment in self._fuse.local():
            if naming.parse_volume(attachment.image, self.cluster_id) is None:
                continue
            parts = [f"rbd-fuse pid {pid}" for pid in attachment.pids]
            if attachment.mounted:
                parts.append(f"FUSE mount {attachment.mountpoint}")
            parts += [f"loop device {d}" for d in attachment.devices]
            device = attachment.devices[0] if attachment.devices else None
            found[attachment.image] = (device, ", ".join(parts) or attachment.mountpoint)
        if krbd.available():
            for image in krbd.mapped_images(self.settings):
                if naming.parse_volume(image, self.cluster_id) is not None:
                    device = krbd.mapped(self.settings, image)[0]
                    found[image] = (device, f"kernel RBD device {device}")
        return found

    def fenced_leftovers(self) -> list[FencedAttachment]:
        """This node's attachments whose record no longer names this node."""
        leftovers = []
        for image, (device, parts) in sorted(self._local_images().items()):
            record = self.session.run(lambda io, image=image: claims.read(io, image))
            if record is not None and record[0].instance_id == self.instance_id:
                continue
            dataset_id = naming.parse_volume(image, self.cluster_id)
            leftovers.append(
                FencedAttachment(
                    blockdevice_id=str(dataset_id),
                    device_path=device,
                    detail=f"{parts} of volume {dataset_id} (image {image}), fenced from this node",
                )
            )
        return leftovers

    def clean_up_fenced(self, leftover: FencedAttachment) -> None:
        """SIGKILL rbd-fuse, lazily unmount and detach the loop device and FUSE mount (or
        force-unmap the kernel device); nothing if the volume is attached here again."""
        image, _ = self._image(leftover.blockdevice_id)
        record = self.session.run(lambda io: claims.read(io, image))
        if record is not None and record[0].instance_id == self.instance_id:
            return
        self._fuse.kill(image)
        if krbd.available():
            krbd.detach(self.settings, image, force=True)


__all__ = ["RbdFencing"]
