"""
The loopback backend's fence (issue 11, ``docs/failover.md``).

Mixed into :class:`agent.backends.loopback.LoopbackBlockDeviceAPI`; the pool
layout grows by::

    <pool>/<cluster_id>/fenced/<dataset_id>@<node>   {"instance_id", "blockdevice_id", "devices"}

Every node shares this machine's kernel, so :meth:`LoopbackFencing.fence` shuts the
filesystem on the fenced node's loop device down in every mount namespace
(``FS_IOC_SHUTDOWN``, :mod:`agent.fs.shutdown`: its writers get ``EIO`` and
nothing more reaches the file), makes the device read-only (``BLKROSET``) and
moves the attachment record aside to ``fenced/``; the volume is then
unattached, and the next attach uses another loop device. A read-only loop
device backed by a volume is always such a leftover: attaches never reuse one
and detaches leave it to its node's :meth:`LoopbackFencing.clean_up_fenced`.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.parse
from contextlib import AbstractContextManager

from agent.backends import loopdev
from agent.backends.interface import BackendError, BlockDeviceVolume, FencedAttachment
from agent.files import write_atomically
from agent.fs import shutdown
from agent.fs.interface import FilesystemError


class LoopbackFencing:
    """Fence, fenced leftovers and their clean-up of loopback volumes (a mixin)."""

    # What the mixin uses of LoopbackBlockDeviceAPI, which defines them all.
    instance_id: str
    _root: str

    def _path(self, kind: str, blockdevice_id: str) -> str:
        raise NotImplementedError

    def _image(self, blockdevice_id: str) -> str:
        raise NotImplementedError

    def _volume(self, blockdevice_id: str) -> BlockDeviceVolume:
        raise NotImplementedError

    def _dataset_of(self, blockdevice_id: str) -> object:
        raise NotImplementedError

    def _locked(self, blockdevice_id: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _read_record(self, blockdevice_id: str) -> dict[str, str] | None:
        raise NotImplementedError

    def _remove_record(self, blockdevice_id: str) -> None:
        raise NotImplementedError

    def _live_devices(self, blockdevice_id: str) -> list[str]:
        raise NotImplementedError

    def _fenced_path(self, blockdevice_id: str, node: str) -> str:
        return self._path("fenced", f"{blockdevice_id}@{urllib.parse.quote(node, safe='')}")

    def _read_fenced(self, path: str) -> list[str] | None:
        """The devices a fenced attachment record lists; ``None`` without a record."""
        try:
            with open(path) as f:
                record = json.load(f)
            return [str(device) for device in record.get("devices") or []]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError, TypeError) as e:
            raise BackendError(f"Fenced attachment record {path} is unreadable: {e}") from e

    def fence(self, blockdevice_id: str, node: str) -> None:
        """Cut ``node`` off the volume: shut its filesystem down, make its loop device
        read-only, and move its attachment record aside.

        The fenced record is written first and lists every device fenced, so
        a crash part-way leaves a fence that a repeated call completes.
        """
        self._volume(blockdevice_id)
        with self._locked(blockdevice_id):
            record = self._read_record(blockdevice_id)
            if record is None or record.get("instance_id") != node:
                return
            path = self._fenced_path(blockdevice_id, node)
            devices = self._read_fenced(path) or []
            devices += [d for d in self._live_devices(blockdevice_id) if d not in devices]
            fenced = {"instance_id": node, "blockdevice_id": blockdevice_id, "devices": devices}
            write_atomically(path, json.dumps(fenced).encode())
            image = os.path.realpath(self._image(blockdevice_id))
            for device in devices:
                if loopdev.backing_file(device) != image:
                    continue
                try:
                    shutdown.shutdown_device(device)
                except FilesystemError as e:
                    raise BackendError(
                        f"Cannot fence volume {blockdevice_id} from {node}: {e}"
                    ) from e
                loopdev.set_read_only(device)
            self._remove_record(blockdevice_id)

    def fenced_leftovers(self) -> list[FencedAttachment]:
        """The fenced attachment records of this instance, with their loop devices still here."""
        leftovers = []
        suffix = "@" + urllib.parse.quote(self.instance_id, safe="")
        for name in sorted(os.listdir(os.path.join(self._root, "fenced"))):
            if not name.endswith(suffix) or name.startswith("."):
                continue
            blockdevice_id = name[: -len(suffix)]
            record = self._read_fenced(self._path("fenced", name)) or []
            present = self._fenced_devices(blockdevice_id, record)
            device = present[0] if present else None
            detail = (
                f"read-only loop device {device} of volume {blockdevice_id}, fenced from this node"
                if device
                else f"the record of volume {blockdevice_id}'s attachment fenced from this node"
            )
            leftovers.append(FencedAttachment(blockdevice_id, device, detail))
        return leftovers

    def _fenced_devices(self, blockdevice_id: str, devices: list[str]) -> list[str]:
        """The ``devices`` still backed by the volume and read-only (not reused since)."""
        image = os.path.realpath(self._image(blockdevice_id))
        return [d for d in devices if loopdev.backing_file(d) == image and loopdev.read_only(d)]

    def clean_up_fenced(self, leftover: FencedAttachment) -> None:
        """Detach this instance's fenced loop devices of the volume, then drop the record.

        Raises :class:`BackendError` while a device is still mounted.
        """
        self._dataset_of(leftover.blockdevice_id)
        path = self._fenced_path(leftover.blockdevice_id, self.instance_id)
        with self._locked(leftover.blockdevice_id):
            record = self._read_fenced(path)
            if record is None:
                return
            image = self._image(leftover.blockdevice_id)
            for device in self._fenced_devices(leftover.blockdevice_id, record):
                loopdev.detach(device, image)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
