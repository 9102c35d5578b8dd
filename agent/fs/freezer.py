"""
Freeze and thaw filesystems, and hold a freeze for as long as the agent asks, and never longer.

:func:`freeze` and :func:`thaw` are the ``FIFREEZE`` and ``FITHAW`` ioctls.
:func:`agent.fs.real.hold_frozen` freezes with the ioctl in the agent itself,
after starting :data:`WATCH_SCRIPT` in a child process (``sh`` and
``timeout``: a few milliseconds to start, where a Python child takes ~50 ms,
and nothing on the way to the freeze waits for it)::

    sh -c WATCH_SCRIPT shoal-freezer MOUNT_POINT TIMEOUT_SECONDS

The child waits on its stdin. When the agent is done it kills the child
first (so the child thaws nothing, not even a later freeze), then thaws the
filesystem itself. If the agent *dies* instead (even by ``SIGKILL``: the
kernel closes the pipe), the child sees its stdin close and thaws; after the
timeout it thaws too, and exits :data:`TIMED_OUT` (the agent then says the
freeze did not last). The agent starts it in its own session, so a signal
to the agent's process group does not reach it.
"""

from __future__ import annotations

import errno
import fcntl

FIFREEZE = 0xC0045877
"""``_IOWR('X', 119, int)``."""
FITHAW = 0xC0045878
"""``_IOWR('X', 120, int)``."""
TIMED_OUT = 3
WATCH_SCRIPT = """
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
