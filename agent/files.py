"""
Files written whole: the one atomic write of the agent, its backends and the plugin.
"""

from __future__ import annotations

import contextlib
import os
import tempfile


def write_atomically(path: str, data: bytes, mode: int = 0o600) -> None:
    """
    Replace ``path`` with ``data`` so that readers see the old or the new file, whole.

    The data goes to a uniquely named temporary file beside ``path``, is
    fsynced, renamed over ``path``, and the directory is fsynced so that the
    rename survives a crash. On failure the temporary file is removed and
    ``path`` is left as it was. The file is readable by its owner only
    unless ``mode`` says otherwise. Raises :class:`OSError`.
    """
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        try:
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
