"""
Freeze and thaw filesystems, and hold a freeze for as long as the agent asks, and never longer.

:func:`freeze` and :func:`thaw` are the ``FIFREEZE`` and ``FITHAW`` ioctls.
:data:`HOLD_SCRIPT` is what :func:`agent.fs.real.hold_frozen` runs in a child
process (``sh``, ``fsfreeze`` and ``timeout``: a few milliseconds to start,
where a Python child takes ~50 ms)::

    sh -c HOLD_SCRIPT shoal-freezer MOUNT_POINT TIMEOUT_SECONDS

It freezes the filesystem, prints ``frozen`` and waits on its stdin. It thaws
as soon as stdin closes, which happens when the agent is done *or dies* (even
by ``SIGKILL``: the kernel closes the pipe), or after the timeout. Exit codes:
0 thawed when asked, 3 thawed on the timeout, 2 could not freeze (the reason
on stderr). The agent starts it in its own session, so a signal to the
agent's process group does not reach it.
"""

from __future__ import annotations

import errno
import fcntl

FIFREEZE = 0xC0045877
"""``_IOWR('X', 119, int)``."""
FITHAW = 0xC0045878
"""``_IOWR('X', 120, int)``."""
FROZEN = b"frozen\n"
CANNOT_FREEZE = 2
TIMED_OUT = 3
HOLD_SCRIPT = """
fsfreeze --freeze "$1" || exit 2
echo frozen
timeout "$2" sh -c 'read line'
waited=$?
fsfreeze --unfreeze "$1"
[ "$waited" -eq 124 ] && exit 3
exit 0
"""


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
