"""
The conformance suite every :class:`~agent.fs.interface.Filesystems` passes.

Subclass :class:`FilesystemsConformance` in a ``Test...`` class that provides
the fixtures ``fs`` (the implementation), ``new_device`` (a callable returning
the path of a fresh, empty block device) and ``mount_root`` (a directory for
mount points), and overrides :meth:`~FilesystemsConformance.write_marker` and
:meth:`~FilesystemsConformance.read_marker`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from agent.fs.interface import FilesystemError, FilesystemExists, Filesystems, Mount

NewDevice = Callable[[], str]


class FilesystemsConformance:
    """Tests of the ``Filesystems`` contract."""

    def write_marker(self, fs: Filesystems, path: str, data: bytes) -> None:
        """Write ``data`` to the file ``path`` inside a mounted filesystem."""
        raise NotImplementedError

    def read_marker(self, fs: Filesystems, path: str) -> bytes:
        """Read the file ``path`` inside a mounted filesystem."""
        raise NotImplementedError

    def bind_device(self, fs: Filesystems, device: str, target: str) -> None:
        """Bind-mount the device node ``device`` onto the file ``target``."""
        raise NotImplementedError

    def unbind_device(self, fs: Filesystems, target: str) -> None:
        """Undo :meth:`bind_device`."""
        raise NotImplementedError

    def test_device_bound_at(self, fs: Filesystems, new_device: NewDevice, mount_root: str) -> None:
        """A device node bind-mounted onto a file is found there, and no longer once unbound;
        a device mounted as a filesystem is not a bind of its node."""
        device, other = new_device(), new_device()
        fs.make_filesystem(other)
        fs.mount(other, os.path.join(mount_root, "fs"))
        target = os.path.join(mount_root, "block-target")
        assert fs.device_bound_at(device) == [] and fs.device_bound_at(other) == []
        self.bind_device(fs, device, target)
        try:
            assert fs.device_bound_at(device) == [target]
            assert fs.device_bound_at(other) == []
        finally:
            self.unbind_device(fs, target)
            fs.unmount(os.path.join(mount_root, "fs"))
        assert fs.device_bound_at(device) == []

    @pytest.fixture
    def formatted(self, fs: Filesystems, new_device: NewDevice) -> str:
        """A fresh device holding a filesystem."""
        device = new_device()
        fs.make_filesystem(device)
        return device

    def test_provides_interface(self, fs: Filesystems) -> None:
        """The implementation satisfies the protocol."""
        assert isinstance(fs, Filesystems)

    def test_fresh_device_has_no_filesystem(self, fs: Filesystems, new_device: NewDevice) -> None:
        """An empty device holds no filesystem."""
        assert not fs.has_filesystem(new_device())

    def test_make_filesystem(self, fs: Filesystems, formatted: str) -> None:
        """After make_filesystem the device holds a filesystem."""
        assert fs.has_filesystem(formatted)

    def test_never_formats_twice(self, fs: Filesystems, formatted: str, mount_root: str) -> None:
        """make_filesystem on a device with a filesystem is refused and keeps the data."""
        path = os.path.join(mount_root, "m")
        fs.mount(formatted, path)
        self.write_marker(fs, os.path.join(path, "marker"), b"keep me")
        fs.unmount(path)
        with pytest.raises(FilesystemExists):
            fs.make_filesystem(formatted)
        fs.mount(formatted, path)
        assert self.read_marker(fs, os.path.join(path, "marker")) == b"keep me"
        fs.unmount(path)

    def test_mount_creates_mount_point(
        self, fs: Filesystems, formatted: str, mount_root: str
    ) -> None:
        """Mounting creates missing directories and the mount is listed."""
        path = os.path.join(mount_root, "deep", "er")
        fs.mount(formatted, path)
        assert Mount(device=formatted, path=path) in fs.mounts()
        fs.unmount(path)

    def test_mount_idempotent(self, fs: Filesystems, formatted: str, mount_root: str) -> None:
        """Mounting the same device at the same path twice mounts it once."""
        path = os.path.join(mount_root, "m")
        fs.mount(formatted, path)
        fs.mount(formatted, path)
        assert [m for m in fs.mounts() if m.path == path] == [Mount(formatted, path)]
        fs.unmount(path)
        assert [m for m in fs.mounts() if m.path == path] == []

    def test_mount_occupied(
        self, fs: Filesystems, formatted: str, new_device: NewDevice, mount_root: str
    ) -> None:
        """Mounting a second device where another is mounted is refused."""
        second = new_device()
        fs.make_filesystem(second)
        path = os.path.join(mount_root, "m")
        fs.mount(formatted, path)
        with pytest.raises(FilesystemError):
            fs.mount(second, path)
        assert [m for m in fs.mounts() if m.path == path] == [Mount(formatted, path)]
        fs.unmount(path)

    def test_mount_without_filesystem(
        self, fs: Filesystems, new_device: NewDevice, mount_root: str
    ) -> None:
        """A device without a filesystem cannot be mounted."""
        device = new_device()
        path = os.path.join(mount_root, "m")
        with pytest.raises(FilesystemError):
            fs.mount(device, path)
        assert [m for m in fs.mounts() if m.device == device] == []

    def test_two_mounts_listed(
        self, fs: Filesystems, formatted: str, new_device: NewDevice, mount_root: str
    ) -> None:
        """Each mounted device is listed at its own path."""
        second = new_device()
        fs.make_filesystem(second)
        one, two = os.path.join(mount_root, "one"), os.path.join(mount_root, "two")
        fs.mount(formatted, one)
        fs.mount(second, two)
        mine = [m for m in fs.mounts() if m.path.startswith(mount_root)]
        assert sorted(mine, key=lambda m: m.path) == [Mount(formatted, one), Mount(second, two)]
        fs.unmount(one)
        fs.unmount(two)

    def test_unmount_not_mounted(self, fs: Filesystems, mount_root: str) -> None:
        """Unmounting a path with nothing mounted (or that does not exist) does nothing."""
        before = fs.mounts()
        fs.unmount(mount_root)
        fs.unmount(os.path.join(mount_root, "missing"))
        assert fs.mounts() == before

    def test_unmounted_path_is_not_writable(
        self, fs: Filesystems, formatted: str, mount_root: str
    ) -> None:
        """After an unmount, a write at the old mount point fails instead of landing elsewhere."""
        path = os.path.join(mount_root, "gone")
        fs.mount(formatted, path)
        self.write_marker(fs, os.path.join(path, "before"), b"data")
        fs.unmount(path)
        with pytest.raises((OSError, FilesystemError)):
            self.write_marker(fs, os.path.join(path, "after"), b"lost")
        fs.mount(formatted, path)
        assert self.read_marker(fs, os.path.join(path, "before")) == b"data"
        fs.unmount(path)

    def test_marker_survives_remount(
        self, fs: Filesystems, formatted: str, mount_root: str
    ) -> None:
        """A file written before unmounting is there after mounting again elsewhere."""
        first, second = os.path.join(mount_root, "a"), os.path.join(mount_root, "b")
        fs.mount(formatted, first)
        self.write_marker(fs, os.path.join(first, "marker"), b"hello")
        fs.unmount(first)
        assert [m for m in fs.mounts() if m.device == formatted] == []
        fs.mount(formatted, second)
        assert self.read_marker(fs, os.path.join(second, "marker")) == b"hello"
        fs.unmount(second)

    def test_read_only_mount_refuses_writes(
        self, fs: Filesystems, formatted: str, mount_root: str
    ) -> None:
        """A read-only mount is listed read-only, reads what was written, refuses writes."""
        first, second = os.path.join(mount_root, "rw"), os.path.join(mount_root, "ro")
        fs.mount(formatted, first)
        self.write_marker(fs, os.path.join(first, "marker"), b"kept")
        fs.unmount(first)
        fs.mount(formatted, second, read_only=True)
        assert [m.read_only for m in fs.mounts() if m.device == formatted] == [True]
        assert self.read_marker(fs, os.path.join(second, "marker")) == b"kept"
        with pytest.raises((OSError, FilesystemError), match="[Rr]ead-only"):
            self.write_marker(fs, os.path.join(second, "new"), b"refused")
        fs.unmount(second)

    # -- shutdown (issue 11: self-fencing) --------------------------------------

    def test_shutdown_stops_writes(self, fs: Filesystems, formatted: str, mount_root: str) -> None:
        """After a shutdown every write fails; a second shutdown does nothing; it unmounts."""
        path = os.path.join(mount_root, "shut")
        fs.mount(formatted, path)
        self.write_marker(fs, os.path.join(path, "before"), b"data")
        fs.shutdown(path)
        fs.shutdown(path)
        with pytest.raises((OSError, FilesystemError)):
            self.write_marker(fs, os.path.join(path, "after"), b"lost")
        fs.unmount(path, lazy=True)
        assert [m for m in fs.mounts() if m.device == formatted] == []

    def test_remount_after_shutdown(
        self, fs: Filesystems, formatted: str, mount_root: str
    ) -> None:
        """A filesystem shut down and unmounted mounts again, writable."""
        path = os.path.join(mount_root, "again")
        fs.mount(formatted, path)
        fs.shutdown(path)
        fs.unmount(path)
        fs.mount(formatted, path)
        self.write_marker(fs, os.path.join(path, "after"), b"fresh")
        assert self.read_marker(fs, os.path.join(path, "after")) == b"fresh"
        fs.unmount(path)

    def test_shutdown_not_mounted(self, fs: Filesystems, mount_root: str) -> None:
        """Shutting down a path where nothing is mounted raises FilesystemError."""
        with pytest.raises(FilesystemError):
            fs.shutdown(os.path.join(mount_root, "nothing"))
