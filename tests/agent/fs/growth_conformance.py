"""
The sizes, growth and freezing part of the ``Filesystems`` conformance suite.

Subclass :class:`GrowthConformance` with the fixtures of
:class:`tests.agent.fs.conformance.FilesystemsConformance` (``fs``,
``mount_root``, the marker hooks) plus ``sized_device`` (a callable
``sized_device(size)`` returning a fresh empty device of ``size`` bytes) and
``grow_device`` (``grow_device(device, size)`` grows the device under the
filesystem, as a backend's resize does). Set ``online_ext4_grow`` to
``False`` (with ``online_ext4_reason``) where a mounted ext4 cannot grow.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from agent.fs.interface import FilesystemError, Filesystems

MiB = 2**20
SMALL = 320 * MiB
"""Devices made here: mkfs.xfs wants at least 300 MiB."""
SLACK = 64 * MiB
"""A filesystem fills its device when it spans all but this (metadata, rounding)."""
SizedDevice = Callable[[int], str]
GrowDevice = Callable[[str, int], None]
KINDS = ("ext4", "xfs")


def fills(size: int, device_size: int) -> bool:
    """Whether a filesystem of ``size`` fills a device of ``device_size``."""
    return device_size - SLACK <= size <= device_size


class GrowthConformance:
    """Tests of filesystem kinds, sizes, growth and freezing."""

    online_ext4_grow = True
    online_ext4_reason = ""

    def write_marker(self, fs: Filesystems, path: str, data: bytes) -> None:
        """Write ``data`` to the file ``path`` inside a mounted filesystem."""
        raise NotImplementedError

    def read_marker(self, fs: Filesystems, path: str) -> bytes:
        """Read the file ``path`` inside a mounted filesystem."""
        raise NotImplementedError

    @pytest.mark.parametrize("kind", KINDS)
    def test_make_kind(self, fs: Filesystems, sized_device: SizedDevice, kind: str) -> None:
        """A filesystem of each kind is made, recognised and fills its device."""
        device = sized_device(SMALL)
        assert fs.filesystem_info(device) is None
        fs.make_filesystem(device, kind)
        info = fs.filesystem_info(device)
        assert info is not None and info.kind == kind
        assert fills(info.size, SMALL)

    def test_unknown_kind_refused(self, fs: Filesystems, sized_device: SizedDevice) -> None:
        """Asking for a filesystem the agent cannot make is refused, and nothing is made."""
        device = sized_device(SMALL)
        with pytest.raises(FilesystemError):
            fs.make_filesystem(device, "fat")
        assert not fs.has_filesystem(device)

    @pytest.mark.parametrize("kind", KINDS)
    def test_grow_mounted(
        self,
        fs: Filesystems,
        sized_device: SizedDevice,
        grow_device: GrowDevice,
        mount_root: str,
        kind: str,
    ) -> None:
        """A mounted filesystem grows online to fill its grown device, keeping its data."""
        if kind == "ext4" and not self.online_ext4_grow:
            pytest.skip(self.online_ext4_reason)
        device = sized_device(SMALL)
        fs.make_filesystem(device, kind)
        path = os.path.join(mount_root, "g")
        fs.mount(device, path)
        self.write_marker(fs, os.path.join(path, "m"), b"kept")
        grow_device(device, 2 * SMALL)
        fs.grow_filesystem(device)
        info = fs.filesystem_info(device)
        assert info is not None and fills(info.size, 2 * SMALL)
        assert self.read_marker(fs, os.path.join(path, "m")) == b"kept"
        fs.grow_filesystem(device)
        fs.unmount(path)

    def test_grow_ext4_offline(
        self, fs: Filesystems, sized_device: SizedDevice, grow_device: GrowDevice, mount_root: str
    ) -> None:
        """An unmounted ext4 grows to fill its grown device and keeps its data."""
        device = sized_device(SMALL)
        fs.make_filesystem(device, "ext4")
        path = os.path.join(mount_root, "o")
        fs.mount(device, path)
        self.write_marker(fs, os.path.join(path, "m"), b"offline")
        fs.unmount(path)
        grow_device(device, 2 * SMALL)
        info = fs.filesystem_info(device)
        assert info is not None and not fills(info.size, 2 * SMALL)
        fs.grow_filesystem(device)
        info = fs.filesystem_info(device)
        assert info is not None and fills(info.size, 2 * SMALL)
        fs.mount(device, path)
        assert self.read_marker(fs, os.path.join(path, "m")) == b"offline"
        fs.unmount(path)

    def test_xfs_grows_only_mounted(
        self, fs: Filesystems, sized_device: SizedDevice, grow_device: GrowDevice
    ) -> None:
        """Growing an unmounted xfs is refused with a message that says to mount it."""
        device = sized_device(SMALL)
        fs.make_filesystem(device, "xfs")
        grow_device(device, 2 * SMALL)
        with pytest.raises(FilesystemError, match="mount"):
            fs.grow_filesystem(device)

    @pytest.mark.parametrize("kind", KINDS)
    def test_freeze_and_thaw(
        self, fs: Filesystems, sized_device: SizedDevice, mount_root: str, kind: str
    ) -> None:
        """A frozen filesystem reports frozen until thawed; thawing twice is harmless."""
        device = sized_device(SMALL)
        fs.make_filesystem(device, kind)
        path = os.path.join(mount_root, "f")
        fs.mount(device, path)
        assert not fs.is_frozen(path)
        fs.freeze(path)
        assert fs.is_frozen(path)
        fs.thaw(path)
        fs.thaw(path)
        assert not fs.is_frozen(path)
        self.write_marker(fs, os.path.join(path, "after"), b"writable")
        fs.unmount(path)

    def test_nothing_mounted_is_never_frozen(self, fs: Filesystems, mount_root: str) -> None:
        """A mount point with nothing mounted is refused, not frozen (the filesystem holding
        it would be), and the action does not run."""
        path = os.path.join(mount_root, "empty")
        os.makedirs(path, exist_ok=True)
        ran: list[bool] = []
        with pytest.raises(FilesystemError, match="Nothing is mounted"):
            fs.while_frozen(path, lambda: ran.append(True))
        with pytest.raises(FilesystemError, match="Nothing is mounted"):
            fs.freeze(path)
        assert ran == []

    def test_while_frozen(
        self, fs: Filesystems, sized_device: SizedDevice, mount_root: str
    ) -> None:
        """The action runs frozen; afterwards the filesystem is thawed, even if it raised."""
        device = sized_device(SMALL)
        fs.make_filesystem(device, "xfs")
        path = os.path.join(mount_root, "w")
        fs.mount(device, path)
        assert fs.while_frozen(path, lambda: fs.is_frozen(path)) is True
        assert not fs.is_frozen(path)

        def fail() -> None:
            raise RuntimeError("copy failed")

        with pytest.raises(RuntimeError):
            fs.while_frozen(path, fail)
        assert not fs.is_frozen(path)
        self.write_marker(fs, os.path.join(path, "after"), b"writable")
        fs.unmount(path)
