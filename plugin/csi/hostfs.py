"""
The CSI node's I/O on this machine: bind mounts, mount points, sizes. Every call blocks.

The node service sends these to a thread (never the reactor). Bind mounts
only, made with mount(2) and umount2(2) directly: the agent alone mounts
filesystems and attaches devices; the driver makes what the agent mounted
available at the paths the CO names.
"""

from __future__ import annotations

import ctypes
import os
import stat

from agent.fs.real import bound_device_mounts
from plugin.csi.errors import Code, CsiError
from plugin.hostmounts import MountEntry, parse_mountinfo

MOUNTINFO = "/proc/self/mountinfo"


MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
_libc = ctypes.CDLL(None, use_errno=True)


def _syscall(what: str, result: int) -> None:
    """Raise INTERNAL, naming the call and the error, when a libc call failed."""
    if result != 0:
        errno = ctypes.get_errno()
        raise CsiError(Code.INTERNAL, f"{what} failed: {os.strerror(errno)} (errno {errno})")


def _bind_mount(source: str, target: str) -> None:
    """mount(2) ``source`` at ``target`` with MS_BIND (no mount(8) process: it is in the
    NodeStage and NodePublish paths)."""
    result = _libc.mount(source.encode(), target.encode(), None, MS_BIND, None)
    _syscall(f"bind-mounting {source} at {target}", result)


def _remount_read_only(target: str) -> None:
    result = _libc.mount(None, target.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
    _syscall(f"remounting {target} read-only", result)


def _unmount(target: str) -> None:
    _syscall(f"unmounting {target}", _libc.umount2(target.encode(), 0))


def mounts() -> list[MountEntry]:
    """This machine's mount table, in the kernel's order."""
    with open(MOUNTINFO) as f:
        return parse_mountinfo(f.read())


def top_mount(path: str) -> MountEntry | None:
    """The topmost mount at exactly ``path``, if any."""
    found = None
    for entry in mounts():
        if entry.path == path:
            found = entry
    return found


def is_mount(path: str) -> bool:
    """Whether something is mounted at ``path``."""
    return top_mount(os.path.realpath(path)) is not None


def same_file(one: str, two: str) -> bool:
    """Whether two paths show the same inode (a bind of one at the other)."""
    try:
        a, b = os.stat(one), os.stat(two)
    except OSError:
        return False
    if stat.S_ISBLK(a.st_mode) and stat.S_ISBLK(b.st_mode):
        return a.st_rdev == b.st_rdev
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def read_only(path: str) -> bool:
    """Whether the mount at ``path`` is read-only."""
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def bind(source: str, target: str, readonly: bool) -> None:
    """Bind-mount ``source`` at ``target`` (read-only if asked); idempotent.

    ALREADY_EXISTS when ``target`` already shows ``source`` with the other
    read-only setting, or shows something else.
    """
    real = os.path.realpath(target)
    if is_mount(real):
        if not same_file(source, real):
            raise CsiError(Code.ALREADY_EXISTS,
                           f"{target} already has another volume mounted; unpublish it first.")
        if read_only(real) != readonly:
            raise CsiError(Code.ALREADY_EXISTS,
                           f"{target} already shows this volume "
                           f"{'read-only' if read_only(real) else 'read-write'}; "
                           "unpublish it before publishing it the other way.")
        return
    _bind_mount(source, real)
    if readonly:
        try:
            _remount_read_only(real)
        except CsiError:
            _unmount(real)
            raise


def unmount_all(path: str) -> None:
    """Unmount every mount stacked at ``path`` (none: nothing to do)."""
    real = os.path.realpath(path)
    while is_mount(real):
        _unmount(real)


def make_directory(path: str) -> None:
    """Make ``path`` a directory (and its parents)."""
    os.makedirs(path, exist_ok=True)


def make_file(path: str) -> None:
    """Make ``path`` an empty file to bind a device node onto (its parent too)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if not os.path.exists(path):
        with open(path, "a"):
            pass


def remove(path: str) -> None:
    """Remove the (unmounted) file or empty directory at ``path``; gone already is fine."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def device_of(path: str) -> str:
    """The block device mounted at ``path`` (FAILED_PRECONDITION when none is)."""
    entry = top_mount(os.path.realpath(path))
    if entry is None or not entry.source.startswith("/dev/"):
        raise CsiError(Code.FAILED_PRECONDITION,
                       f"No block device is mounted at {path} on this node.")
    return entry.source


def raw_device(path: str) -> str:
    """The real path of the raw dataset's device ``path`` (as the agent reported it), once it is
    a block device under /dev/ that nothing mounts (FAILED_PRECONDITION otherwise)."""
    real = os.path.realpath(path)
    if not real.startswith("/dev/") or not is_block(real):
        raise CsiError(Code.FAILED_PRECONDITION,
                       f"The reported device {path[:200]!r} is not a block device under /dev/ "
                       "on this node; is the agent here attaching it?")
    held = sorted(e.path for e in mounts() if os.path.realpath(e.source) == real)
    if held:
        raise CsiError(Code.FAILED_PRECONDITION,
                       f"The raw volume's device {real} is mounted at {held[0]}: a raw volume's "
                       "device is used as it is, never mounted. Unmount it there first.")
    return real


def device_bound_at(device: str) -> list[str]:
    """Where the device node ``device`` is bind-mounted (a raw block volume published to a pod:
    :func:`agent.fs.real.bound_device_mounts`), sorted."""
    with open(MOUNTINFO) as f:
        return bound_device_mounts(f.read(), device)


def other_mounts(path: str, known: set[str]) -> list[str]:
    """Every other place the filesystem mounted at ``path`` is mounted (bound), but ``known``."""
    entry = top_mount(os.path.realpath(path))
    if entry is None:
        return []
    real = {os.path.realpath(k) for k in known}
    return sorted(e.path for e in mounts() if e.source == entry.source and e.path not in real)


def device_size(path: str) -> int:
    """The size in bytes of the block device (or device node bound) at ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def is_block(path: str) -> bool:
    """Whether ``path`` is a block device node (bound onto a file or not)."""
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def usage(path: str) -> tuple[int, int, int, int, int, int]:
    """``(total, used, available)`` bytes and ``(total, used, free)`` inodes at ``path``."""
    vfs = os.statvfs(path)
    total = vfs.f_blocks * vfs.f_frsize
    available = vfs.f_bavail * vfs.f_frsize
    used = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
    return total, used, available, vfs.f_files, vfs.f_files - vfs.f_ffree, vfs.f_ffree


def exists(path: str) -> bool:
    """Whether ``path`` exists."""
    return os.path.exists(path)
