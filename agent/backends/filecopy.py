"""
Copies of volume files that appear whole: reflink where the filesystem can, else a sparse copy.

Helpers of the loopback backend's snapshots, restores and clones
(:mod:`agent.backends.loopsnap`). A copy is made in a temporary file
(``.tmp-copy-*``) beside its destination, held under an exclusive ``flock``
while it is made, and appears with one ``link`` (which fails if the
destination exists: two nodes racing end with one copy). A crash leaves only
the temporary file, whose lock died with its maker: :func:`sweep` removes it.

Methods: ``reflink`` (the ``FICLONE`` ioctl, XFS with reflink, btrfs: the
copy shares every block with its source until either side writes) and
``copy`` (``SEEK_DATA``/``SEEK_HOLE``: only the data extents are read, holes
stay holes; and within them, blocks of zeros are left as holes too, as
``cp --sparse=always`` does: a fully allocated volume's never-written
extents read as data once its loop device has read them, and a fresh
filesystem is mostly such zeros, so this writes and syncs a few MiB instead
of most of the volume).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator

REFLINK = "reflink"
COPY = "copy"
FICLONE = 0x40049409
"""``_IOW(0x94, 9, int)``: make the destination share the source's extents."""
TEMPORARY_PREFIX = ".tmp-copy-"
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS}
CHUNK = 1024 * 1024
"""Bytes read at a time from a data extent."""
BLOCK = 64 * 1024
"""A read block of only zeros this size (aligned) is left as a hole in the copy."""
_ZEROS = bytes(CHUNK)


def reflink(source_fd: int, destination_fd: int) -> bool:
    """Make the destination share the source's blocks; ``False`` if the filesystem cannot."""
    try:
        fcntl.ioctl(destination_fd, FICLONE, source_fd)
    except OSError as e:
        if e.errno in _NO_REFLINK:
            return False
        raise
    return True


def _data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of every data extent of ``fd`` below ``size``."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # nothing but a hole up to the end
                return
            raise
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        if end > start:
            yield start, end - start
        offset = end


def _nonzero_runs(data: bytes) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each run of :data:`BLOCK`-sized blocks of ``data`` not all zeros."""
    if data == _ZEROS[: len(data)]:
        return
    run = None
    for at in range(0, len(data), BLOCK):
        end = min(at + BLOCK, len(data))
        if data[at:end] == _ZEROS[: end - at]:
            if run is not None:
                yield run, at
                run = None
        elif run is None:
            run = at
    if run is not None:
        yield run, len(data)


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def sparse_copy(source_fd: int, destination_fd: int, size: int) -> None:
    """Copy the first ``size`` bytes into the (sparse, zero-reading) destination: only the data
    extents are read, and only their blocks that are not all zeros written; holes stay holes."""
    for start, length in _data_extents(source_fd, size):
        done = 0
        while done < length:
            at = start + done
            data = os.pread(source_fd, min(CHUNK, length - done), at)
            if not data:  # the source shrank under us: nothing more to read
                return
            view = memoryview(data)
            for begin, end in _nonzero_runs(data):
                _write_all(destination_fd, view[begin:end], at + begin)
            done += len(data)


def copy_into(source_fd: int, destination_fd: int, size: int) -> str:
    """Copy ``size`` bytes of the source into the (empty, or allocated but never written:
    reading zeros) destination; returns the method."""
    if reflink(source_fd, destination_fd):
        return REFLINK
    os.ftruncate(destination_fd, size)
    sparse_copy(source_fd, destination_fd, size)
    return COPY


def probe(directory: str) -> str:
    """Which method copies in ``directory``: :data:`REFLINK` or :data:`COPY`."""
    with tempfile.TemporaryFile(dir=directory) as one, tempfile.TemporaryFile(dir=directory) as two:
        one.write(b"\0" * 4096)
        one.flush()
        return REFLINK if reflink(one.fileno(), two.fileno()) else COPY


def _lock_nonblocking(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def make_whole(destination: str, fill: Callable[[int], None]) -> bool:
    """
    Make ``destination`` appear whole: ``fill(fd)`` writes a locked temporary file, then ``link``.

    Returns ``False`` (and leaves the existing file alone) if ``destination``
    appeared meanwhile. The temporary file is removed whatever happens,
    except on a crash, when :func:`sweep` finds it unlocked.
    """
    directory = os.path.dirname(destination)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=TEMPORARY_PREFIX)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        fill(fd)
        os.fsync(fd)
        try:
            os.link(temporary, destination)
        except FileExistsError:
            return False
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        os.close(fd)


def sweep(directory: str) -> list[str]:
    """Remove the half-made copies in ``directory`` whose maker died; returns their names."""
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        if not name.startswith(TEMPORARY_PREFIX):
            continue
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if _lock_nonblocking(fd):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed.append(name)
        finally:
            os.close(fd)
    return removed
