"""
Which processes hold a mount busy: a scan of ``/proc`` (blocking; run it in a thread).

A process holds a mount when its working directory, its root, an open file or
a mapped file lies at or under the mount point. Processes that vanish or
cannot be read during the scan are skipped.
"""

from __future__ import annotations

import contextlib
import errno
import os

from attrs import frozen

PROC = "/proc"


@frozen
class Holder:
    """One process keeping a mount busy."""

    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _links(proc: str) -> list[str]:
    targets = []
    names = [os.path.join(proc, "cwd"), os.path.join(proc, "root")]
    with contextlib.suppress(OSError):
        names += [os.path.join(proc, "fd", fd) for fd in os.listdir(os.path.join(proc, "fd"))]
    for name in names:
        try:
            targets.append(os.readlink(name))
        except OSError:
            continue
    return targets


def _mapped(proc: str) -> list[str]:
    try:
        with open(os.path.join(proc, "maps")) as f:
            return [line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6]
    except OSError:
        return []


def _command(proc: str) -> str:
    try:
        with open(os.path.join(proc, "comm")) as f:
            return f.read().strip() or "?"
    except OSError:
        return "?"


def holders(mount_point: str, proc_root: str = PROC) -> list[Holder]:
    """The processes holding ``mount_point`` busy, by pid (this process excluded)."""
    root = os.path.realpath(mount_point)
    found = []
    try:
        pids = sorted(int(name) for name in os.listdir(proc_root) if name.isdigit())
    except OSError:
        return []
    for pid in pids:
        if pid == os.getpid():
            continue
        proc = os.path.join(proc_root, str(pid))
        paths = _links(proc) + _mapped(proc)
        if any(_under(p, root) for p in paths if p.startswith("/")):
            found.append(Holder(pid, _command(proc)))
    return found


def describe_holders(mount_point: str, proc_root: str = PROC, limit: int = 5) -> str:
    """``"held by pid 123 (sh), pid 456 (cat)"``, or ``""`` when none can be found."""
    found = holders(mount_point, proc_root)
    if not found:
        return ""
    shown = ", ".join(str(h) for h in found[:limit])
    more = f" and {len(found) - limit} more" if len(found) > limit else ""
    return f"held by {shown}{more}"


def held_exclusively(device: str) -> bool:
    """Whether ``device`` is held exclusively, as a filesystem (mounted, or lingering after a
    lazy unmount) holds its device."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_EXCL)
    except OSError as e:
        return e.errno == errno.EBUSY
    os.close(fd)
    return False
