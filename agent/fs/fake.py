"""
An in-memory :class:`~agent.fs.interface.Filesystems` over a fake SAN.

Which volumes hold a filesystem, and their files, live in the shared
:class:`~agent.backends.fake.FakeStorage`, keyed by blockdevice id (the id
behind a ``/dev/fake/<id>`` path), so they survive a detach and a re-attach on
another node. What is mounted where is per node: each node has its own
:class:`FakeFilesystems`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import TypeVar

from attrs import define, field

from agent.backends.fake import FakeStorage, blockdevice_id_for
from agent.fs.interface import (
    DEFAULT_FILESYSTEM,
    FilesystemError,
    FilesystemExists,
    FilesystemInfo,
    Mount,
)

T = TypeVar("T")
KINDS = ("ext4", "xfs")


@define
class FakeFilesystems:
    """
    Filesystem operations of one node, on the devices of a :class:`FakeStorage`.

    With ``instance_id`` set, only devices attached to that instance exist on
    this node (as for a real node); without it, any attached volume's device does.
    ``write_file`` and ``read_file`` give tests access to a mounted volume's data.
    A filesystem spans its volume's size when made and when grown; writes
    into a frozen filesystem fail (a real one would block), and so do reads
    and writes of a filesystem shut down (until it is unmounted), or of a
    device fenced away from this node.
    """

    storage: FakeStorage
    instance_id: str | None = None
    _mounts: dict[str, str] = field(factory=dict)
    _frozen: set[str] = field(factory=set)
    _shut_down: set[str] = field(factory=set)
    _read_only: set[str] = field(factory=set)
    _bound: dict[str, str] = field(factory=dict)

    def _volume_of(self, device: str) -> str:
        blockdevice_id = blockdevice_id_for(device)
        if blockdevice_id is None or not self.storage.device_present(device, self.instance_id):
            raise FilesystemError(f"Device {device} does not exist on this node.")
        return blockdevice_id

    def has_filesystem(self, device: str) -> bool:
        """Whether ``device`` holds a filesystem."""
        with self.storage.lock:
            return self._volume_of(device) in self.storage.filesystems

    def make_filesystem(self, device: str, filesystem: str = DEFAULT_FILESYSTEM) -> None:
        """Format ``device`` as ``filesystem``, unless it already has a filesystem."""
        with self.storage.lock:
            volume = self._volume_of(device)
            if filesystem not in KINDS:
                raise FilesystemError(f"Cannot make a {filesystem!r} filesystem.")
            if volume in self.storage.filesystems:
                raise FilesystemExists(f"Device {device} already has a filesystem; not formatting.")
            self.storage.filesystems.add(volume)
            self.storage.geometry[volume] = (filesystem, self.storage.volumes[volume].size)
            self.storage.files[volume] = {}

    def mount(self, device: str, path: str, read_only: bool = False) -> None:
        """Mount ``device`` at ``path``; idempotent for the same device and path."""
        path = posixpath.normpath(path)
        with self.storage.lock:
            if not read_only and self.storage.read_only_device(device, self.instance_id):
                raise FilesystemError(
                    f"Cannot mount {device} read-write at {path}: the device is read-only."
                )
            current = self._mounts.get(path)
            if current == device:
                return
            if current is not None:
                raise FilesystemError(
                    f"Cannot mount {device} at {path}: {current} is mounted there."
                )
            if self._volume_of(device) not in self.storage.filesystems:
                raise FilesystemError(f"Cannot mount {device} at {path}: no filesystem on it.")
            self._mounts[path] = device
            if read_only:
                self._read_only.add(path)

    def unmount(self, path: str, lazy: bool = False) -> None:
        """Unmount whatever is mounted at ``path``; nothing if nothing is (never busy here)."""
        with self.storage.lock:
            path = posixpath.normpath(path)
            if path in self._frozen:
                raise FilesystemError(f"{path} is frozen; thaw it before unmounting.")
            self._mounts.pop(path, None)
            self._shut_down.discard(path)
            self._read_only.discard(path)

    def shutdown(self, path: str) -> None:
        """Shut down the filesystem at ``path``: its reads and writes fail from now on."""
        with self.storage.lock:
            self._shut_down.add(self._mounted_path(path))

    def is_shut_down(self, path: str) -> bool:
        """Whether the filesystem at ``path`` was shut down (and is still mounted)."""
        with self.storage.lock:
            return posixpath.normpath(path) in self._shut_down

    def bind_device(self, device: str, target: str) -> None:
        """Bind-mount the device node ``device`` onto ``target`` (a test's CSI block publish)."""
        with self.storage.lock:
            self._bound[posixpath.normpath(target)] = device

    def unbind_device(self, target: str) -> None:
        """Undo :meth:`bind_device` at ``target`` (nothing if nothing is bound there)."""
        with self.storage.lock:
            self._bound.pop(posixpath.normpath(target), None)

    def device_bound_at(self, device: str) -> list[str]:
        """Where ``device`` is bound by :meth:`bind_device`, sorted."""
        with self.storage.lock:
            return sorted(t for t, d in self._bound.items() if d == device)

    def mounts(self) -> list[Mount]:
        """Every mount on this node, ordered by path."""
        with self.storage.lock:
            return [
                Mount(device=d, path=p, read_only=p in self._read_only)
                for p, d in sorted(self._mounts.items())
            ]

    # -- sizes, growth, freezing ----------------------------------------------

    def filesystem_info(self, device: str) -> FilesystemInfo | None:
        """The filesystem's kind and size, ``None`` without one."""
        with self.storage.lock:
            volume = self._volume_of(device)
            if volume not in self.storage.filesystems:
                return None
            default = (DEFAULT_FILESYSTEM, self.storage.volumes[volume].size)
            kind, size = self.storage.geometry.get(volume, default)
            return FilesystemInfo(kind=kind, size=size)

    def grow_filesystem(self, device: str) -> None:
        """Make the filesystem span its volume (xfs: only while mounted)."""
        with self.storage.lock:
            info = self.filesystem_info(device)
            if info is None:
                raise FilesystemError(f"{device} holds no filesystem to grow.")
            if info.kind == "xfs" and device not in self._mounts.values():
                raise FilesystemError(f"The xfs filesystem on {device} grows only while mounted.")
            volume = self._volume_of(device)
            self.storage.geometry[volume] = (info.kind, self.storage.volumes[volume].size)

    def _mounted_path(self, path: str) -> str:
        path = posixpath.normpath(path)
        if path not in self._mounts:
            raise FilesystemError(f"Nothing is mounted at {path}.")
        return path

    def freeze(self, path: str) -> None:
        """Freeze the filesystem at ``path``: writes fail until it is thawed."""
        with self.storage.lock:
            path = self._mounted_path(path)
            if path in self._frozen:
                raise FilesystemError(f"{path} is frozen already.")
            self._frozen.add(path)

    def thaw(self, path: str) -> None:
        """Thaw the filesystem at ``path``; nothing if it is not frozen."""
        with self.storage.lock:
            self._frozen.discard(self._mounted_path(path))

    def is_frozen(self, path: str) -> bool:
        """Whether the filesystem at ``path`` is frozen."""
        with self.storage.lock:
            return self._mounted_path(path) in self._frozen

    def while_frozen(self, path: str, action: Callable[[], T]) -> T:
        """Run ``action`` with ``path`` frozen; thawed whatever happens."""
        self.freeze(path)
        try:
            return action()
        finally:
            self.thaw(path)

    def _locate(self, path: str) -> tuple[dict[str, bytes], str]:
        path = posixpath.normpath(path)
        for mount_point, device in self._mounts.items():
            if path.startswith(mount_point + "/"):
                if mount_point in self._shut_down:
                    raise FilesystemError(f"{path}: Input/output error (shut down)")
                files = self.storage.files.setdefault(self._volume_of(device), {})
                return files, path[len(mount_point) + 1 :]
        raise FilesystemError(f"{path} is not inside a mounted fake volume.")

    def write_file(self, path: str, data: bytes) -> None:
        """Write ``data`` to the file ``path`` inside a mounted volume (not frozen)."""
        with self.storage.lock:
            frozen = [p for p in self._frozen if posixpath.normpath(path).startswith(p + "/")]
            if frozen:
                raise FilesystemError(f"{frozen[0]} is frozen; the write would block.")
            norm = posixpath.normpath(path)
            if any(norm.startswith(p + "/") for p in self._read_only):
                raise FilesystemError(f"{path}: Read-only file system (EROFS)")
            files, name = self._locate(path)
            files[name] = data

    def read_file(self, path: str) -> bytes:
        """The content of the file ``path`` inside a mounted volume."""
        with self.storage.lock:
            files, name = self._locate(path)
            if name not in files:
                raise FilesystemError(f"No file {path}.")
            return files[name]
