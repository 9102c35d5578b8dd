"""
Loop devices: attach a file with ``losetup``, find devices through sysfs.

Helpers of :mod:`agent.backends.loopback`. Commands run with stdin closed and
raise :class:`~agent.backends.interface.BackendError` carrying their stderr.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Sequence

from agent.backends.interface import BackendError
from agent.commands import check_command
from agent.fs.holders import held_exclusively

SYS_BLOCK = "/sys/block"


def run(argv: Sequence[str]) -> str:
    """Run ``argv`` and return its stdout; raise :class:`BackendError` with stderr on failure."""
    return check_command(argv, BackendError, hint="Is util-linux installed?")


def backing_file(device: str) -> str | None:
    """The file behind loop device ``device`` (``/dev/loopN``), or ``None`` if it has none."""
    name = os.path.basename(device)
    if not name.startswith("loop"):
        return None
    try:
        with open(os.path.join(SYS_BLOCK, name, "loop", "backing_file")) as f:
            return f.read().rstrip("\n")
    except OSError:
        return None


def devices_backed_by(path: str) -> list[str]:
    """Every loop device whose backing file is ``path`` (compared by real path)."""
    target = os.path.realpath(path)
    found = []
    try:
        names = os.listdir(SYS_BLOCK)
    except OSError:
        return []
    for name in sorted(names):
        if name.startswith("loop") and backing_file(name) == target:
            found.append("/dev/" + name)
    return found


def attach(path: str) -> str:
    """Attach ``path`` to a free loop device and return the device."""
    device = run(["losetup", "--find", "--show", path]).strip()
    if not device.startswith("/dev/"):
        raise BackendError(f"losetup --find --show {path} printed {device!r}, not a device.")
    if read_only(device):  # left read-only by a fence of its previous user
        set_read_only(device, False)
    return device


def attach_read_only(path: str) -> str:
    """Attach ``path`` read-only (``losetup -r``) to a free loop device and return the device.

    The kernel refuses every write to the device (``EROFS`` through a mount,
    ``EPERM`` when opened for writing), and a read-write mount of it fails.
    """
    device = run(["losetup", "--find", "--show", "--read-only", path]).strip()
    if not device.startswith("/dev/"):
        raise BackendError(f"losetup --find --show --read-only {path} printed {device!r}.")
    return device


def refresh_size(device: str) -> None:
    """Make ``device`` take its backing file's new size (``losetup -c``, ``LOOP_SET_CAPACITY``)."""
    run(["losetup", "-c", device])


def disable_discard(device: str) -> bool:
    """Make ``device`` refuse discards (``discard_max_bytes`` 0); returns whether it could.

    A discard on a loop device punches holes in its backing file, which would
    undo a fully allocated volume's reservation (``mkfs.ext4`` discards the
    whole device by default).
    """
    name = os.path.basename(device)
    try:
        with open(os.path.join(SYS_BLOCK, name, "queue", "discard_max_bytes"), "w") as f:
            f.write("0")
    except OSError:
        return False
    return True


def _refuse_busy(device: str, path: str) -> None:
    if held_exclusively(device):
        raise BackendError(
            f"{device} (backed by {path}) is in use, most likely mounted; unmount it "
            "everywhere before detaching, or its filesystem could end up mounted twice."
        )


def detach(device: str, path: str) -> None:
    """Detach ``device`` if it still backs ``path``; tolerate it being gone already.

    Refuses a device in use: ``losetup -d`` on a mounted device succeeds but
    only marks it for release at the last unmount, so the volume would look
    free while its filesystem is still mounted. A read-only (fenced) device
    is made writable again first, so that its next user gets a normal device.
    """
    if backing_file(device) != os.path.realpath(path):
        return
    _refuse_busy(device, path)
    if read_only(device):
        set_read_only(device, False)
    try:
        run(["losetup", "-d", device])
    except BackendError:
        if backing_file(device) == os.path.realpath(path):
            raise
    if backing_file(device) == os.path.realpath(path):
        _refuse_busy(device, path)


BLKROSET = 0x125D
"""``_IO(0x12, 93)``: set a block device read-only (argument: a pointer to an int)."""


def read_only(device: str) -> bool:
    """Whether loop device ``device`` is read-only (sysfs ``ro``); ``False`` if it is gone."""
    try:
        with open(os.path.join(SYS_BLOCK, os.path.basename(device), "ro")) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def set_read_only(device: str, read_only: bool = True) -> None:
    """Make ``device`` read-only, or writable again (``BLKROSET``).

    The flag belongs to the device, not to its backing file: it outlives
    ``losetup -d``, so a fenced device is made writable again before it is
    released (and :func:`attach` clears it on a device it reuses).
    """
    what = "read-only" if read_only else "writable"
    try:
        fd = os.open(device, os.O_RDONLY)
    except OSError as e:
        raise BackendError(f"Cannot open {device} to make it {what}: {e}") from e
    try:
        fcntl.ioctl(fd, BLKROSET, struct.pack("i", int(read_only)))
    except OSError as e:
        raise BackendError(f"Cannot make {device} {what} (BLKROSET): {e}") from e
    finally:
        os.close(fd)
