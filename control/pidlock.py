"""
An exclusive lock file that names its holder: one process per directory.

The kernel drops an ``flock`` when the process ends, however it ends, so a
lock left by a crashed process never blocks the next one.
"""

from __future__ import annotations

import fcntl
import os


class LockHeld(Exception):
    """Another live process holds the lock; ``holder`` is the pid it wrote, or ``unknown``."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def hold_lock(path: str) -> int:
    """Take the lock at ``path`` (creating its directory) for the life of this process.

    Writes this process's pid into the file and returns the open descriptor;
    raises :class:`LockHeld` naming the holder's pid if another process has it.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise LockHeld(holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
