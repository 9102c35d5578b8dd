"""
Real filesystem operations: ``blkid``, ``mkfs.ext4``/``mkfs.xfs``, ``mount`` and ``umount``.

Growth runs ``resize2fs`` or ``xfs_growfs``; freezing uses the ``FIFREEZE``
and ``FITHAW`` ioctls, held by a child process (:mod:`agent.fs.freezer`).
XFS refuses to mount a second filesystem with the UUID of one already
mounted, which a snapshot or clone of a mounted volume has: XFS is mounted
with ``nouuid``. Mounts are read from ``/proc/self/mountinfo``. Commands run with stdin
closed (so a tool that would ask a question fails instead of waiting) and
failures raise :class:`~agent.fs.interface.FilesystemError` quoting stderr.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import struct
import subprocess
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from attrs import frozen

from agent.commands import Completed, check_command, command_failed, run_command
from agent.fs import freezer, shutdown, superblock
from agent.fs.holders import describe_holders, held_exclusively
from agent.fs.interface import (
    DEFAULT_FILESYSTEM,
    FilesystemBusy,
    FilesystemError,
    FilesystemExists,
    FilesystemInfo,
    Mount,
)

T = TypeVar("T")
MKFS = {
    "ext4": ("mkfs.ext4", "-q", "-E", "lazy_itable_init=1,lazy_journal_init=1"),
    "xfs": ("mkfs.xfs", "-q"),
}
"""
How each filesystem the agent makes is made (mkfs.ext4 and mkfs.xfs discard the device).

ext4 leaves its inode tables and journal unzeroed: the kernel zeroes the
inode tables in the background after the first mount, and the journal needs
no zeroing (mkfs writes an empty journal, and with ``metadata_csum``, the
default, a stale block of another filesystem fails its checksum instead of
being replayed). Writing the journal's zeros was most of the cost of mkfs
on a network volume (rbd-fuse: 8 MiB through FUSE for a 256 MiB volume).
"""
MOUNT_OPTIONS = {"xfs": ("-o", "nouuid")}
READ_ONLY_OPTIONS = {"ext4": ("-o", "noload"), "xfs": ("-o", "norecovery")}
"""A read-only mount replays no journal: it writes nothing to the shared device."""
FREEZE_TIMEOUT = 120.0
"""Seconds a filesystem stays frozen at most, whatever the action holding it does."""
XFS_IOC_FSGEOMETRY_V1 = 0x80705864
"""``_IOR('X', 100, struct xfs_fsop_geom_v1)`` (112 bytes): a mounted XFS's geometry."""
CAP_SYS_RESOURCE = 24

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
            read_only = "ro" in fields[5].split(",")
            found.append(Mount(device=source, path=path, read_only=read_only))
    return found


def bound_device_mounts(mountinfo: str, device: str) -> list[str]:
    """The mount points of ``mountinfo`` where the device node ``device`` is bind-mounted.

    Such a mount is on the filesystem holding the device node (its ``major:minor`` is the
    node's ``st_dev``, e.g. the devtmpfs at /dev), with the node's name as its root; each
    candidate is confirmed by ``stat`` (a block device with the same ``st_rdev``).
    """
    try:
        node = os.stat(device)
    except OSError:
        return []
    if not stat.S_ISBLK(node.st_mode):
        return []
    holder = f"{os.major(node.st_dev)}:{os.minor(node.st_dev)}"
    name = os.path.basename(os.path.realpath(device))
    found = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 5 or fields[2] != holder:
            continue
        if os.path.basename(unescape(fields[3])) != name:
            continue
        path = unescape(fields[4])
        try:
            seen = os.stat(path)
        except OSError:
            continue
        if stat.S_ISBLK(seen.st_mode) and seen.st_rdev == node.st_rdev:
            found.append(path)
    return sorted(set(found))


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

    def make_filesystem(self, device: str, filesystem: str = DEFAULT_FILESYSTEM) -> None:
        """Format ``device`` as ``filesystem`` unless it has a filesystem; never forced."""
        command = MKFS.get(filesystem)
        if command is None:
            raise FilesystemError(
                f"Cannot make a {filesystem!r} filesystem; choose one of {', '.join(MKFS)}."
            )
        if self.has_filesystem(device):
            raise FilesystemExists(f"{device} already has a filesystem; it is never formatted.")
        _check([*command, device])

    def _mounted_at(self, path: str) -> Mount | None:
        for mount in reversed(self._all_mounts()):
            if mount.path == path:
                return mount
        return None

    def mount(self, device: str, path: str, read_only: bool = False) -> None:
        """Mount ``device`` at ``path`` (created if needed); idempotent for the same pair.

        ``read_only`` mounts with ``-r`` and replays no journal (ext4 ``noload``,
        xfs ``norecovery``): nothing is written to the device, which readers share.

        Refuses (:class:`FilesystemBusy`) a device whose filesystem is still in
        use though mounted nowhere here: processes hold files of a lazily
        unmounted mount (after a fence shut it down), and Linux would hand out
        that same filesystem again, shut down or about to be released.
        """
        path = os.path.realpath(path)
        current = self._mounted_at(path)
        if current is not None:
            if _same_device(current.device, device):
                return
            raise FilesystemError(
                f"Cannot mount {device} at {path}: {current.device} is mounted there."
            )
        if held_exclusively(device) and self._mount_of(device) is None:
            raise FilesystemBusy(
                f"Cannot mount {device} at {path}: its filesystem is still in use though not "
                "mounted here (processes keep files open in a mount unmounted lazily, as after "
                "a fence); stop them (restart the containers) and the agent mounts it again."
            )
        make_mount_point(path)
        info = self.filesystem_info(device)
        kind = info.kind if info else None
        options = MOUNT_OPTIONS.get(kind or "", ())
        if read_only:
            _check(["mount", "-r", *options, *READ_ONLY_OPTIONS.get(kind or "", ()), device, path])
            return
        # -w: fail on a write-protected device rather than mount it read-only (mount's
        # default fallback), which would report a dataset mounted that no one can write.
        _check(["mount", "-w", *options, device, path])

    def unmount(self, path: str, lazy: bool = False) -> None:
        """Unmount whatever is mounted at ``path``, then remove the empty mount point.

        Nothing is unmounted if nothing is mounted there (an empty mount point
        left behind is removed all the same). A busy mount raises
        :class:`FilesystemBusy`, naming the processes that hold it when
        ``/proc`` shows them; with ``lazy`` it is detached (``umount -l``)
        instead, and goes once they let go.
        """
        path = os.path.realpath(path)
        if self._mounted_at(path) is not None:
            argv = ["umount", path]
            done = _run(argv)
            if done.returncode != 0 and lazy and "busy" in done.stderr:
                argv = ["umount", "-l", path]
                done = _run(argv)
            if done.returncode != 0:
                error = _failure(argv, done)
                if "busy" not in done.stderr:
                    raise error
                held = describe_holders(path)
                raise FilesystemBusy(f"{error}; {held}" if held else str(error))
        remove_mount_point(path)

    def shutdown(self, path: str) -> None:
        """Shut down the filesystem at ``path`` (``FS_IOC_SHUTDOWN``, :mod:`agent.fs.shutdown`)."""
        path = os.path.realpath(path)
        if self._mounted_at(path) is None:
            raise FilesystemError(f"Nothing is mounted at {path}; nothing to shut down.")
        shutdown.shutdown(path)

    def _all_mounts(self) -> list[Mount]:
        try:
            with open(MOUNTINFO) as f:
                return parse_mountinfo(f.read())
        except OSError as e:
            raise FilesystemError(f"Cannot read {MOUNTINFO}: {e}") from e

    def device_bound_at(self, device: str) -> list[str]:
        """Where the device node ``device`` is bind-mounted, from the mount table
        (:func:`bound_device_mounts`; only the candidates are looked at, never another
        filesystem's mount points, which a dead network mount could hang)."""
        try:
            with open(MOUNTINFO) as f:
                text = f.read()
        except OSError as e:
            raise FilesystemError(f"Cannot read {MOUNTINFO}: {e}") from e
        return bound_device_mounts(text, device)

    def mounts(self) -> list[Mount]:
        """Every block-device mount on this machine (below ``under``, if set)."""
        found = self._all_mounts()
        if self.under is None:
            return found
        root = os.path.realpath(self.under)
        return [m for m in found if m.path == root or m.path.startswith(root.rstrip("/") + "/")]

    # -- sizes, growth, freezing ----------------------------------------------

    def _mount_of(self, device: str) -> str | None:
        for mount in self._all_mounts():
            if _same_device(mount.device, device):
                return mount.path
        return None

    def filesystem_info(self, device: str) -> FilesystemInfo | None:
        """The filesystem's kind and size from its superblock (a mounted XFS: its geometry)."""
        try:
            with open(device, "rb") as f:
                info = superblock.parse(f.read(superblock.HEAD))
        except OSError as e:
            raise FilesystemError(f"Cannot read the superblock of {device}: {e}") from e
        if info is not None and info.kind == "xfs":
            path = self._mount_of(device)
            if path is not None:
                return FilesystemInfo(kind="xfs", size=_xfs_mounted_size(path))
        return info

    def grow_filesystem(self, device: str) -> None:
        """Grow the filesystem to fill ``device``: ``resize2fs`` or ``xfs_growfs``."""
        info = self.filesystem_info(device)
        if info is None:
            raise FilesystemError(f"{device} holds no ext4 or xfs filesystem to grow.")
        path = self._mount_of(device)
        if info.kind == "xfs":
            if path is None:
                raise FilesystemError(
                    f"The xfs filesystem on {device} grows only while mounted; mount it first."
                )
            _check(["xfs_growfs", path])
            return
        if path is None:
            _fsck(device)
        elif not has_capability(CAP_SYS_RESOURCE):
            raise FilesystemError(
                f"Cannot grow the mounted ext4 filesystem on {device}: the agent lacks "
                "CAP_SYS_RESOURCE, which resize2fs needs online. Run the agent with it, or "
                "unmount the dataset (move it away and back) so it grows offline."
            )
        _check(["resize2fs", device])

    def freeze(self, path: str) -> None:
        """Freeze the filesystem mounted at ``path``."""
        with _directory(path) as fd:
            _check_mount_point(fd, path)
            try:
                freezer.freeze(fd)
            except OSError as e:
                raise FilesystemError(f"Cannot freeze {path}: {e}") from e

    def thaw(self, path: str) -> None:
        """Thaw the filesystem mounted at ``path``; nothing if it is not frozen."""
        with _directory(path) as fd:
            try:
                freezer.thaw(fd)
            except OSError as e:
                raise FilesystemError(f"Cannot thaw {path}: {e}") from e

    def is_frozen(self, path: str) -> bool:
        """Whether ``path``'s filesystem is frozen (a freeze attempt says ``EBUSY``)."""
        with _directory(path) as fd:
            try:
                freezer.freeze(fd)
            except OSError as e:
                if e.errno == errno.EBUSY:  # frozen already
                    return True
                raise FilesystemError(f"Cannot tell whether {path} is frozen: {e}") from e
            freezer.thaw(fd)
            return False

    def while_frozen(self, path: str, action: Callable[[], T]) -> T:
        """Run ``action`` while a child process holds ``path`` frozen (:mod:`agent.fs.freezer`)."""
        return hold_frozen(path, action, FREEZE_TIMEOUT)


@contextlib.contextmanager
def _directory(path: str) -> Iterator[int]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise FilesystemError(f"Cannot open mount point {path}: {e}") from e
    try:
        yield fd
    finally:
        os.close(fd)


def _check_mount_point(fd: int, path: str) -> None:
    """Raise :class:`FilesystemError` unless the open directory ``fd`` is a mount point: a
    freeze of a plain directory would freeze the filesystem that holds it (the mount
    point's parent, when the dataset's filesystem is gone)."""
    try:
        here, parent = os.fstat(fd), os.stat("..", dir_fd=fd)
    except OSError as e:
        raise FilesystemError(f"Cannot look at mount point {path}: {e}") from e
    if here.st_dev == parent.st_dev and here.st_ino != parent.st_ino:
        raise FilesystemError(
            f"Nothing is mounted at {path}: it is not frozen (that would freeze the "
            "filesystem holding it). The next pass observes the node again."
        )


def _xfs_mounted_size(path: str) -> int:
    """The data size of the XFS mounted at ``path`` (``XFS_IOC_FSGEOMETRY_V1``)."""
    with _directory(path) as fd:
        buffer = bytearray(112)
        try:
            fcntl.ioctl(fd, XFS_IOC_FSGEOMETRY_V1, buffer)
        except OSError as e:
            raise FilesystemError(f"Cannot read the geometry of the xfs at {path}: {e}") from e
    block_size = struct.unpack_from("=I", buffer, 0)[0]
    blocks = struct.unpack_from("=Q", buffer, 32)[0]
    return int(block_size * blocks)


def _fsck(device: str) -> None:
    """``e2fsck -f -p``, which resize2fs wants before an offline grow; 0 and 1 are fine."""
    argv = ["e2fsck", "-f", "-p", device]
    done = _run(argv)
    if done.returncode not in (0, 1):
        raise _failure(argv, done)


def has_capability(bit: int) -> bool:
    """Whether this process has capability ``bit`` in its effective set."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError):
        pass
    return False


def hold_frozen(path: str, action: Callable[[], T], timeout: float) -> T:
    """Freeze ``path``, run ``action``, then thaw it; a watching child thaws it if this process
    dies first (:mod:`agent.fs.freezer`).

    A freeze that cannot be made raises :class:`FilesystemError` before ``action``
    (a filesystem someone else froze is left as it is). A timeout in the child
    (it thawed early) raises :class:`FilesystemError` after ``action``.
    """
    with _directory(path) as fd:
        _check_mount_point(fd, path)
        child = subprocess.Popen(
            ["sh", "-c", freezer.WATCH_SCRIPT, "shoal-freezer", path, str(max(1, round(timeout)))],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert child.stdin is not None
        try:
            try:
                freezer.freeze(fd)
            except OSError as e:
                raise FilesystemError(f"Cannot freeze {path}: {e.strerror or e}") from e
            try:
                result = action()
            finally:
                timed_out = _stop_watching(child)
                if not timed_out:
                    freezer.thaw(fd)
        finally:
            if child.returncode is None:
                _stop_watching(child)
            child.stdin.close()
    if timed_out:
        raise FilesystemError(
            f"{path} was thawed after {timeout} s, before the action was done: its result may "
            "not be consistent. It is retried; a slow copy needs a pool that can reflink."
        )
    return result


def _stop_watching(child: subprocess.Popen[bytes]) -> bool:
    """Kill the watching child before it can thaw anything; whether it had already thawed
    on its timeout."""
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
    return child.wait() == freezer.TIMED_OUT
