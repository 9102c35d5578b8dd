"""
Whether a mount path the control service reports may be handed to a container.

The control service only relays what agents report, and a forged report could
name any path (``/etc``). So before a path reaches the container runtime the
plugin (and later the CSI node service) checks it on its own node, against
sources it trusts:

- :func:`check_reported_path` (pure): the path is exactly where this node's
  agent mounts the dataset, ``<mount root>/<dataset id>``, with the mount root
  read from the local agent's state directory (never from the control
  service), normalised, with no ``..``.
- :func:`check_mounted` (pure, over a parsed mount table): the kernel has a
  filesystem mounted at that path whose source is a block device, and, when
  the device is known, that device.
- :class:`MountGuard` does the I/O of both (the mount root file, ``realpath``
  against symlink escapes, ``/proc/self/mountinfo``, ``stat``); its
  :meth:`~MountGuard.verify` blocks, so callers run it in a thread.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable, Iterable
from uuid import UUID

from attrs import frozen

from agent.fs.real import MOUNTINFO, unescape
from control.errors import ShoalError


class UntrustedMount(ShoalError):
    """A reported mount path that this node's own checks refuse."""


@frozen
class MountEntry:
    """One line of a mountinfo table: where (``path``) what (``source``) is mounted."""

    path: str
    source: str
    fstype: str = ""


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Every mount of a mountinfo text, in the kernel's order (later mounts cover earlier)."""
    found = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
            entry = MountEntry(
                path=unescape(fields[4]),
                source=unescape(fields[separator + 2]),
                fstype=unescape(fields[separator + 1]),
            )
        except (ValueError, IndexError):
            continue
        found.append(entry)
    return found


def expected_path(mount_root: str, dataset_id: UUID) -> str:
    """Where this node's agent mounts ``dataset_id`` (as ``agent.discovery.mount_point``)."""
    return posixpath.join(mount_root, str(dataset_id))


def check_reported_path(mount_root: str, dataset_id: UUID, path: str) -> str:
    """Return ``path`` if it is exactly ``<mount_root>/<dataset_id>``; else refuse (pure)."""
    root = posixpath.normpath(mount_root)
    if not mount_root.startswith("/") or root == "/":
        raise UntrustedMount(
            f"This node's mount root {mount_root!r} is not an absolute directory below /; "
            "check the agent's --mount-root."
        )
    expected = expected_path(root, dataset_id)
    if path != expected:
        raise UntrustedMount(
            f"Refusing the mount path {path[:200]!r} reported for dataset {dataset_id}: this "
            f"node's agent mounts it at {expected!r}. The report did not come from this node's "
            "agent; ask an operator to check the control service's state for this node."
        )
    return path


def check_mounted(
    path: str,
    entries: Iterable[MountEntry],
    is_block_device: Callable[[str], bool],
    device: str | None = None,
) -> None:
    """Refuse unless the topmost mount at ``path`` is of a block device (``device`` if given)."""
    top = None
    for entry in entries:
        if entry.path == path:
            top = entry
    if top is None:
        raise UntrustedMount(
            f"Refusing {path!r}: nothing is mounted there on this node, so the volume is not "
            "ready here yet. Retry once the agent reports it mounted."
        )
    if not is_block_device(top.source):
        raise UntrustedMount(
            f"Refusing {path!r}: it is a mount of {top.source!r} ({top.fstype or 'unknown'}), "
            "not of a block device, so it is not a Shoal volume."
        )
    if device is not None and top.source != device:
        raise UntrustedMount(
            f"Refusing {path!r}: it is a mount of {top.source!r}, not of the volume's device "
            f"{device!r}."
        )


def is_block_device(path: str) -> bool:
    """Whether ``path`` names a block device on this machine."""
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def _read_mountinfo(path: str = MOUNTINFO) -> list[MountEntry]:
    with open(path) as f:
        return parse_mountinfo(f.read())


class MountGuard:
    """
    This node's checks of a reported mount path; see the module docstring.

    ``mount_root`` returns this node's mount root (from the local agent's
    state directory) or raises a :class:`ShoalError` explaining why it is not
    known. ``check_kernel=False`` skips the mount-table checks, for the
    directory-mounting stand-in agent of the plugin's runtime tests only.
    """

    def __init__(
        self,
        mount_root: Callable[[], str],
        read_mounts: Callable[[], list[MountEntry]] = _read_mountinfo,
        block_device: Callable[[str], bool] = is_block_device,
        realpath: Callable[[str], str] = os.path.realpath,
        check_kernel: bool = True,
    ) -> None:
        self._mount_root = mount_root
        self._read_mounts = read_mounts
        self._block_device = block_device
        self._realpath = realpath
        self.check_kernel = check_kernel

    def trusted(self, dataset_id: UUID, path: str) -> bool:
        """Whether ``path`` is where this node mounts ``dataset_id`` (pure check only)."""
        try:
            check_reported_path(self._mount_root(), dataset_id, path)
        except ShoalError:
            return False
        return True

    def verify(self, dataset_id: UUID, path: str, device: str | None = None) -> str:
        """Return ``path`` once every check passes; raise :class:`UntrustedMount` (blocking)."""
        check_reported_path(self._mount_root(), dataset_id, path)
        if not self.check_kernel:
            return path
        real = self._realpath(path)
        if real != path:
            raise UntrustedMount(
                f"Refusing {path!r}: it resolves to {real!r} through a symbolic link."
            )
        check_mounted(path, self._read_mounts(), self._block_device, device)
        return path
