"""
The filesystem seam: make filesystems and mount them.

The real implementation runs ``mkfs.ext4`` (or ``mkfs.xfs``), ``blkid``,
``mount`` and ``umount``; a fake keeps the same facts in memory. Both pass
``tests/agent/fs/conformance.py`` (and ``tests/agent/fs/growth_conformance.py``
for sizes, growth and freezing). Calls are blocking.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from attrs import frozen


class FilesystemError(Exception):
    """A filesystem operation failed; the message says what and why."""


class FilesystemBusy(FilesystemError):
    """An unmount failed because processes use the mount; the message names them if it can."""

    reason = "busy"


class DeviceInUse(FilesystemError):
    """A device node is bind-mounted somewhere (a CSI block volume a pod uses), so its volume
    is not detached; the message names where. Retried: the pod's unpublish lets it go."""

    reason = "device_in_use"


class FilesystemExists(FilesystemError):
    """The device already holds a filesystem, so it is never formatted."""


T = TypeVar("T")

DEFAULT_FILESYSTEM = "ext4"
"""The filesystem made on a volume unless its dataset asks for another."""


@frozen
class FilesystemInfo:
    """A device's filesystem: its ``kind`` (``"ext4"``, ``"xfs"``) and the ``size`` it spans."""

    kind: str
    size: int


@frozen
class Mount:
    """One mounted filesystem: ``device`` is mounted at ``path`` (``read_only``: ``ro``)."""

    device: str
    path: str
    read_only: bool = False


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

    def make_filesystem(self, device: str, filesystem: str = DEFAULT_FILESYSTEM) -> None:
        """Format ``device`` as ``filesystem`` (``"ext4"`` or ``"xfs"``), unless it has one."""
        ...

    def mount(self, device: str, path: str, read_only: bool = False) -> None:
        """Mount ``device`` at ``path``; ``read_only``: every write fails with ``EROFS``.

        A read-only mount replays no journal (ext4 ``noload``, xfs
        ``norecovery``), so it writes nothing to a device shared by readers.
        A read-write mount of a read-only device fails.
        """
        ...

    def unmount(self, path: str, lazy: bool = False) -> None:
        """Unmount whatever is mounted at ``path``.

        With ``lazy``, a mount that processes still use is detached from the
        tree at once (``umount -l``) instead of raising :class:`FilesystemBusy`.
        """
        ...

    def shutdown(self, path: str) -> None:
        """Shut down the filesystem mounted at ``path`` at once (``FS_IOC_SHUTDOWN``).

        Every later read or write through any mount of it fails with ``EIO``,
        and nothing more reaches its device (what was ``fsync``'d is there).
        Shutting it down again does nothing. Raises :class:`FilesystemError`
        if nothing is mounted there or the filesystem cannot be shut down.
        """
        ...

    def mounts(self) -> list[Mount]:
        """Every mount of a block device currently on this node."""
        ...

    def device_bound_at(self, device: str) -> list[str]:
        """Where the block device node ``device`` is itself bind-mounted (onto a file: a CSI
        block volume published to a pod), sorted; ``[]`` when nowhere or when it is not a
        device (any more). A volume is never detached while its device is bound somewhere."""
        ...

    # -- sizes, growth, freezing ----------------------------------------------

    def filesystem_info(self, device: str) -> FilesystemInfo | None:
        """The kind and size of ``device``'s filesystem, ``None`` if it holds none known.

        Cheap (a superblock read, or an ioctl on a mounted filesystem), so the
        agent asks on every pass; the size is current even while mounted.
        """
        ...

    def grow_filesystem(self, device: str) -> None:
        """Grow ``device``'s filesystem to fill the device, keeping its data.

        ext4 grows mounted or not (online needs ``CAP_SYS_RESOURCE``); xfs
        grows only mounted (raises :class:`FilesystemError` otherwise).
        Growing a filesystem that already fills its device does nothing.
        """
        ...

    def freeze(self, path: str) -> None:
        """Freeze the filesystem mounted at ``path`` (``FIFREEZE``): writes block until thawed."""
        ...

    def thaw(self, path: str) -> None:
        """Thaw the filesystem mounted at ``path`` (``FITHAW``); nothing if it is not frozen."""
        ...

    def is_frozen(self, path: str) -> bool:
        """Whether the filesystem mounted at ``path`` is frozen."""
        ...

    def while_frozen(self, path: str, action: Callable[[], T]) -> T:
        """Run ``action`` with the filesystem at ``path`` frozen, and always thaw it.

        The filesystem is thawed when ``action`` returns or raises, and also
        if the calling process dies meanwhile (the real implementation holds
        the freeze in a child process that thaws when its parent goes or
        after a timeout; a timeout raises :class:`FilesystemError` after the
        action, whose result then may not be consistent).
        """
        ...
