"""
The filesystem seam: make filesystems and mount them.

The real implementation runs ``mkfs.ext4``, ``blkid``, ``mount`` and
``umount``; a fake keeps the same facts in memory. Both pass
``tests/agent/fs/conformance.py``. Calls are blocking.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from attrs import frozen


class FilesystemError(Exception):
    """A filesystem operation failed; the message says what and why."""


class FilesystemBusy(FilesystemError):
    """An unmount failed because processes use the mount; the message names them if it can."""

    reason = "busy"


class FilesystemExists(FilesystemError):
    """The device already holds a filesystem, so it is never formatted."""


@frozen
class Mount:
    """One mounted filesystem: ``device`` is mounted at ``path``."""

    device: str
    path: str


@runtime_checkable
class Filesystems(Protocol):
    """
    Filesystem operations on block devices.

    ``make_filesystem`` refuses (raises :class:`FilesystemExists`) a device
    that already has any filesystem: data is never formatted away.
    ``mount`` creates the mount point if needed and is idempotent for the same
    device and path; ``unmount`` of a path that is not mounted does nothing.
    After ``unmount`` nothing can be written at the old mount point (the real
    implementation removes the empty directory), so a process still writing
    there fails instead of filling the node's own disk.
    """

    def has_filesystem(self, device: str) -> bool:
        """Whether ``device`` holds a recognisable filesystem."""
        ...

    def make_filesystem(self, device: str) -> None:
        """Format ``device`` as ext4, unless it already has a filesystem."""
        ...

    def mount(self, device: str, path: str) -> None:
        """Mount ``device`` at ``path``."""
        ...

    def unmount(self, path: str) -> None:
        """Unmount whatever is mounted at ``path``."""
        ...

    def mounts(self) -> list[Mount]:
        """Every mount of a block device currently on this node."""
        ...
