"""
Hold a filesystem frozen for as long as the parent asks, and never longer.

Run as a script by :func:`agent.fs.real.RealFilesystems.while_frozen` (with
``python -I -S``: standard library only, so it starts in a few milliseconds)::

    python freezer.py MOUNT_POINT TIMEOUT_SECONDS

It freezes the filesystem (``FIFREEZE``), prints ``frozen`` and waits on its
stdin. It thaws (``FITHAW``) as soon as stdin closes, which happens when the
parent is done *or dies* (even by ``SIGKILL``: the kernel closes the pipe), or
after the timeout. Exit codes: 0 thawed when asked, 3 thawed on the timeout,
2 could not freeze (the reason on stderr). The parent starts it in its own
session, so a signal to the agent's process group does not reach it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import sys

FIFREEZE = 0xC0045877
"""``_IOWR('X', 119, int)``."""
FITHAW = 0xC0045878
"""``_IOWR('X', 120, int)``."""
FROZEN = b"frozen\n"
TIMED_OUT = 3
CANNOT_FREEZE = 2


def freeze(fd: int) -> None:
    """Freeze the filesystem of the open directory ``fd``."""
    fcntl.ioctl(fd, FIFREEZE, 0)


def thaw(fd: int) -> bool:
    """Thaw the filesystem of ``fd``; ``False`` if it was not frozen."""
    try:
        fcntl.ioctl(fd, FITHAW, 0)
    except OSError as e:
        if e.errno == errno.EINVAL:
            return False
        raise
    return True


def hold(path: str, timeout: float) -> int:
    """Freeze ``path``, wait for stdin to close (or ``timeout``), thaw; the exit code."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            freeze(fd)
        except OSError as e:
            sys.stderr.write(f"cannot freeze {path}: {e}\n")
            return CANNOT_FREEZE
        try:
            os.write(sys.stdout.fileno(), FROZEN)
            closed, _, _ = select.select([sys.stdin.fileno()], [], [], timeout)
        finally:
            thaw(fd)
        return 0 if closed else TIMED_OUT
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(hold(sys.argv[1], float(sys.argv[2])))
