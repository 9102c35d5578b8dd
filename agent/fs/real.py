"""
Real filesystem operations: ``blkid``, ``mkfs.ext4``, ``mount`` and ``umount``.

Mounts are read from ``/proc/self/mountinfo``. Commands run with stdin
closed (so a tool that would ask a question fails instead of waiting) and
failures raise :class:`~agent.fs.interface.FilesystemError` quoting stderr.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence

from attrs import frozen

from agent.commands import Completed, check_command, command_failed, run_command
from agent.fs.holders import describe_holders
from agent.fs.interface import FilesystemBusy, FilesystemError, FilesystemExists, Mount

MOUNTINFO = "/proc/self/mountinfo"
BLKID_NOTHING_FOUND = 2
_OCTAL = re.compile(r"\\([0-7]{3})")


def _run(argv: Sequence[str]) -> Completed[str]:
    """Run ``argv``; never raises on exit codes."""
    return run_command(argv, FilesystemError)


def _failure(argv: Sequence[str], done: Completed[str]) -> Exception:
    return command_failed(argv, done, FilesystemError)


def _check(argv: Sequence[str]) -> None:
    check_command(argv, FilesystemError)


def unescape(field: str) -> str:
    """Decode the octal escapes (``\\040`` for a space) of a mountinfo field."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """The block-device mounts (source under ``/dev/``) in a mountinfo text."""
    found = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
            source = unescape(fields[separator + 2])
            path = unescape(fields[4])
        except (ValueError, IndexError):
            continue
        if source.startswith("/dev/"):
            found.append(Mount(device=source, path=path))
    return found


def _same_device(one: str, two: str) -> bool:
    if os.path.realpath(one) == os.path.realpath(two):
        return True
    try:
        return os.stat(one).st_rdev == os.stat(two).st_rdev != 0
    except OSError:
        return False


def make_mount_point(path: str) -> None:
    """Create the directory ``path`` (and its parents) for a mount, with mode 000.

    Until the filesystem is mounted over it, no one but root can write into it;
    once mounted, the mounted filesystem's own permissions apply.
    """
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.isdir(path):
            os.mkdir(path, 0o000)
        elif not os.path.ismount(path) and not os.listdir(path):
            os.chmod(path, 0o000)
    except OSError as e:
        raise FilesystemError(f"Cannot create mount point {path}: {e}") from e


def remove_mount_point(path: str) -> None:
    """Remove ``path`` if it is an empty directory with nothing mounted on it.

    After an unmount, writes to the old path would land on the node's own disk
    and vanish from the dataset, so the directory goes. Never recursive: a
    directory holding files (or a mount) is left alone.
    """
    if not os.path.isdir(path) or os.path.ismount(path):
        return
    with contextlib.suppress(OSError):
        os.rmdir(path)


@frozen
class RealFilesystems:
    """
    Filesystem operations on this machine's block devices.

    With ``under`` set, :meth:`mounts` reports only mounts at or below that
    directory (agents sharing a machine each see their own).
    """

    under: str | None = None

    def has_filesystem(self, device: str) -> bool:
        """Whether ``blkid`` finds a filesystem (or any other signature) on ``device``.

        Raises :class:`FilesystemError` if ``device`` does not exist (``blkid``
        would report it as empty).
        """
        if not os.path.exists(device):
            raise FilesystemError(f"Device {device} does not exist on this node.")
        argv = ["blkid", "-p", "-o", "value", "-s", "TYPE", device]
        done = _run(argv)
        if done.returncode == BLKID_NOTHING_FOUND:
            return False
        if done.returncode != 0:
            raise _failure(argv, done)
        return True

    def make_filesystem(self, device: str) -> None:
        """Format ``device`` as ext4 unless it has a filesystem; never forced."""
        if self.has_filesystem(device):
            raise FilesystemExists(f"{device} already has a filesystem; it is never formatted.")
        _check(["mkfs.ext4", "-q", device])

    def _mounted_at(self, path: str) -> Mount | None:
        for mount in reversed(self._all_mounts()):
            if mount.path == path:
                return mount
        return None

    def mount(self, device: str, path: str) -> None:
        """Mount ``device`` at ``path`` (created if needed); idempotent for the same pair."""
        path = os.path.realpath(path)
        current = self._mounted_at(path)
        if current is not None:
            if _same_device(current.device, device):
                return
            raise FilesystemError(
                f"Cannot mount {device} at {path}: {current.device} is mounted there."
            )
        make_mount_point(path)
        _check(["mount", device, path])

    def unmount(self, path: str) -> None:
        """Unmount whatever is mounted at ``path``, then remove the empty mount point.

        Nothing is unmounted if nothing is mounted there (an empty mount point
        left behind is removed all the same). A busy mount raises
        :class:`FilesystemBusy`, naming the processes that hold it when
        ``/proc`` shows them.
        """
        path = os.path.realpath(path)
        if self._mounted_at(path) is not None:
            argv = ["umount", path]
            done = _run(argv)
            if done.returncode != 0:
                error = _failure(argv, done)
                if "busy" not in done.stderr:
                    raise error
                held = describe_holders(path)
                raise FilesystemBusy(f"{error}; {held}" if held else str(error))
        remove_mount_point(path)

    def _all_mounts(self) -> list[Mount]:
        try:
            with open(MOUNTINFO) as f:
                return parse_mountinfo(f.read())
        except OSError as e:
            raise FilesystemError(f"Cannot read {MOUNTINFO}: {e}") from e

    def mounts(self) -> list[Mount]:
        """Every block-device mount on this machine (below ``under``, if set)."""
        found = self._all_mounts()
        if self.under is None:
            return found
        root = os.path.realpath(self.under)
        return [m for m in found if m.path == root or m.path.startswith(root.rstrip("/") + "/")]
